// Recursive-descent parser. Each parse_* function mirrors the jinja2 parser method of the
// same name so precedence quirks match: filters and `is` tests bind tighter than any
// binary operator, unary minus binds tighter than `**`, `**` is left-associative.
#include "chat/parser.h"

#include <initializer_list>

namespace ballast::chat {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> toks, const ParseOptions& o) : t_(std::move(toks)), o_(o) {}

  std::unique_ptr<Template> run() {
    auto tmpl = std::make_unique<Template>();
    tmpl->body = subparse({});
    if (cur().type != Tok::kEof) error("unexpected '" + describe(cur()) + "'");
    return tmpl;
  }

 private:
  std::vector<Token> t_;
  size_t i_ = 0;
  ParseOptions o_;
  int depth_ = 0;

  struct DepthGuard {
    Parser* p;
    explicit DepthGuard(Parser* parser) : p(parser) {
      if (++p->depth_ > p->o_.max_depth) p->error("template nesting too deep");
    }
    ~DepthGuard() { --p->depth_; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& look() const { return t_[std::min(i_ + 1, t_.size() - 1)]; }
  Token next() {
    Token tok = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return tok;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kBlockBegin: return "begin of statement block";
      case Tok::kVarBegin: return "begin of print statement";
      case Tok::kData: return "template data";
      case Tok::kString: return "string";
      default: return t.text;
    }
  }
  [[noreturn]] void error(const std::string& msg) const {
    fail("template syntax error (line " + std::to_string(cur().line) + "): " + msg);
  }
  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::kName && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected '") + op + "', got '" + describe(cur()) + "'");
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) error("expected name, got '" + describe(cur()) + "'");
    return next().text;
  }
  void expect_name(const char* n) {
    if (!skip_name(n)) error(std::string("expected '") + n + "', got '" + describe(cur()) + "'");
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) error("expected end of statement block, got '" + describe(cur()) + "'");
    next();
  }

  ExprPtr make(ExprKind k) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = cur().line;
    return e;
  }

  // ---- statements ------------------------------------------------------------------

  bool at_end_token(std::initializer_list<const char*> ends) const {
    for (const char* e : ends)
      if (is_name(e)) return true;
    return false;
  }

  Body subparse(std::initializer_list<const char*> ends) {
    DepthGuard g(this);
    Body body;
    while (cur().type != Tok::kEof) {
      if (cur().type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->line = cur().line;
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (cur().type == Tok::kVarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = cur().line;
        s->expr = parse_tuple(false, true, {}, false);
        if (cur().type != Tok::kVarEnd) error("expected end of print statement, got '" + describe(cur()) + "'");
        next();
        body.push_back(std::move(s));
      } else if (cur().type == Tok::kBlockBegin) {
        next();
        if (ends.size() && at_end_token(ends)) return body;
        body.push_back(parse_statement());
        expect_block_end();
      } else {
        error("unexpected '" + describe(cur()) + "'");
      }
    }
    if (ends.size()) {
      std::string names;
      for (const char* e : ends) names += std::string(names.empty() ? "" : " or ") + "'" + e + "'";
      error("unexpected end of template, expected " + names);
    }
    return body;
  }

  Body parse_statements(std::initializer_list<const char*> ends, bool drop_needle) {
    expect_block_end();
    Body body = subparse(ends);
    if (cur().type == Tok::kEof) error("unexpected end of template");
    if (drop_needle) next();
    return body;
  }

  StmtPtr new_stmt(StmtKind k) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = cur().line;
    return s;
  }

  StmtPtr parse_statement() {
    DepthGuard g(this);
    if (cur().type != Tok::kName) error("tag name expected");
    std::string tag = cur().text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "generation") {
      next();
      auto s = new_stmt(StmtKind::kScope);
      s->body = parse_statements({"endgeneration"}, true);
      return s;
    }
    if (tag == "break" || tag == "continue") {
      next();
      if (loop_depth_ == 0) error("'" + tag + "' outside of a loop");
      return new_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue);
    }
    error("unknown or unsupported tag '" + tag + "'");
  }

  int loop_depth_ = 0;

  StmtPtr parse_if() {
    next();
    auto s = new_stmt(StmtKind::kIf);
    ExprPtr test = parse_tuple(false, false, {}, false);
    Body body = parse_statements({"elif", "else", "endif"}, false);
    s->branches.emplace_back(std::move(test), std::move(body));
    while (true) {
      std::string tok = next().text;
      if (tok == "elif") {
        ExprPtr t = parse_tuple(false, false, {}, false);
        Body b = parse_statements({"elif", "else", "endif"}, false);
        s->branches.emplace_back(std::move(t), std::move(b));
      } else if (tok == "else") {
        s->else_body = parse_statements({"endif"}, true);
        break;
      } else {
        break;
      }
    }
    return s;
  }

  StmtPtr parse_for() {
    next();
    auto s = new_stmt(StmtKind::kFor);
    s->target = parse_assign_target(true, false, {"in"}, false);
    expect_name("in");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (skip_name("recursive")) error("recursive for loops are not supported");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text == "else") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_set() {
    next();
    auto s = new_stmt(StmtKind::kSet);
    s->target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    s->kind = StmtKind::kSetBlock;
    s->expr = parse_filter(make(ExprKind::kBlockInput), false);
    int saved = loop_depth_;
    s->body = parse_statements({"endset"}, true);
    loop_depth_ = saved;
    return s;
  }

  std::vector<Param> parse_signature() {
    std::vector<Param> params;
    expect_op("(");
    bool have_default = false;
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      Param p;
      p.name = expect_name();
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
        have_default = true;
      } else if (have_default) {
        error("non-default argument follows default argument");
      }
      params.push_back(std::move(p));
    }
    expect_op(")");
    return params;
  }

  StmtPtr parse_macro() {
    next();
    auto s = new_stmt(StmtKind::kMacro);
    s->name = expect_name();
    s->params = parse_signature();
    int saved = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro boundary
    s->body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved;
    return s;
  }

  StmtPtr parse_call_block() {
    next();
    auto s = new_stmt(StmtKind::kCallBlock);
    if (is_op("(")) s->params = parse_signature();
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) error("expected call");
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endcall"}, true);
    loop_depth_ = saved;
    return s;
  }

  StmtPtr parse_filter_block() {
    next();
    auto s = new_stmt(StmtKind::kFilterBlock);
    s->expr = parse_filter(make(ExprKind::kBlockInput), true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    next();
    auto s = new_stmt(StmtKind::kWith);
    while (cur().type != Tok::kBlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_assign_target(true, false, {}, false);
      expect_op("=");
      s->assigns.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  Target to_target(const Expr& e) {
    Target t;
    if (e.kind == ExprKind::kName) {
      t.name = e.name;
      if (t.name == "true" || t.name == "false" || t.name == "none" || t.name == "True" ||
          t.name == "False" || t.name == "None")
        error("can't assign to constant");
      return t;
    }
    if (e.kind == ExprKind::kTuple) {
      t.kind = Target::Kind::kTuple;
      for (const auto& it : e.args) t.items.push_back(to_target(*it));
      return t;
    }
    error("can't assign to this expression");
  }

  Target parse_assign_target(bool with_tuple, bool name_only,
                             std::initializer_list<const char*> extra_end, bool with_namespace) {
    if (with_namespace && cur().type == Tok::kName && look().type == Tok::kOp && look().text == ".") {
      Target t;
      t.kind = Target::Kind::kAttr;
      t.name = next().text;
      next();
      t.attr = expect_name();
      return t;
    }
    if (name_only) {
      Target t;
      t.name = expect_name();
      return t;
    }
    ExprPtr e = with_tuple ? parse_tuple(true, true, extra_end, false) : parse_primary();
    return to_target(*e);
  }

  // ---- expressions -----------------------------------------------------------------

  bool is_tuple_end(std::initializer_list<const char*> extra) const {
    if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || is_op(")")) return true;
    for (const char* e : extra)
      if (is_name(e)) return true;
    return false;
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      std::initializer_list<const char*> extra_end, bool explicit_parens) {
    auto tup = make(ExprKind::kTuple);
    bool is_tuple = false;
    while (true) {
      if (!tup->args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (simplified)
        tup->args.push_back(parse_primary());
      else
        tup->args.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!tup->args.empty()) return std::move(tup->args[0]);
      if (!explicit_parens) error("expected an expression, got '" + describe(cur()) + "'");
    }
    return tup;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard g(this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e1 = parse_or();
    while (skip_name("if")) {
      auto c = make(ExprKind::kCond);
      c->b = parse_or();
      if (skip_name("else")) c->c = parse_condexpr();
      c->a = std::move(e1);
      e1 = std::move(c);
    }
    return e1;
  }

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r) {
    auto e = make(ExprKind::kBinary);
    e->name = op;
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (skip_name("or")) l = binary("or", std::move(l), parse_and());
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (skip_name("and")) l = binary("and", std::move(l), parse_not());
    return l;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(this);
      next();
      auto e = make(ExprKind::kUnary);
      e->name = "not";
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                     cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == Tok::kName && look().text == "in") {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare);
        cmp->a = std::move(first);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      l = binary(op, std::move(l), parse_concat());
    }
    return l;
  }
  ExprPtr parse_concat() {
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(ExprKind::kConcat);
    e->args.push_back(std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      l = binary(op, std::move(l), parse_pow());
    }
    return l;
  }
  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (skip_op("**")) l = binary("**", std::move(l), parse_unary(true));
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard g(this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto e = make(ExprKind::kUnary);
      e->name = next().text;
      e->a = parse_unary(false);
      node = std::move(e);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard g(this);
    const Token& tok = cur();
    if (tok.type == Tok::kName) {
      auto e = make(ExprKind::kLiteral);
      const std::string& n = tok.text;
      if (n == "true" || n == "True") e->literal = Value::boolean(true);
      else if (n == "false" || n == "False") e->literal = Value::boolean(false);
      else if (n == "none" || n == "None") e->literal = Value::none();
      else {
        e->kind = ExprKind::kName;
        e->name = n;
      }
      next();
      return e;
    }
    if (tok.type == Tok::kString) {
      auto e = make(ExprKind::kLiteral);
      std::string s = next().text;
      while (cur().type == Tok::kString) s += next().text;
      e->literal = Value::string(std::move(s));
      return e;
    }
    if (tok.type == Tok::kInt || tok.type == Tok::kFloat) {
      auto e = make(ExprKind::kLiteral);
      e->literal = tok.type == Tok::kInt ? Value::integer(tok.ival) : Value::floating(tok.fval);
      next();
      return e;
    }
    if (skip_op("(")) {
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      auto e = make(ExprKind::kList);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (skip_op("{")) {
      auto e = make(ExprKind::kDict);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    error("unexpected '" + describe(tok) + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    DepthGuard g(this);
    if (skip_op(".")) {
      if (cur().type == Tok::kName) {
        auto e = make(ExprKind::kGetattr);
        e->a = std::move(node);
        e->name = next().text;
        return e;
      }
      if (cur().type != Tok::kInt) error("expected name or number");
      auto e = make(ExprKind::kGetitem);
      e->a = std::move(node);
      e->b = make(ExprKind::kLiteral);
      e->b->literal = Value::integer(next().ival);
      return e;
    }
    expect_op("[");
    std::vector<ExprPtr> subs;
    while (!is_op("]")) {
      if (!subs.empty()) {
        expect_op(",");
        if (is_op("]")) break;
      }
      subs.push_back(parse_subscribed());
    }
    expect_op("]");
    if (subs.empty()) error("expected subscript expression");
    if (subs.size() == 1 && subs[0]->kind == ExprKind::kSlice) {
      subs[0]->a = std::move(node);
      return std::move(subs[0]);
    }
    auto e = make(ExprKind::kGetitem);
    e->a = std::move(node);
    if (subs.size() == 1) {
      e->b = std::move(subs[0]);
    } else {
      e->b = make(ExprKind::kTuple);
      for (auto& s : subs) {
        if (s->kind == ExprKind::kSlice) error("slices inside tuple subscripts are not supported");
        e->b->args.push_back(std::move(s));
      }
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    auto sl = make(ExprKind::kSlice);
    sl->args.resize(3);
    if (skip_op(":")) {
      // start omitted
    } else {
      ExprPtr e = parse_expression(true);
      if (!is_op(":")) return e;
      next();
      sl->args[0] = std::move(e);
    }
    if (!is_op(":") && !is_op("]") && !is_op(",")) sl->args[1] = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) sl->args[2] = parse_expression(true);
    }
    return sl;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        e.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        e.dyn_kwargs = parse_expression(true);
      } else if (cur().type == Tok::kName && look().type == Tok::kOp && look().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty() || e.dyn_args || e.dyn_kwargs)
          error("invalid syntax for function call expression");
        e.args.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    DepthGuard g(this);
    auto e = make(ExprKind::kCall);
    e->a = std::move(node);
    parse_call_args(*e);
    return e;
  }

  std::string parse_dotted_name() {
    std::string n = expect_name();
    while (is_op(".")) {
      next();
      n += "." + expect_name();
    }
    return n;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      DepthGuard g(this);
      if (!start_inline) next();
      start_inline = false;
      auto e = make(ExprKind::kFilter);
      e->name = parse_dotted_name();
      if (!filter_exists(e->name)) error("no filter named '" + e->name + "'");
      if (is_op("(")) parse_call_args(*e);
      e->a = std::move(node);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    DepthGuard g(this);
    next();  // 'is'
    auto e = make(ExprKind::kTest);
    e->negated = skip_name("not");
    e->name = parse_dotted_name();
    if (!test_exists(e->name)) error("no test named '" + e->name + "'");
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                cur().type == Tok::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error("You cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    e->a = std::move(node);
    return e;
  }
};

}  // namespace

std::unique_ptr<Template> parse_template(const std::string& source, const ParseOptions& opts) {
  Parser p(tokenize(source, opts.lex), opts);
  return p.run();
}

}  // namespace ballast::chat
