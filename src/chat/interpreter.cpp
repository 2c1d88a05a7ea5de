// Statement execution and expression evaluation. Scoping follows jinja2: every for-loop
// iteration and every macro call gets a fresh frame chained to its defining scope, `if`
// and `set` act in the current frame, and namespaces are the only cross-frame mutation.
#include "chat/interpreter.h"

#include <cmath>
#include <limits>

#include "chat/filters.h"
#include "chat/pystr.h"

namespace ballast::chat {

const Value* Scope::find(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get())
    for (const auto& [k, v] : s->vars)
      if (k == name) return &v;
  return nullptr;
}

void Scope::set(const std::string& name, Value v) {
  for (auto& [k, old] : vars)
    if (k == name) {
      old = std::move(v);
      return;
    }
  vars.emplace_back(name, std::move(v));
}

Interpreter::DepthGuard::DepthGuard(Interpreter* i) : in(i) {
  if (++in->depth_ > in->limits_.max_eval_depth) {
    --in->depth_;
    fail("template recursion too deep (limit " + std::to_string(in->limits_.max_eval_depth) + ")");
  }
}

Interpreter::Interpreter(const Limits& limits, std::shared_ptr<Scope> globals)
    : limits_(limits), globals_(std::move(globals)) {}

Interpreter::~Interpreter() {
  for (auto& s : macro_scopes_) {
    s->vars.clear();
    s->parent.reset();
  }
}

void Interpreter::charge(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) fail("template rendering exceeded its work limit");
  if (steps_ >= next_clock_check_) {
    next_clock_check_ = steps_ + 4096;
    if (std::chrono::steady_clock::now() > deadline_)
      fail("template rendering exceeded its time limit (" + std::to_string(limits_.max_render_ms) + " ms)");
  }
}

void Interpreter::check_string(size_t bytes) const {
  if (bytes > limits_.max_value_bytes)
    fail("template built a string larger than " + std::to_string(limits_.max_value_bytes) + " bytes");
}

void Interpreter::check_list(size_t items) const {
  if (items > limits_.max_list_items)
    fail("template built a list longer than " + std::to_string(limits_.max_list_items) + " items");
}

void Interpreter::emit(const TString& t) {
  TString& o = out_.back();
  if (o.s.size() + t.s.size() > limits_.max_output_bytes)
    fail("rendered prompt exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  charge(1 + t.s.size() / 64);
  o.append(t);
}

TString Interpreter::render(const Template& tmpl) {
  out_.clear();
  out_.emplace_back();
  steps_ = 0;
  next_clock_check_ = 4096;
  deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits_.max_render_ms);
  auto scope = std::make_shared<Scope>();
  scope->parent = globals_;
  exec_body(tmpl.body, scope);
  return std::move(out_.front());
}

TString Interpreter::capture(const Body& body, const ScopePtr& scope) {
  // On an exception the whole render is abandoned, so the stack needs no unwinding.
  out_.emplace_back();
  exec_body(body, scope);
  TString r = std::move(out_.back());
  out_.pop_back();
  return r;
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const ScopePtr& scope) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const ScopePtr& scope) {
  DepthGuard g(this);
  charge(1);
  switch (s.kind) {
    case StmtKind::kData: emit(TString(s.text)); return Flow::kNormal;
    case StmtKind::kOutput: {
      Value v = eval(*s.expr, scope);
      emit(v.to_tstring());
      return Flow::kNormal;
    }
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches)
        if (eval(*cond, scope).truthy()) return exec_body(body, scope);
      return exec_body(s.else_body, scope);
    case StmtKind::kFor: exec_for(s, scope); return Flow::kNormal;
    case StmtKind::kSet: assign(s.target, eval(*s.expr, scope), scope); return Flow::kNormal;
    case StmtKind::kSetBlock: {
      Value body = Value::string(capture(s.body, scope));
      assign(s.target, eval(*s.expr, scope, &body), scope);
      return Flow::kNormal;
    }
    case StmtKind::kMacro:
      scope->set(s.name, make_macro(s.name, &s.params, &s.body, scope));
      return Flow::kNormal;
    case StmtKind::kCallBlock: {
      Value caller = make_macro("caller", &s.params, &s.body, scope);
      const Expr& call_expr = *s.expr;
      Value fn = eval(*call_expr.a, scope);
      CallArgs args;
      eval_args(call_expr, scope, args);
      args.kw.emplace_back("caller", caller);
      emit(call(fn, args).to_tstring());
      return Flow::kNormal;
    }
    case StmtKind::kFilterBlock: {
      Value body = Value::string(capture(s.body, scope));
      emit(eval(*s.expr, scope, &body).to_tstring());
      return Flow::kNormal;
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Scope>();
      inner->parent = scope;
      std::vector<Value> values;
      for (const auto& [t, e] : s.assigns) values.push_back(eval(*e, scope));
      for (size_t k = 0; k < values.size(); ++k) assign(s.assigns[k].first, values[k], inner);
      return exec_body(s.body, inner);
    }
    case StmtKind::kScope: return exec_body(s.body, scope);
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
  }
  return Flow::kNormal;
}

