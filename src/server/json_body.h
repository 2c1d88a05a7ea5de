// Request bodies to JSON, bounded: a linear pre-scan rejects what would make parsing or
// any later walk over the value expensive or unbounded (nesting depth, element counts,
// a BOM, NUL bytes, data after the value) before nlohmann::json builds anything.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace ballast::server {

struct JsonBodyLimits {
  size_t max_depth = 64;              // nested arrays/objects
  size_t max_containers = 65536;      // arrays + objects in the whole body
  size_t max_values = 1u << 20;       // every value (scalars included)
};

// The structural check alone (no allocation besides the error): 400 on failure.
MaybeError prescan_json_body(std::string_view body, const JsonBodyLimits& lim = {});

// prescan_json_body, then parse; every failure is a 400 with OpenAI error JSON.
MaybeError parse_json_body(std::string_view body, nlohmann::json& out, const JsonBodyLimits& lim = {});
MaybeError parse_json_body(std::string_view body, nlohmann::ordered_json& out, const JsonBodyLimits& lim = {});

// A value for an error message: its JSON text cut to max_chars (with "...").
std::string brief_json(const nlohmann::json& v, size_t max_chars = 64);
std::string brief_json(const nlohmann::ordered_json& v, size_t max_chars = 64);

}  // namespace ballast::server
