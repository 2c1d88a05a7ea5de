// Grammar IR shared by the GBNF parser, the JSON-schema compiler and the matcher: rules of
// alternatives over byte sets, flattened into one element array (positions index it).
// Everything is bytes: code-point classes are lowered to UTF-8 byte sequences at parse time.
#pragma once
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ballast::grammar {

using ByteSet = std::bitset<256>;

struct Element {
  enum class Kind : uint8_t { kEnd, kBytes, kRef };
  Kind kind = Kind::kEnd;
  uint32_t value = 0;  // kBytes: index into Grammar::sets; kRef: rule id
};

struct Grammar {
  std::vector<Element> elems;                // every alternative's elements, each ended by kEnd
  std::vector<ByteSet> sets;                 // byte sets of kBytes elements
  std::vector<std::vector<uint32_t>> rules;  // rule id -> first position of each alternative
  std::vector<std::string> rule_names;
  uint32_t root = 0;
};

// Parses GBNF (llama.cpp's grammar format): `name ::= alternatives`, "literals" with
// \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH escapes, [classes] (ranges, ^ negation), `.`, (groups),
// postfix ? * + {m} {m,} {m,n}, # comments. Errors name the line and what is wrong; left
// recursion and undefined rules are errors.
Result<Grammar> parse_gbnf(std::string_view text, std::string_view root = "root");

}  // namespace ballast::grammar
