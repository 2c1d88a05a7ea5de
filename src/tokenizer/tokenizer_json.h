// Internal: tokenizer.json builder shared by from_json and the fast file loader (which
// pre-extracts the big model.vocab / model.merges arrays without building a DOM).
#pragma once
#include "tokenizer/components.h"
#include "tokenizer/tokenizer.h"

namespace ballast::tokenizer {

struct PrebuiltVocab {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};

Result<std::unique_ptr<Model>> make_model(const json& m, PrebuiltVocab* pre);
Result<AddedToken> parse_added_token(const json& e);
Result<std::unique_ptr<Tokenizer>> build_from_json(const json& tj, const json& cfg, const std::string& source,
                                                   PrebuiltVocab* pre);

}  // namespace ballast::tokenizer
