// Names of error codes; these strings are part of the API (OpenAI error types, CLI).
#include "core/status.h"

namespace ballast {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid_request_error";
    case ErrorCode::kNotFound: return "not_found_error";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kFormatError: return "format_error";
    case ErrorCode::kUnsupported: return "unsupported_error";
    case ErrorCode::kInvalidTokenId: return "invalid_token_id";
    case ErrorCode::kNumericalError: return "numerical_error";
    case ErrorCode::kContextLengthExceeded: return "context_length_exceeded";
    case ErrorCode::kTemplateError: return "template_error";
    case ErrorCode::kResourceExhausted: return "resource_exhausted";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kInternal: return "internal_error";
  }
  return "unknown_error";
}

}  // namespace ballast
