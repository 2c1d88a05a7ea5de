// Prompt tokenization with content spans (no control-token injection) and BOS rules.
#include "server/prompt_builder.h"

#include <algorithm>

namespace ballast::server {

PromptBuilder::PromptBuilder(runtime::Runtime& rt, bool allow_special) : rt_(rt), allow_special_(allow_special) {
  for (const auto& t : rt.tok->added_tokens()) {
    if (t.content.empty() || !rt.audit.is_valid(t.id)) continue;  // unembeddable: never from text
    literals_[static_cast<unsigned char>(t.content[0])].emplace_back(t.content, t.id);
    if (t.lstrip || t.rstrip) strip_[t.id] = {t.lstrip, t.rstrip};
  }
  for (auto& [c, v] : literals_)
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  const auto& s = rt.tok->settings();
  if (s.bos_token) bos_text_ = *s.bos_token;
  else if (rt.audit.bos_id) bos_text_ = rt.tok->id_to_token(*rt.audit.bos_id).value_or("");
  if (s.eos_token) eos_text_ = *s.eos_token;
  if (rt.model().config().chat_turns_by_eos && !eos_text_.empty())
    if (auto id = rt.tok->token_to_id(eos_text_); id && rt.audit.is_valid(*id)) eos_turns_ = *id;
}

Status PromptBuilder::load_template() {
  const auto& s = rt_.tok->settings();
  if (!s.chat_template || s.chat_template->empty()) return Status();
  auto t = chat::ChatTemplate::parse(*s.chat_template);
  if (!t.ok()) return Status(t.status().code(), "the model's chat template does not parse: " + t.status().message());
  tmpl_ = std::move(t.value());
  tool_format_ = detect_tool_call_format(tmpl_->source());
  ignores_tools_ = renders_without_tools();
  return Status();
}

bool PromptBuilder::renders_without_tools() const {
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "What is the weather in Paris?"}])");
  chat::RenderOptions ro;
  ro.add_generation_prompt = true;
  ro.bos_token = bos_text_;
  ro.eos_token = eos_text_;
  auto plain = tmpl_->render(messages, ro);
  ro.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Current weather in a city", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
  auto with = tmpl_->render(messages, ro);
  // A template that fails on either render cannot be judged here; requests will tell.
  return plain.ok() && with.ok() && plain.value().text == with.value().text;
}

std::vector<int32_t> PromptBuilder::with_one_bos(std::vector<int32_t> ids) const {
  const auto& a = rt_.audit;
  if (!a.bos_id) return ids;
  const int32_t bos = *a.bos_id;
  if (a.add_bos && (ids.empty() || ids[0] != bos)) ids.insert(ids.begin(), bos);
  // A template that emits BOS plus a tokenizer that adds one: keep one.
  while (a.add_bos && ids.size() >= 2 && ids[0] == bos && ids[1] == bos) ids.erase(ids.begin());
  return ids;
}

Result<std::vector<int32_t>> PromptBuilder::encode_text(std::string_view text, bool add_special) const {
  auto r = rt_.tok->encode(text, {add_special, true});
  if (!r.ok()) return r.status();
  return add_special ? with_one_bos(std::move(r.value())) : std::move(r.value());
}

