// Tokenizer for jinja2 template source, reproducing jinja2's lexer rules including
// whitespace control ({%- -%}, {%+), trim_blocks, lstrip_blocks and newline normalization.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ballast::chat {

enum class Tok { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type;
  std::string text;  // data text, name, operator, or decoded string literal
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws TemplateException on malformed input (unclosed tags, bad literals).
std::vector<Token> tokenize(const std::string& source, const LexOptions& opts);

}  // namespace ballast::chat
