// Request side of tool calling: `tools`, `tool_choice` and `parallel_tool_calls` validated,
// and the tool turns of `messages` (assistant `tool_calls`, role `tool`) put in the form
// chat templates expect (transformers' convention: arguments as parsed JSON objects).
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace ballast::server {

struct ToolChoice {
  enum class Mode { kNone, kAuto, kRequired, kNamed };
  Mode mode = Mode::kNone;  // default: auto when tools are given, else none
  std::string name;         // kNamed
  bool constrained() const { return mode == Mode::kRequired || mode == Mode::kNamed; }
};

// Reads tools, tool_choice, parallel_tool_calls (and adds them to allowed). tools stays null
// when absent or empty.
MaybeError parse_tools(const nlohmann::ordered_json& body, nlohmann::ordered_json& tools, ToolChoice& choice,
                       bool& parallel, std::set<std::string>& allowed);

// messages[i]: an assistant turn's tool_calls checked (content null becomes "") with
// JSON-string arguments parsed into objects; a tool turn's tool_call_id checked.
MaybeError normalize_tool_turn(nlohmann::ordered_json& msg, size_t i);

std::vector<std::string> tool_names(const nlohmann::ordered_json& tools);

}  // namespace ballast::server
