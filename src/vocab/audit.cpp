// Vocabulary audit implementation; docs/vocabulary-safety.md explains each finding.
#include "vocab/audit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "io/gguf.h"
#include "model/loader.h"
#include "tokenizer/tokenizer.h"

namespace ballast::vocab {

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo: return "info";
    case Severity::kWarning: return "warning";
    case Severity::kError: return "error";
  }
  return "info";
}

namespace {

// Turn-end markers of common chat formats; declared when the template uses them.
const char* const kTurnEndTokens[] = {"<|eot_id|>", "<end_of_turn>", "<|im_end|>", "<|end|>",
                                      "<|eom_id|>", "<|return|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>"};

void collect_specials(const model::LoadedModel& lm, const tokenizer::Tokenizer& tok, VocabAudit& a) {
  const auto& c = lm.model->config();
  auto add = [&](const char* role, const char* src, int64_t id) {
    SpecialDecl d{role, src, id, ""};
    if (id >= 0 && id <= INT32_MAX)
      if (auto p = tok.id_to_token(static_cast<int32_t>(id))) d.token = *p;
    a.specials.push_back(d);
  };
  const char* cfg_src = lm.is_gguf ? "gguf" : "config.json";
  if (!lm.is_gguf) {
    for (auto id : c.eos_ids) add("eos", cfg_src, id);
    if (c.bos_id) add("bos", cfg_src, *c.bos_id);
    if (c.pad_id) add("pad", cfg_src, *c.pad_id);
    for (auto id : c.gen_eos_ids) add("eos", "generation_config.json", id);
    if (c.gen_bos_id) add("bos", "generation_config.json", *c.gen_bos_id);
    if (c.gen_pad_id) add("pad", "generation_config.json", *c.gen_pad_id);
  } else {
    const auto& g = *lm.gguf;
    for (auto [key, role] : std::initializer_list<std::pair<const char*, const char*>>{
             {"tokenizer.ggml.bos_token_id", "bos"}, {"tokenizer.ggml.eos_token_id", "eos"},
             {"tokenizer.ggml.padding_token_id", "pad"}, {"tokenizer.ggml.unknown_token_id", "unk"},
             {"tokenizer.ggml.eot_token_id", "eos"}, {"tokenizer.ggml.eom_token_id", "eos"}})
      if (auto v = g.get_int(key)) add(role, "gguf", *v);
  }
  const auto& s = tok.settings();
  // The tokenizer's own origin, not the model's: --tokenizer may pair a GGUF model with
  // Hugging Face tokenizer files or the other way round.
  const char* tsrc = s.from_gguf ? "gguf tokenizer" : "tokenizer_config.json";
  if (s.bos_id) add("bos", tsrc, *s.bos_id);
  if (s.eos_id) add("eos", tsrc, *s.eos_id);
  if (s.pad_id) add("pad", tsrc, *s.pad_id);
  if (s.unk_id) add("unk", tsrc, *s.unk_id);
  for (auto id : s.extra_eos_ids) add("eos", tsrc, id);
  if (s.chat_template)
    for (const char* t : kTurnEndTokens)
      if (s.chat_template->find(t) != std::string::npos)
        if (auto id = tok.token_to_id(t)) add("turn_end", "chat template", *id);
}

}  // namespace