Result<std::vector<int32_t>> PromptBuilder::tokenize_rendered(const chat::RenderedPrompt& r) const {
  const std::string& text = r.text;
  std::vector<int32_t> ids;
  if (allow_special_) {
    auto e = rt_.tok->encode(text, {false, true});
    if (!e.ok()) return e.status();
    return with_one_bos(std::move(e.value()));
  }
  // Runs of text between special tokens are tokenized whole (as HF does after splitting
  // on added tokens); special literals are looked for only outside content spans.
  std::string run;
  auto flush = [&]() -> Status {
    if (run.empty()) return Status();
    auto e = rt_.tok->encode(run, {false, false});
    if (!e.ok()) return e.status();
    ids.insert(ids.end(), e.value().begin(), e.value().end());
    run.clear();
    return Status();
  };
  size_t span = 0, i = 0;
  bool rstrip_next = false;
  while (i < text.size()) {
    while (span < r.content_spans.size() && r.content_spans[span].end <= i) ++span;
    bool in_span = span < r.content_spans.size() && r.content_spans[span].begin <= i;
    if (in_span) {
      size_t end = r.content_spans[span].end;
      run.append(text, i, end - i);
      i = end;
      rstrip_next = false;
      continue;
    }
    size_t limit = span < r.content_spans.size() ? r.content_spans[span].begin : text.size();
    const std::pair<std::string, int32_t>* hit = nullptr;
    if (auto it = literals_.find(static_cast<unsigned char>(text[i])); it != literals_.end())
      for (const auto& lit : it->second)
        if (i + lit.first.size() <= limit && text.compare(i, lit.first.size(), lit.first) == 0) {
          hit = &lit;
          break;
        }
    if (!hit) {
      if (rstrip_next && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
        ++i;
        continue;
      }
      rstrip_next = false;
      run += text[i++];
      continue;
    }
    if (auto s = strip_.find(hit->second); s != strip_.end()) {
      if (s->second.first)
        while (!run.empty() && (run.back() == ' ' || run.back() == '\t' || run.back() == '\n' || run.back() == '\r'))
          run.pop_back();
      rstrip_next = s->second.second;
    } else {
      rstrip_next = false;
    }
    BALLAST_RETURN_IF_ERROR(flush());
    ids.push_back(hit->second);
    i += hit->first.size();
  }
  BALLAST_RETURN_IF_ERROR(flush());
  return with_one_bos(std::move(ids));
}

Result<std::vector<int32_t>> PromptBuilder::encode_chat(const nlohmann::ordered_json& messages,
                                                        const nlohmann::ordered_json& tools,
                                                        const nlohmann::ordered_json& kwargs,
                                                        bool add_generation_prompt) const {
  if (!tmpl_ && eos_turns_) return encode_eos_turns(messages, tools);
  if (!tmpl_)
    return error(ErrorCode::kInvalidArgument,
                 "the model has no chat template; use /v1/completions with a formatted prompt");
  chat::RenderOptions ro;
  ro.add_generation_prompt = add_generation_prompt;
  ro.bos_token = bos_text_;
  ro.eos_token = eos_text_;
  ro.tools = tools;
  ro.extra_context = kwargs;
  auto r = tmpl_->render(messages, ro);
  if (!r.ok()) {
    Status st = r.status();
    return Status(ErrorCode::kTemplateError, "chat template: " + st.message());
  }
  return tokenize_rendered(r.value());
}

Result<std::vector<int32_t>> PromptBuilder::encode_eos_turns(const nlohmann::ordered_json& messages,
                                                             const nlohmann::ordered_json& tools) const {
  // DialoGPT's model card: every turn's text followed by eos, the reply generated after the
  // last one (and ended by eos). Roles carry no marker; content is text only.
  if (!tools.is_null() && !tools.empty())
    return error(ErrorCode::kInvalidArgument, "tools need a chat template; this model has none (its turns are joined by " +
                                                  eos_text_ + ")");
  std::vector<int32_t> ids;
  for (const auto& m : messages) {
    std::string text;
    const auto& c = m.contains("content") ? m["content"] : nlohmann::ordered_json();
    if (c.is_string()) {
      text = c.get<std::string>();
    } else if (c.is_array()) {
      for (const auto& part : c)
        if (part.is_object() && part.value("type", "") == "text" && part.contains("text") && part["text"].is_string())
          text += part["text"].get<std::string>();
    }
    auto e = rt_.tok->encode(text, {false, false});  // content is text: no control tokens from it
    if (!e.ok()) return e.status();
    ids.insert(ids.end(), e.value().begin(), e.value().end());
    ids.push_back(*eos_turns_);
  }
  return ids;
}

}  // namespace ballast::server
