// JSON Schema (the subset structured output needs) -> GBNF text for parse_gbnf. Errors are
// kInvalidArgument naming the keyword the compiler does not support.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ballast::grammar {

// Any JSON object (response_format json_object).
std::string json_object_gbnf();
// Properties are generated in the order the schema declares them.
Result<std::string> schema_to_gbnf(const nlohmann::ordered_json& schema);
// A JSON-schema "pattern" as a GBNF expression over the characters of a JSON string's
// contents (quotes and backslashes escaped as JSON writes them).
Result<std::string> pattern_to_gbnf(const std::string& pattern);

}  // namespace ballast::grammar
