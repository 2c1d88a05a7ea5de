// GrammarConstraint: see constraint.h.
#include "grammar/constraint.h"

namespace ballast::grammar {

GrammarConstraint::GrammarConstraint(std::shared_ptr<const TokenMasker> masker)
    : masker_(std::move(masker)), m_(masker_->grammar()) {}

void GrammarConstraint::fill_mask(std::vector<uint8_t>& mask) { masker_->fill(m_.stacks(), mask); }

bool GrammarConstraint::accept(int32_t id) {
  const auto& bytes = masker_->trie().vocab().bytes;
  if (id < 0 || id >= static_cast<int32_t>(bytes.size()) || bytes[id].empty()) return false;
  return m_.accept_bytes(bytes[id]);
}

engine::ConstraintFactory constraint_factory(std::shared_ptr<const TokenMasker> masker) {
  return [masker] { return std::unique_ptr<engine::TokenConstraint>(new GrammarConstraint(masker)); };
}

}  // namespace ballast::grammar
