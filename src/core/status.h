// Status / Result<T>: the project's error type. No exceptions cross module boundaries.
#pragma once
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace ballast {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,      // bad option / parameter from a user
  kNotFound,             // file, tensor, token, field missing
  kIoError,              // open/read/mmap failed
  kFormatError,          // a file's content is malformed (header, offsets, json)
  kUnsupported,          // valid but not implemented (dtype, architecture)
  kInvalidTokenId,       // a client-supplied id outside the valid ids
  kNumericalError,       // NaN/Inf produced by the model
  kContextLengthExceeded,
  kTemplateError,        // chat template failed to parse/render
  kResourceExhausted,    // queue / KV cache full
  kCancelled,
  kInternal,             // our bug
};

// Stable snake_case name for an error code (used as OpenAI error "type"/"code").
const char* error_code_name(ErrorCode code);

class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok_status() { return Status(); }
  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status error(ErrorCode code, std::string message) { return Status(code, std::move(message)); }

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {    // NOLINT
    assert(!std::get<Status>(v_).ok());
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ballast

// Propagate a failing Status / Result from the current function.
#define BALLAST_RETURN_IF_ERROR(expr)          \
  do {                                          \
    auto _st = (expr);                          \
    if (!_st.ok()) return _st;                  \
  } while (0)

#define BALLAST_CONCAT_INNER(a, b) a##b
#define BALLAST_CONCAT(a, b) BALLAST_CONCAT_INNER(a, b)
#define BALLAST_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
#define BALLAST_ASSIGN_OR_RETURN(lhs, expr) \
  BALLAST_ASSIGN_OR_RETURN_IMPL(BALLAST_CONCAT(_res_, __LINE__), lhs, expr)
