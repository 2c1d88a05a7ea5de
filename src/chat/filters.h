// Registry of jinja2 filters and tests, plus argument binding shared with methods/globals.
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "chat/interpreter.h"
#include "chat/value.h"

namespace ballast::chat {

using FilterFn = Value (*)(Interpreter&, const Value&, CallArgs&);
using TestFn = bool (*)(Interpreter&, const Value&, CallArgs&);

FilterFn find_filter(const std::string& name);
TestFn find_test(const std::string& name);

// Binds call arguments to named parameters like Python would; unknown keywords, duplicate
// or surplus arguments are errors. Unbound parameters come back as nullopt.
std::vector<std::optional<Value>> bind_args(const std::string& fname, const CallArgs& args,
                                            std::initializer_list<const char*> names);

// Helpers to read bound arguments with Python type checks.
int64_t arg_int(const std::optional<Value>& v, int64_t dflt, const char* what);
bool arg_bool(const std::optional<Value>& v, bool dflt);
std::optional<std::string> arg_opt_str(const std::optional<Value>& v, const char* what);

// The builtin globals (range, namespace, dict, cycler, joiner, raise_exception, strftime_now).
struct GlobalsConfig {
  std::optional<std::string> now;  // "YYYY-MM-DD[ HH:MM:SS]" for strftime_now; nullopt = clock
};
void add_builtin_globals(Scope& scope, const GlobalsConfig& cfg);

}  // namespace ballast::chat
