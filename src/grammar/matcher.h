// Byte-level recognizer over a Grammar: a set of pushdown stacks of element positions
// (top = the next byte set to match; an empty stack = the grammar is complete).
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace ballast::grammar {

using Stack = std::vector<uint32_t>;
using StackSet = std::vector<Stack>;  // sorted, unique

// Pushes the normalized forms of s (top a kBytes element, or empty) onto out. With
// local, a stack that pops below its bottom sets *popped instead of becoming empty.
void expand(const Grammar& g, Stack s, StackSet& out, bool local = false, bool* popped = nullptr);
void dedupe(StackSet& s);
// The stacks after consuming byte b (empty set: b is not allowed).
void advance(const Grammar& g, const StackSet& in, uint8_t b, StackSet& out, bool local = false,
             bool* popped = nullptr);

class Matcher {
 public:
  explicit Matcher(const Grammar& g);
  // False (and no change) when the bytes are not a valid continuation.
  bool accept_bytes(std::string_view bytes);
  bool accepting() const;                    // the text so far is a complete sentence
  bool finished() const;                     // complete, and nothing may follow
  const StackSet& stacks() const { return stacks_; }
  const Grammar& grammar() const { return *g_; }

 private:
  const Grammar* g_;
  StackSet stacks_;
};

// Whole-string test (tests, tools).
bool matches(const Grammar& g, std::string_view text);

}  // namespace ballast::grammar
