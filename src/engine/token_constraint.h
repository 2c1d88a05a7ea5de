// A per-sequence constraint on the next token (structured output): the engine asks it for
// a token mask before each sampled step and tells it the token that was drawn. The
// engine admits the request's stop ids itself, only while the constraint can end.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace ballast::engine {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // mask: resized to the vocabulary; 1 = allowed (stop ids left to the engine).
  virtual void fill_mask(std::vector<uint8_t>& mask) = 0;
  // Advances by a drawn token; false when the token was not allowed.
  virtual bool accept(int32_t id) = 0;
  virtual bool can_end() const = 0;   // the output so far is complete
  virtual bool must_end() const = 0;  // complete, and nothing may follow
};

// Makes one constraint per sequence (a request's n sequences each get their own).
using ConstraintFactory = std::function<std::unique_ptr<TokenConstraint>()>;

}  // namespace ballast::engine
