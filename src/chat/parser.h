// Recursive-descent parser for jinja2 templates (statement and expression grammar,
// operator precedence identical to jinja2/parser.py).
#pragma once
#include <memory>
#include <string>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace ballast::chat {

struct ParseOptions {
  LexOptions lex;
  int max_depth = 200;  // nesting of blocks + expressions; deeper input is rejected
};

// Throws TemplateException on syntax errors.
std::unique_ptr<Template> parse_template(const std::string& source, const ParseOptions& opts);

// Filters / tests the interpreter implements (checked at parse time, like jinja2 does).
bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);

}  // namespace ballast::chat
