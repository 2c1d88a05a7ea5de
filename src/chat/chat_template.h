// Public API: parse a Hugging Face chat template (jinja2 source) once, render it for a
// conversation with transformers' conventions, and report which output bytes came from
// request data so the server can tokenize them with special-token parsing off.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ballast::chat {

struct Template;

struct RenderLimits {
  size_t max_output_bytes = 16u << 20;
  size_t max_value_bytes = 16u << 20;
  size_t max_list_items = 1u << 20;
  uint64_t max_steps = 20'000'000;
  uint32_t max_render_ms = 5000;  // wall-clock cap per render
  int max_call_depth = 200;
  int max_eval_depth = 600;
};

struct RenderOptions {
  bool add_generation_prompt = false;
  std::string bos_token, eos_token;
  nlohmann::ordered_json tools;          // null = no tools (templates see `tools` = None)
  nlohmann::ordered_json extra_context;  // object of extra variables (enable_thinking, ...)
  std::optional<std::string> now;        // fixed "YYYY-MM-DD HH:MM:SS" for strftime_now (tests)
  bool taint_tools = true;               // treat strings inside `tools` as request data too
  bool taint_extra_context = true;       // and strings inside extra_context (client kwargs)
  RenderLimits limits;
};

// Byte range [begin, end) of RenderedPrompt::text that was copied from request data.
struct ContentSpan {
  size_t begin = 0, end = 0;
};

struct RenderedPrompt {
  std::string text;
  std::vector<ContentSpan> content_spans;  // sorted, disjoint, non-adjacent
};

// Variables the renderer itself defines (messages, tools, documents, add_generation_prompt,
// bos_token, eos_token and the builtin functions): extra_context may not set them.
bool is_reserved_variable(std::string_view name);

class ChatTemplate {
 public:
  // Parses with transformers' environment: trim_blocks, lstrip_blocks, loopcontrols.
  static Result<ChatTemplate> parse(std::string source);

  // messages: JSON array of message objects. Every string inside `messages` (and inside
  // `tools` when taint_tools) is tracked; see docs/chat-templates.md.
  Result<RenderedPrompt> render(const nlohmann::ordered_json& messages, const RenderOptions& opts) const;

  const std::string& source() const { return *source_; }

 private:
  std::shared_ptr<const Template> tmpl_;
  std::shared_ptr<const std::string> source_;
};

}  // namespace ballast::chat
