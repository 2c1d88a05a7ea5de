// OpenAI error JSON and the Status -> HTTP status mapping (500 only for our bugs).
#include "server/api_error.h"

namespace ballast::server {

nlohmann::json ApiError::to_json() const {
  nlohmann::json e;
  e["message"] = message;
  e["type"] = type;
  e["param"] = param.empty() ? nlohmann::json() : nlohmann::json(param);
  e["code"] = code.empty() ? nlohmann::json() : nlohmann::json(code);
  return nlohmann::json{{"error", e}};
}

std::string ApiError::body() const {
  return to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiError bad_request(std::string message, std::string param, std::string code) {
  ApiError e;
  e.status = 400;
  e.message = std::move(message);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

ApiError from_status(const Status& st, std::string param) {
  ApiError e;
  e.message = st.message();
  e.param = std::move(param);
  switch (st.code()) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kFormatError:
    case ErrorCode::kUnsupported:
      e.status = 400;
      break;
    case ErrorCode::kInvalidTokenId:
      e.status = 400;
      e.type = e.code = "invalid_token_id";
      break;
    case ErrorCode::kContextLengthExceeded:
      e.status = 400;
      e.code = "context_length_exceeded";
      break;
    case ErrorCode::kTemplateError:
      e.status = 400;
      e.code = "template_error";
      break;
    case ErrorCode::kNotFound:
      e.status = 404;
      e.type = "not_found_error";
      break;
    case ErrorCode::kResourceExhausted:
      e.status = 503;
      e.type = "server_overloaded";
      e.code = "resource_exhausted";
      break;
    case ErrorCode::kNumericalError:
      e.status = 500;
      e.type = e.code = "numerical_error";
      break;
    case ErrorCode::kCancelled:
      e.status = 503;
      e.type = "server_error";
      e.code = "cancelled";
      break;
    default:
      e.status = 500;
      e.type = "server_error";
      e.code = "internal_error";
  }
  return e;
}

}  // namespace ballast::server
