// tool_choice required / named: a GBNF grammar that makes the model write exactly one call
// in its own tool-call format, to the named function (or any of `tools`), with arguments
// matching that function's JSON-schema `parameters`.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "server/tool_calls.h"

namespace ballast::server {

// name empty: any function of tools. Errors name the unsupported schema keyword.
Result<std::string> tool_call_gbnf(ToolCallFormat f, const nlohmann::ordered_json& tools, const std::string& name);

// Renames every rule of a GBNF text (definitions and references) to prefix + name.
std::string prefix_gbnf_rules(const std::string& gbnf, const std::string& prefix);

}  // namespace ballast::server
