// Tree-walking evaluator for parsed templates with jinja2's scoping rules and hard limits
// on work, output size and recursion so hostile templates or inputs cannot hang or crash.
#pragma once
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/ast.h"
#include "chat/value.h"

namespace ballast::chat {

struct Limits {
  size_t max_output_bytes = 16u << 20;  // rendered text and any captured block
  size_t max_value_bytes = 16u << 20;   // any single string built during rendering
  size_t max_list_items = 1u << 20;     // any single list built during rendering
  uint64_t max_steps = 20'000'000;      // evaluated nodes + loop iterations + copied bytes/64
  uint32_t max_render_ms = 5000;        // wall-clock cap, checked every few thousand steps
  int max_call_depth = 200;             // nested macro calls
  int max_eval_depth = 600;             // nested expression/statement evaluation
};

// A variable frame. Loops create one per iteration, macros one per call; `if` creates none.
struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value v);
};
using ScopePtr = std::shared_ptr<Scope>;

class Interpreter {
 public:
  Interpreter(const Limits& limits, std::shared_ptr<Scope> globals);
  // Breaks the scope <-> macro reference cycles (see macro_scopes_).
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  TString render(const Template& tmpl);  // throws TemplateException

  Value call(const Value& fn, CallArgs& args);
  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& v, CallArgs& args);

  // Accounting hooks used by filters/methods that build large values.
  void charge(uint64_t steps);
  void check_string(size_t bytes) const;
  void check_list(size_t items) const;
  const Limits& limits() const { return limits_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Limits limits_;
  ScopePtr globals_;
  std::vector<TString> out_;  // capture stack; front is the final output
  uint64_t steps_ = 0;
  uint64_t next_clock_check_ = 4096;
  std::chrono::steady_clock::time_point deadline_;
  int depth_ = 0;
  int call_depth_ = 0;
  // Scopes a macro closes over. A macro stored in (or below) its defining scope makes a
  // shared_ptr cycle; the destructor clears these scopes so every render frees its values.
  std::vector<ScopePtr> macro_scopes_;

  struct DepthGuard {
    Interpreter* in;
    explicit DepthGuard(Interpreter* i);
    ~DepthGuard() { --in->depth_; }
  };

  void emit(const TString& t);
  Flow exec_body(const Body& body, const ScopePtr& scope);
  Flow exec(const Stmt& s, const ScopePtr& scope);
  TString capture(const Body& body, const ScopePtr& scope);
  void exec_for(const Stmt& s, const ScopePtr& scope);
  void assign(const Target& t, const Value& v, const ScopePtr& scope);
  Value make_macro(const std::string& name, const std::vector<Param>* params, const Body* body,
                   const ScopePtr& def_scope);

  Value eval(const Expr& e, const ScopePtr& scope, const Value* block_input = nullptr);
  Value lookup(const std::string& name, const ScopePtr& scope) const;
  void eval_args(const Expr& e, const ScopePtr& scope, CallArgs& out);
  Value eval_binary(const std::string& op, const Value& a, const Value& b);
  Value eval_compare(const Expr& e, const ScopePtr& scope);
  Value eval_slice(const Value& base, const Expr& e, const ScopePtr& scope);
};

// Attribute and item access with jinja2's sandboxed getattr/getitem fallbacks.
Value get_attr(Interpreter& in, const Value& obj, const std::string& name);
Value get_item(Interpreter& in, const Value& obj, const Value& key);

// Python-style binary arithmetic shared with filters (sum).
Value py_add(Interpreter& in, const Value& a, const Value& b);
// printf-style `fmt % args` (args: a tuple or a single value).
Value percent_format(Interpreter& in, const Value& fmt, const Value& args);

}  // namespace ballast::chat
