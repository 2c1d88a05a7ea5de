// OpenAI-style API errors: {"error": {"message", "type", "param", "code"}} plus the
// HTTP status, and the mapping from engine/runtime Status codes.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ballast::server {

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty = null
  std::string code;   // empty = null

  nlohmann::json to_json() const;
  std::string body() const;
};

ApiError bad_request(std::string message, std::string param = {}, std::string code = {});
// Maps a Status from tokenizer/validation/engine onto status + type + code.
ApiError from_status(const Status& st, std::string param = {});

using MaybeError = std::optional<ApiError>;

}  // namespace ballast::server
