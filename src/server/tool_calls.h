// Tool-call syntax of the chat models we serve: which format a chat template's model
// writes (chosen from the template text), and the parser from generated text back to
// content + OpenAI tool calls, whole or streamed (text before a call streams at once,
// text from a call marker on is held until the end).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ballast::server {

enum class ToolCallFormat {
  kHermes,   // Qwen 2.5/3, Hermes: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
  kLlama3,   // Llama 3.x: [<|python_tag|>]{"name": ..., "parameters": {...}} as the whole reply
  kMistral,  // Mistral: [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]
  kGemma3,   // Gemma 3: ```tool_code\nname(k=v, ...)\n``` or a JSON object as in Llama 3
};

const char* tool_call_format_name(ToolCallFormat f);
// From the chat template's source: its own tool-call markup says what the model writes.
// Templates that show none of the known markers get kLlama3 (a bare JSON object).
ToolCallFormat detect_tool_call_format(std::string_view template_source);

struct ToolCall {
  std::string id;         // call_<24 alphanumerics>; Mistral: 9 alphanumerics (its template checks)
  std::string name;
  std::string arguments;  // JSON text of an object
};

struct ParsedReply {
  std::string content;  // text outside the calls (all of it when there are none)
  std::vector<ToolCall> calls;
};

// Parses a complete reply. Calls must name one of `names` and carry a JSON object (or a
// JSON string holding one) as arguments; anything malformed leaves the whole text as content.
ParsedReply parse_tool_calls(std::string_view text, ToolCallFormat f, const std::vector<std::string>& names);

std::string new_tool_call_id(ToolCallFormat f);

// Streaming: push() returns the text that is certainly not part of a call; from the first
// call marker (or, for the bare-JSON formats, a reply that opens with '{' or '[') the rest is
// held, and finish() parses it. push() output + finish().content = the reply's content.
class ToolCallStreamer {
 public:
  ToolCallStreamer(ToolCallFormat f, std::vector<std::string> names) : f_(f), names_(std::move(names)) {}
  std::string push(std::string_view delta);
  ParsedReply finish();
  bool in_call() const { return started_; }

 private:
  ToolCallFormat f_;
  std::vector<std::string> names_;
  std::string held_;
  bool started_ = false;    // a call marker was seen: hold everything to the end
  bool emitted_ = false;    // non-whitespace text was sent (a bare-JSON call can no longer start)
};

}  // namespace ballast::server
