// OpenAI request schemas: JSON bodies of /v1/completions and /v1/chat/completions parsed
// into typed parameters. Every field is type- and range-checked; a field we do not
// support is a 400 naming it, never silently ignored. No model or tokenizer needed.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"
#include "server/api_error.h"
#include "server/tool_request.h"

namespace ballast::server {

// Parameters both endpoints share.
struct CommonParams {
  std::string model;                     // empty when the client gave none
  int64_t n = 1;
  std::optional<int64_t> best_of;        // >= n sequences per prompt; the n most likely are returned
  bool stream = false;
  bool include_usage = false;            // stream_options.include_usage
  std::optional<int64_t> max_tokens;     // max_tokens / max_completion_tokens
  // Only fields the client set; the rest come from the model's defaults.
  std::optional<double> temperature, top_p, min_p, presence_penalty, frequency_penalty, repetition_penalty;
  std::optional<int64_t> top_k;
  std::optional<int64_t> seed;
  nlohmann::json logit_bias;             // object {"id": bias} or null; ids validated later
  std::vector<std::string> stop;
  nlohmann::json stop_token_ids;         // array or null; ids validated later
  bool ignore_eos = false;
  bool logprobs = false;
  int top_logprobs = 0;
  std::optional<int64_t> truncate_prompt_tokens;  // keep only the last k prompt tokens
  bool skip_special_tokens = true;
  std::string grammar;                   // GBNF from response_format / grammar (empty: none)
  std::optional<bool> clean_up_tokenization_spaces;  // null: the server's --clean-up-tokenization-spaces

  int64_t sequences_per_prompt() const { return best_of ? *best_of : n; }
  // Applies the set fields onto the model's defaults.
  engine::SamplingParams sampling(engine::SamplingParams defaults) const;
};

// One prompt of /v1/completions: text or token ids (ids still unvalidated JSON).
struct PromptInput {
  bool is_ids = false;
  std::string text;
  nlohmann::json ids;
};

struct CompletionParams : CommonParams {
  std::vector<PromptInput> prompts;
  bool echo = false;
};

struct ChatParams : CommonParams {
  nlohmann::ordered_json messages;       // normalized: content is a string (or null)
  nlohmann::ordered_json tools;          // null = none (absent or empty)
  ToolChoice tool_choice;                // none/auto/required/named, validated against tools
  bool parallel_tool_calls = true;       // false: at most one call is returned
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;
};

struct SchemaLimits {
  int64_t max_n = 16;
  int max_top_logprobs = 20;
  size_t max_stop = 16;
  size_t max_prompts = 64;
  size_t max_messages = 4096;
};

MaybeError parse_completion_request(const nlohmann::json& body, CompletionParams& out, const SchemaLimits& lim = {});
MaybeError parse_chat_request(const nlohmann::ordered_json& body, ChatParams& out, const SchemaLimits& lim = {});

}  // namespace ballast::server