Result<VocabAudit> audit(const model::LoadedModel& lm, tokenizer::Tokenizer& tok, const AuditOptions& opts) {
  VocabAudit a;
  const auto& m = *lm.model;
  a.embedding_rows = m.embedding_rows();
  a.head_rows = m.head_rows();
  a.tied = m.tied();
  a.config_vocab_size = m.config().vocab_size;
  a.tokenizer_size = tok.size();
  a.added_tokens = static_cast<int64_t>(tok.added_tokens().size());
  const int64_t usable = std::min(a.embedding_rows, a.head_rows);

  // Valid ids: defined by the tokenizer, embeddable, and produced by the head.
  a.valid = std::make_shared<std::vector<uint8_t>>(a.head_rows, 0);
  std::vector<int32_t> holes;
  for (int64_t id = 0; id < a.tokenizer_size; ++id) {
    bool defined = tok.id_to_token(static_cast<int32_t>(id)).has_value();
    if (!defined) {
      holes.push_back(static_cast<int32_t>(id));
      continue;
    }
    a.tokenizer_defined++;
    if (id < usable) {
      (*a.valid)[id] = 1;
      a.valid_count++;
    } else if (id >= a.embedding_rows) {
      a.unembeddable.emplace_back(static_cast<int32_t>(id), *tok.id_to_token(static_cast<int32_t>(id)));
    }
  }
  tok.limit_special_matching(static_cast<int32_t>(std::min<int64_t>(a.embedding_rows, INT32_MAX)));

  if (a.head_rows > a.tokenizer_size) {
    a.findings.push_back({"vocab.padding_rows", Severity::kInfo,
                          std::to_string(a.head_rows - a.tokenizer_size) + " head rows [" +
                              std::to_string(a.tokenizer_size) + ", " + std::to_string(a.head_rows) +
                              ") have no tokenizer entry; they are masked out of sampling, so every generated id decodes",
                          "benign; nothing to do"});
  }
  if (!a.unembeddable.empty()) {
    std::string names;
    for (size_t i = 0; i < a.unembeddable.size() && i < 8; ++i)
      names += (i ? ", " : "") + a.unembeddable[i].second + " = " + std::to_string(a.unembeddable[i].first);
    if (a.unembeddable.size() > 8) names += ", ... (" + std::to_string(a.unembeddable.size()) + " in all)";
    a.findings.push_back({"vocab.unembeddable_tokens", opts.strict ? Severity::kError : Severity::kWarning,
                          std::to_string(a.unembeddable.size()) + " tokenizer id(s) >= embedding rows (" +
                              std::to_string(a.embedding_rows) + "): " + names +
                              "; text never produces them (their literals are tokenized as plain text) and raw ids are rejected",
                          "use the tokenizer that belongs to this model, or --resize-embeddings to grow the embedding"});
  }
  if (!holes.empty())
    a.findings.push_back({"vocab.id_holes", Severity::kInfo,
                          std::to_string(holes.size()) + " id(s) in [0, " + std::to_string(a.tokenizer_size) +
                              ") are not defined by the tokenizer (first: " + std::to_string(holes[0]) +
                              "); they are masked out of sampling and rejected as input",
                          "benign unless the model was trained on those ids"});
  if (a.config_vocab_size && a.config_vocab_size != a.embedding_rows)
    a.findings.push_back({"vocab.config_rows_mismatch", Severity::kWarning,
                          "config vocab_size " + std::to_string(a.config_vocab_size) + " differs from the " +
                              std::to_string(a.embedding_rows) + " embedding rows stored",
                          "the stored tensor wins; fix vocab_size in config.json"});
  if (!a.tied && a.head_rows != a.embedding_rows)
    a.findings.push_back({"vocab.head_rows_mismatch", Severity::kWarning,
                          "LM head has " + std::to_string(a.head_rows) + " rows, embedding " +
                              std::to_string(a.embedding_rows),
                          "ids beyond the smaller of the two are masked"});

  collect_specials(lm, tok, a);
  // Stop set and BOS, dropping invalid declarations with a finding each.
  std::map<std::string, std::set<int64_t>> by_role;
  for (const auto& d : a.specials) by_role[d.role].insert(d.id);
  for (const auto& d : a.specials) {
    bool ok = a.is_valid(d.id);
    if (!ok) {
      bool bos_needed = d.role == "bos" && tok.settings().add_bos_token.value_or(false);
      a.findings.push_back({"vocab.special_id_invalid",
                            bos_needed || opts.strict ? Severity::kError : Severity::kWarning,
                            d.role + " id " + std::to_string(d.id) + " from " + d.source +
                                " is not a valid id (valid: defined by the tokenizer and < " + std::to_string(usable) + ")" +
                                (d.role == "eos" || d.role == "turn_end" ? "; dropped from the stop set" : ""),
                            "fix " + d.source});
      continue;
    }
    if (d.role == "eos" || d.role == "turn_end") a.stop_ids.insert(static_cast<int32_t>(d.id));
  }
  for (auto& [role, ids] : by_role)
    if (ids.size() > 1 && role != "eos" && role != "turn_end") {
      std::string list;
      for (const auto& d : a.specials)
        if (d.role == role) list += (list.empty() ? "" : ", ") + d.source + "=" + std::to_string(d.id);
      a.findings.push_back({"vocab.special_disagreement", Severity::kWarning,
                            role + " ids disagree between sources: " + list, "make the files agree"});
    }
  const auto& s = tok.settings();
  a.add_bos = s.add_bos_token.value_or(false);
  if (s.bos_id && a.is_valid(*s.bos_id)) a.bos_id = *s.bos_id;
  if (m.config().fp16_overflow_prone && lm.weights) {
    bool f16 = false;
    for (const auto& [n, w] : lm.weights->all()) f16 |= w.dtype == DType::kF16;
    if (f16)
      a.findings.push_back({"dtype.fp16_overflow_risk", Severity::kWarning,
                            "Gemma activations overflow float16; weights are stored as float16",
                            "ballast computes in fp32 on the CPU; prefer bf16/fp32 weights on GPUs"});
  }
  if (opts.strict) {
    std::string bad;
    for (const auto& f : a.findings)
      if (f.id == "vocab.unembeddable_tokens" || f.id == "vocab.special_id_invalid") bad += "\n  " + f.id + ": " + f.message;
    if (!bad.empty())
      return error(ErrorCode::kInvalidArgument, lm.path + ": --strict-vocab refuses to load:" + bad);
  }
  for (const auto& f : a.findings)
    if (f.severity == Severity::kError)
      return error(ErrorCode::kInvalidArgument, lm.path + ": " + f.id + ": " + f.message + " (" + f.hint + ")");
  return a;
}

