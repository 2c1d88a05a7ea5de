// Syntax tree produced by the parser and walked by the interpreter.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace ballast::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,    // value
  kName,       // name
  kList,       // args = items
  kTuple,      // args = items
  kDict,       // args = key, value, key, value, ...
  kGetattr,    // a . name
  kGetitem,    // a [ b ]
  kSlice,      // a [ args[0] : args[1] : args[2] ]  (null = omitted)
  kCall,       // a ( args, kwargs, dyn_args, dyn_kwargs )
  kFilter,     // a | name(args...)   (a null inside {% filter %} / block set)
  kTest,       // a is [not] name(args...)
  kUnary,      // name in {"-", "+", "not"}; a
  kBinary,     // a name b for + - * / // % ** and or in "not in"
  kCompare,    // a ops[i] args[i] ...
  kConcat,     // args joined with ~
  kCond,       // a if b else c
  kBlockInput  // placeholder for the body of {% filter %} / {% set x | f %}
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value literal;
  std::string name;
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  ExprPtr dyn_args, dyn_kwargs;
};

// Assignment target of for/set: a name, a namespace attribute, or a tuple of targets.
struct Target {
  enum class Kind { kName, kAttr, kTuple } kind = Kind::kName;
  std::string name;  // variable (or namespace variable for kAttr)
  std::string attr;
  std::vector<Target> items;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kData,        // text
  kOutput,      // {{ expr }}
  kIf,          // branches (+ else_body)
  kFor,         // target in expr [if cond] body else_body
  kSet,         // target = expr
  kSetBlock,    // target [| filters] = rendered body
  kMacro,       // name(params) body
  kCallBlock,   // {% call(params) expr %} body
  kFilterBlock, // {% filter chain %} body
  kWith,        // assignments body
  kBreak,
  kContinue,
  kScope,       // {% generation %} body: rendered transparently
};

struct Param {
  std::string name;
  ExprPtr default_value;  // null = required
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;       // output, for-iterable, set value, call expression, filter chain
  ExprPtr cond;       // for-loop filter
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::string name;   // macro name
  std::vector<Param> params;
  std::vector<std::pair<Target, ExprPtr>> assigns;  // with-block
  bool recursive = false;
};

struct Template {
  Body body;
};

}  // namespace ballast::chat
