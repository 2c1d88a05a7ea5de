// Prompt token ids from request text: completions prompts (special tokens parsed, as
// a raw prompt is the user's own format) and chat conversations rendered through the
// model's template, where message content is tokenized with special-token parsing
// off so a typed "<|im_end|>" stays text. Exactly one BOS per prompt.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "core/status.h"
#include "runtime/runtime.h"
#include "server/tool_calls.h"

namespace ballast::server {

class PromptBuilder {
 public:
  // allow_special_in_content: the old behaviour (content may produce control tokens).
  PromptBuilder(runtime::Runtime& rt, bool allow_special_in_content);

  // Parses the model's chat template; an unparsable template is a load error.
  Status load_template();
  bool has_template() const { return tmpl_.has_value(); }
  // The template renders the same prompt with and without a sample tool: it ignores
  // `tools` (SmolLM2's does), so tools cannot be offered to the model.
  bool template_ignores_tools() const { return ignores_tools_; }
  // The call syntax the template shows the model (tool_calls.h).
  ToolCallFormat tool_format() const { return tool_format_; }
  // No template, but the model chats by joining turns with its eos token (GPT-2 /
  // DialoGPT): the eos id, else nullopt.
  std::optional<int32_t> eos_turns() const { return tmpl_ ? std::nullopt : eos_turns_; }

  Result<std::vector<int32_t>> encode_text(std::string_view text, bool add_special) const;
  Result<std::vector<int32_t>> encode_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                           const nlohmann::ordered_json& kwargs, bool add_generation_prompt) const;
  // Tokenizes rendered template output: special tokens only outside content spans.
  Result<std::vector<int32_t>> tokenize_rendered(const chat::RenderedPrompt& r) const;

 private:
  std::vector<int32_t> with_one_bos(std::vector<int32_t> ids) const;
  bool renders_without_tools() const;
  Result<std::vector<int32_t>> encode_eos_turns(const nlohmann::ordered_json& messages,
                                                const nlohmann::ordered_json& tools) const;
  runtime::Runtime& rt_;
  bool allow_special_;
  std::optional<chat::ChatTemplate> tmpl_;
  std::optional<int32_t> eos_turns_;
  bool ignores_tools_ = false;
  ToolCallFormat tool_format_ = ToolCallFormat::kLlama3;
  std::string bos_text_, eos_text_;
  // First byte -> (literal, id) of matchable added tokens, longest first.
  std::map<unsigned char, std::vector<std::pair<std::string, int32_t>>> literals_;
  std::map<int32_t, std::pair<bool, bool>> strip_;  // id -> (lstrip, rstrip)
};

}  // namespace ballast::server