void Interpreter::assign(const Target& t, const Value& v, const ScopePtr& scope) {
  switch (t.kind) {
    case Target::Kind::kName: scope->set(t.name, v); return;
    case Target::Kind::kAttr: {
      Value ns = lookup(t.name, scope);
      if (!ns.is_object() || !ns.obj()->assignable)
        fail("can not assign attribute '" + t.attr + "' on non-namespace object '" + t.name + "'");
      ns.obj()->set(t.attr, v);
      return;
    }
    case Target::Kind::kTuple: {
      List items = py_iter(v.need());
      if (items.size() != t.items.size())
        fail(items.size() > t.items.size() ? "too many values to unpack (expected " + std::to_string(t.items.size()) + ")"
                                           : "not enough values to unpack (expected " + std::to_string(t.items.size()) + ", got " + std::to_string(items.size()) + ")");
      for (size_t k = 0; k < items.size(); ++k) assign(t.items[k], items[k], scope);
      return;
    }
  }
}

void Interpreter::exec_for(const Stmt& s, const ScopePtr& scope) {
  Value iterable = eval(*s.expr, scope);
  if (iterable.is_none() || iterable.is_number() || iterable.is_callable())
    fail("'" + iterable.type_name() + "' object is not iterable");
  List items = py_iter(iterable);
  if (s.cond) {
    List kept;
    for (const Value& item : items) {
      charge(1);
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(s.target, item, probe);
      if (eval(*s.cond, probe).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_body(s.else_body, scope);
    return;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  auto shared_items = std::make_shared<const List>(std::move(items));
  for (int64_t k = 0; k < n; ++k) {
    charge(1);
    auto iter_scope = std::make_shared<Scope>();
    iter_scope->parent = scope;
    auto loop = std::make_shared<Object>();
    loop->type_name = "LoopContext";
    loop->loop_items = shared_items;
    loop->loop_index = k;
    iter_scope->set("loop", Value::object(loop));
    assign(s.target, (*shared_items)[k], iter_scope);
    Flow f = exec_body(s.body, iter_scope);
    if (f == Flow::kBreak) break;
  }
}

Value Interpreter::make_macro(const std::string& name, const std::vector<Param>* params,
                              const Body* body, const ScopePtr& def_scope) {
  if (macro_scopes_.empty() || macro_scopes_.back() != def_scope) macro_scopes_.push_back(def_scope);
  return Value::callable(
      name,
      [this, name, params, body, def_scope](Interpreter&, CallArgs& args) -> Value {
        if (++call_depth_ > limits_.max_call_depth) {
          --call_depth_;
          fail("macro recursion too deep (limit " + std::to_string(limits_.max_call_depth) + ")");
        }
        struct Dec {
          int* d;
          ~Dec() { --*d; }
        } dec{&call_depth_};
        auto frame = std::make_shared<Scope>();
        frame->parent = def_scope;
        std::vector<bool> bound(params->size(), false);
        List varargs;
        for (size_t k = 0; k < args.pos.size(); ++k) {
          if (k < params->size()) {
            frame->set((*params)[k].name, args.pos[k]);
            bound[k] = true;
          } else {
            varargs.push_back(args.pos[k]);
          }
        }
        Dict kwargs;
        for (auto& [key, v] : args.kw) {
          bool found = false;
          for (size_t k = 0; k < params->size(); ++k)
            if ((*params)[k].name == key) {
              if (bound[k]) fail("macro '" + name + "' got multiple values for argument '" + key + "'");
              frame->set(key, v);
              bound[k] = found = true;
            }
          if (found) continue;
          if (key == "caller") frame->set("caller", v);
          else kwargs.set(Value::string(key), v);
        }
        for (size_t k = 0; k < params->size(); ++k) {
          if (bound[k]) continue;
          const Param& p = (*params)[k];
          frame->set(p.name, p.default_value ? eval(*p.default_value, frame)
                                             : Value::undefined("parameter '" + p.name + "' was not provided"));
        }
        frame->set("varargs", Value::tuple(std::move(varargs)));
        frame->set("kwargs", Value::dict(std::move(kwargs)));
        return Value::string(capture(*body, frame));
      },
      true);
}

// ---- expressions -----------------------------------------------------------------------

Value Interpreter::lookup(const std::string& name, const ScopePtr& scope) const {
  if (const Value* v = scope->find(name)) return *v;
  return Value::undefined("'" + name + "' is undefined");
}

void Interpreter::eval_args(const Expr& e, const ScopePtr& scope, CallArgs& out) {
  for (const auto& a : e.args) out.pos.push_back(eval(*a, scope));
  for (const auto& [k, a] : e.kwargs) out.kw.emplace_back(k, eval(*a, scope));
  if (e.dyn_args) {
    Value v = eval(*e.dyn_args, scope);
    for (const Value& item : py_iter(v.need())) out.pos.push_back(item);
  }
  if (e.dyn_kwargs) {
    Value v = eval(*e.dyn_kwargs, scope);
    if (!v.is_dict()) fail("argument after ** must be a mapping, not " + v.type_name());
    for (const auto& [k, item] : v.dict_ref().items) {
      if (!k.is_string()) fail("keywords must be strings");
      out.kw.emplace_back(k.str(), item);
    }
  }
}

Value Interpreter::call(const Value& fn, CallArgs& args) {
  if (!fn.is_callable()) {
    fn.need();
    fail("'" + fn.type_name() + "' object is not callable");
  }
  charge(1);
  return fn.fn().fn(*this, args);
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  FilterFn f = find_filter(name);
  if (!f) fail("no filter named '" + name + "'");
  charge(1);
  return f(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& v, CallArgs& args) {
  TestFn t = find_test(name);
  if (!t) fail("no test named '" + name + "'");
  charge(1);
  return t(*this, v, args);
}

Value Interpreter::eval(const Expr& e, const ScopePtr& scope, const Value* block_input) {
  DepthGuard g(this);
  charge(1);
  switch (e.kind) {
    case ExprKind::kLiteral: return e.literal;
    case ExprKind::kName: return lookup(e.name, scope);
    case ExprKind::kBlockInput: return block_input ? *block_input : Value::string("");
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      for (const auto& a : e.args) items.push_back(eval(*a, scope));
      return e.kind == ExprKind::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
    }
    case ExprKind::kDict: {
      Dict d;
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = eval(*e.args[k], scope);
        if (key.is_list() && !key.is_tuple()) fail("unhashable type: 'list'");
        if (key.is_dict()) fail("unhashable type: 'dict'");
        d.set(key, eval(*e.args[k + 1], scope));
      }
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetattr: return get_attr(*this, eval(*e.a, scope, block_input).need(), e.name);
    case ExprKind::kGetitem: {
      Value base = eval(*e.a, scope, block_input);
      base.need();
      return get_item(*this, base, eval(*e.b, scope));
    }
    case ExprKind::kSlice: return eval_slice(eval(*e.a, scope, block_input).need(), e, scope);
    case ExprKind::kCall: {
      Value fn = eval(*e.a, scope, block_input);
      CallArgs args;
      eval_args(e, scope, args);
      return call(fn, args);
    }
    case ExprKind::kFilter: {
      Value input = e.a ? eval(*e.a, scope, block_input) : (block_input ? *block_input : Value());
      CallArgs args;
      eval_args(e, scope, args);
      return apply_filter(e.name, input, args);
    }
    case ExprKind::kTest: {
      Value input = eval(*e.a, scope, block_input);
      CallArgs args;
      eval_args(e, scope, args);
      bool r = apply_test(e.name, input, args);
      return Value::boolean(e.negated ? !r : r);
    }
    case ExprKind::kUnary: {
      Value v = eval(*e.a, scope, block_input);
      if (e.name == "not") return Value::boolean(!v.truthy());
      v.need();
      if (!v.is_number()) fail("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
      if (e.name == "+") return v.is_float() ? v : Value::integer(v.as_int());
      if (v.is_float()) return Value::floating(-v.as_double());
      if (v.as_int() == std::numeric_limits<int64_t>::min()) fail("integer overflow");
      return Value::integer(-v.as_int());
    }
    case ExprKind::kBinary: {
      Value a = eval(*e.a, scope, block_input);
      if (e.name == "and") return a.truthy() ? eval(*e.b, scope, block_input) : a;
      if (e.name == "or") return a.truthy() ? a : eval(*e.b, scope, block_input);
      return eval_binary(e.name, a, eval(*e.b, scope, block_input));
    }
    case ExprKind::kCompare: return eval_compare(e, scope);
    case ExprKind::kConcat: {
      TString out;
      for (const auto& a : e.args) {
        out.append(eval(*a, scope, block_input).to_tstring());
        check_string(out.s.size());
      }
      charge(out.s.size() / 64);
      return Value::string(std::move(out));
    }
    case ExprKind::kCond: {
      if (eval(*e.b, scope, block_input).truthy()) return eval(*e.a, scope, block_input);
      if (e.c) return eval(*e.c, scope, block_input);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  fail("internal error: unknown expression");
}

Value Interpreter::eval_slice(const Value& base, const Expr& e, const ScopePtr& scope) {
  std::optional<int64_t> idx[3];
  for (int k = 0; k < 3; ++k) {
    if (!e.args[k]) continue;
    Value v = eval(*e.args[k], scope);
    if (v.is_none()) continue;
    if (!v.is_int() && !v.is_bool())
      fail("slice indices must be integers or None or have an __index__ method");
    idx[k] = v.as_int();
  }
  if (base.is_string()) {
    TString r = str_slice(base.tstr(), idx[0], idx[1], idx[2]);
    return base.is_markup() ? Value::markup(std::move(r)) : Value::string(std::move(r));
  }
  if (base.is_list() && !base.is_generator()) {
    List out;
    for (int64_t k : slice_indices(static_cast<int64_t>(base.items().size()), idx[0], idx[1], idx[2]))
      out.push_back(base.items()[k]);
    return base.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  return Value::undefined("'" + base.type_name() + " object' has no attribute 'slice'");
}

Value Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.a, scope);
  for (size_t k = 0; k < e.ops.size(); ++k) {
    Value right = eval(*e.args[k], scope);
    const std::string& op = e.ops[k];
    bool ok;
    if (op == "==") ok = py_equal(left, right);
    else if (op == "!=") ok = !py_equal(left, right);
    else if (op == "in" || op == "not in") {
      ok = eval_binary("in", left, right).as_bool();
      if (op == "not in") ok = !ok;
    } else {
      int c = py_compare(left, right, op.c_str());
      ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

}  // namespace ballast::chat
