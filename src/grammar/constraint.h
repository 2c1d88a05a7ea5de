// The engine's TokenConstraint for a grammar: a Matcher advanced by each drawn token's
// bytes, masks from the grammar's shared TokenMasker.
#pragma once
#include <memory>

#include "engine/token_constraint.h"
#include "grammar/token_masker.h"

namespace ballast::grammar {

class GrammarConstraint : public engine::TokenConstraint {
 public:
  explicit GrammarConstraint(std::shared_ptr<const TokenMasker> masker);
  void fill_mask(std::vector<uint8_t>& mask) override;
  bool accept(int32_t id) override;
  bool can_end() const override { return m_.accepting(); }
  bool must_end() const override { return m_.finished(); }

 private:
  std::shared_ptr<const TokenMasker> masker_;
  Matcher m_;
};

engine::ConstraintFactory constraint_factory(std::shared_ptr<const TokenMasker> masker);

}  // namespace ballast::grammar
