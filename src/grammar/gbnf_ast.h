// The parsed form of a GBNF text before it is lowered to the flat byte-level IR.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "grammar/utf8_ranges.h"

namespace ballast::grammar {

struct Node {
  enum class Kind { kSeq, kAlt, kLiteral, kClass, kRef, kRepeat };
  Kind kind = Kind::kSeq;
  std::vector<Node> kids;          // kSeq / kAlt items; kRepeat: one child
  std::string text;                // kLiteral bytes; kRef rule name
  std::vector<CodeRange> ranges;   // kClass (already normalized)
  int min = 0, max = -1;           // kRepeat (-1: unbounded)
};

struct GbnfAst {
  std::vector<std::string> order;     // rule names in definition order
  std::map<std::string, Node> rules;  // name -> kAlt
};

Result<GbnfAst> parse_gbnf_ast(std::string_view text);

}  // namespace ballast::grammar