static std::string range_text(const VocabAudit& a) {
  return "valid ids are those in [0, " + std::to_string(a.valid->size()) + ") that the tokenizer defines";
}

Status validate_ids(std::span<const int64_t> ids, const VocabAudit& a, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (!a.is_valid(ids[i]))
      return error(ErrorCode::kInvalidTokenId, what + "[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                                   " is not a valid token id; " + range_text(a));
  return Status();
}

Status validate_ids(const nlohmann::json& ids, const VocabAudit& a, const std::string& what) {
  if (!ids.is_array()) return error(ErrorCode::kInvalidTokenId, what + " must be a list of token ids");
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& v = ids[i];
    // Bounded: a nested value (ids are scalars) must not turn into a huge message.
    std::string shown = v.is_structured() ? std::string(v.is_array() ? "a list" : "an object") : v.dump();
    if (shown.size() > 64) shown = shown.substr(0, 64) + "...";
    std::string at = what + "[" + std::to_string(i) + "] = " + shown;
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (d != std::floor(d)) return error(ErrorCode::kInvalidTokenId, at + " is not an integer; " + range_text(a));
    } else if (v.is_string() && !v.get<std::string>().empty() &&
               v.get<std::string>().find_first_not_of("-0123456789") == std::string::npos) {
      return error(ErrorCode::kInvalidTokenId, what + "[" + std::to_string(i) + "] = " + v.get<std::string>() +
                                                   " is beyond 32 bits; " + range_text(a));
    } else if (!v.is_number_integer()) {
      return error(ErrorCode::kInvalidTokenId, at + " is not an integer; " + range_text(a));
    }
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT32_MAX))
      return error(ErrorCode::kInvalidTokenId, at + " is beyond 32 bits; " + range_text(a));
    double d = v.get<double>();
    if (d < 0 || d > INT32_MAX || !a.is_valid(static_cast<int64_t>(d)))
      return error(ErrorCode::kInvalidTokenId, at + " is not a valid token id; " + range_text(a));
  }
  return Status();
}

nlohmann::json VocabAudit::to_json() const {
  nlohmann::json j;
  j["embedding_rows"] = embedding_rows;
  j["head_rows"] = head_rows;
  j["tied"] = tied;
  j["config_vocab_size"] = config_vocab_size;
  j["tokenizer_size"] = tokenizer_size;
  j["tokenizer_defined"] = tokenizer_defined;
  j["added_tokens"] = added_tokens;
  j["valid_ids"] = valid_count;
  j["specials"] = nlohmann::json::array();
  for (const auto& d : specials)
    j["specials"].push_back({{"role", d.role}, {"source", d.source}, {"id", d.id}, {"token", d.token}});
  j["stop_ids"] = stop_ids;
  j["bos_id"] = bos_id ? nlohmann::json(*bos_id) : nlohmann::json(nullptr);
  j["add_bos"] = add_bos;
  j["unembeddable"] = nlohmann::json::array();
  for (const auto& [id, p] : unembeddable) j["unembeddable"].push_back({{"id", id}, {"token", p}});
  j["findings"] = nlohmann::json::array();
  for (const auto& f : findings)
    j["findings"].push_back({{"id", f.id}, {"severity", severity_name(f.severity)}, {"message", f.message}, {"hint", f.hint}});
  return j;
}

std::string VocabAudit::to_text() const {
  std::ostringstream o;
  o << "vocabulary\n";
  o << "  embedding rows   " << embedding_rows << (tied ? " (LM head tied)" : "") << "\n";
  if (!tied) o << "  LM head rows     " << head_rows << "\n";
  o << "  config vocab     " << config_vocab_size << "\n";
  o << "  tokenizer ids    " << tokenizer_size << " (" << tokenizer_defined << " defined, " << added_tokens
    << " added tokens)\n";
  o << "  valid ids        " << valid_count << "\n";
  o << "special tokens\n";
  for (const auto& d : specials)
    o << "  " << d.role << std::string(10 - std::min<size_t>(9, d.role.size()), ' ') << d.id
      << (d.token.empty() ? "" : " " + d.token) << "  (" << d.source << ")\n";
  o << "  stop set         ";
  for (auto id : stop_ids) o << id << " ";
  o << "\n";
  o << "findings\n";
  if (findings.empty()) o << "  none\n";
  for (const auto& f : findings)
    o << "  [" << severity_name(f.severity) << "] " << f.id << ": " << f.message << "\n      fix: " << f.hint << "\n";
  return o.str();
}

}  // namespace ballast::vocab
