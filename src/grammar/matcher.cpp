// Stack-set recognizer: references push their continuation (only when it is not the end of
// the alternative, so repetitions in tail position keep stacks flat) and expand every
// alternative of the referenced rule.
#include "grammar/matcher.h"

#include <algorithm>

namespace ballast::grammar {

void expand(const Grammar& g, Stack s, StackSet& out, bool local, bool* popped) {
  while (true) {
    if (s.empty()) {
      if (local) *popped = true;
      else out.push_back(std::move(s));
      return;
    }
    const Element& e = g.elems[s.back()];
    if (e.kind == Element::Kind::kEnd) {
      s.pop_back();
      continue;
    }
    if (e.kind == Element::Kind::kBytes) {
      out.push_back(std::move(s));
      return;
    }
    // kRef: replace the top by the continuation, then each alternative.
    const uint32_t next = s.back() + 1;
    s.pop_back();
    if (g.elems[next].kind != Element::Kind::kEnd) s.push_back(next);
    const auto& alts = g.rules[e.value];
    for (size_t a = 0; a < alts.size(); ++a) {
      Stack t = (a + 1 == alts.size()) ? std::move(s) : s;
      t.push_back(alts[a]);
      expand(g, std::move(t), out, local, popped);
    }
    return;
  }
}

void dedupe(StackSet& s) {
  if (s.size() < 2) return;
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
}

void advance(const Grammar& g, const StackSet& in, uint8_t b, StackSet& out, bool local, bool* popped) {
  out.clear();
  for (const Stack& s : in) {
    if (s.empty() || !g.sets[g.elems[s.back()].value].test(b)) continue;
    Stack t = s;
    t.back() += 1;
    expand(g, std::move(t), out, local, popped);
  }
  dedupe(out);
}

Matcher::Matcher(const Grammar& g) : g_(&g) {
  for (uint32_t alt : g.rules[g.root]) expand(g, Stack{alt}, stacks_);
  dedupe(stacks_);
}

bool Matcher::accept_bytes(std::string_view bytes) {
  StackSet cur = stacks_, next;
  for (unsigned char c : bytes) {
    advance(*g_, cur, c, next);
    if (next.empty()) return false;
    cur.swap(next);
  }
  stacks_.swap(cur);
  return true;
}

bool Matcher::accepting() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool Matcher::finished() const {
  return std::all_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool matches(const Grammar& g, std::string_view text) {
  Matcher m(g);
  return m.accept_bytes(text) && m.accepting();
}

}  // namespace ballast::grammar
