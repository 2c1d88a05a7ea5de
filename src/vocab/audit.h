// The vocabulary audit: embedding/head rows vs. the tokenizer vs. every declared special
// id. Produces findings with stable ids, the valid-id mask used for sampling, the stop
// set and the id validator every client-supplied id goes through.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ballast::model { struct LoadedModel; }
namespace ballast::tokenizer { class Tokenizer; }

namespace ballast::vocab {

enum class Severity { kInfo, kWarning, kError };
const char* severity_name(Severity s);

struct Finding {
  std::string id;        // stable: vocab.padding_rows, vocab.unembeddable_tokens, ...
  Severity severity = Severity::kInfo;
  std::string message;
  std::string hint;
};

// One declaration of a special token by one source.
struct SpecialDecl {
  std::string role;      // bos, eos, pad, unk, turn_end
  std::string source;    // config.json, generation_config.json, tokenizer_config.json, tokenizer.json, gguf
  int64_t id = -1;
  std::string token;     // piece, when known
};

struct AuditOptions {
  bool strict = false;             // --strict-vocab
  bool resize_embeddings = false;  // --resize-embeddings (applied before the audit)
};

struct VocabAudit {
  int64_t embedding_rows = 0, head_rows = 0;
  bool tied = true;
  int64_t config_vocab_size = 0;
  int64_t tokenizer_size = 0;      // max defined id + 1
  int64_t tokenizer_defined = 0;   // ids the tokenizer defines
  int64_t added_tokens = 0;
  std::vector<SpecialDecl> specials;
  std::vector<Finding> findings;
  std::vector<std::pair<int32_t, std::string>> unembeddable;  // id, piece
  std::shared_ptr<std::vector<uint8_t>> valid;  // (head_rows,) 1 = may be sampled
  std::set<int32_t> stop_ids;      // valid eos ids of every source + turn-end tokens
  std::optional<int32_t> bos_id;
  bool add_bos = false;
  int64_t valid_count = 0;

  bool is_valid(int64_t id) const {
    return id >= 0 && id < static_cast<int64_t>(valid->size()) && (*valid)[id];
  }
  nlohmann::json to_json() const;
  std::string to_text() const;
};

Result<VocabAudit> audit(const model::LoadedModel& lm, tokenizer::Tokenizer& tok, const AuditOptions& opts);

// Validates client-supplied ids ("prompt", "logit_bias", "stop_token_ids"...). Each entry
// must be an integer in the valid ids; errors are kInvalidTokenId naming id, position
// and valid range. JSON values allow checking non-integers and >32-bit values.
Status validate_ids(const nlohmann::json& ids, const VocabAudit& a, const std::string& what);
Status validate_ids(std::span<const int64_t> ids, const VocabAudit& a, const std::string& what);

}  // namespace ballast::vocab
