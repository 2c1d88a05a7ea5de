// Runtime values of the template interpreter: a small model of the Python objects that
// jinja2 templates see (None, bool, int, float, str, list/tuple, dict, namespace, callables),
// plus taint tracking on strings so rendered bytes can be traced back to request data.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ballast::chat {

// Internal error type: thrown inside the interpreter and converted to Status at the
// module boundary (chat_template.cpp), so no exception ever escapes src/chat.
struct TemplateException {
  std::string message;
};
[[noreturn]] void fail(std::string message);

struct Span {
  size_t begin = 0, end = 0;
};

// A string plus the byte ranges of it that came from request data ("tainted").
struct TString {
  std::string s;
  std::vector<Span> taint;  // sorted, disjoint, non-adjacent

  TString() = default;
  explicit TString(std::string text, bool tainted = false);
  void append(std::string_view text) { s.append(text); }
  void append(const TString& o) { append(o, 0, o.s.size()); }
  void append(const TString& o, size_t begin, size_t end);  // o.s[begin, end)
  TString substr(size_t begin, size_t end) const;
  bool tainted_at(size_t pos) const;
  bool any_taint(size_t begin, size_t end) const;
  void mark(size_t begin, size_t end);  // taint s[begin, end)
};

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kObject, kCallable };

class Value;
class Interpreter;

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

using List = std::vector<Value>;

// Insertion-ordered mapping with Python key equality (1 == 1.0 == True).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// Attribute bag: namespace(), loop, cycler, joiner objects.
struct Object {
  std::string type_name;  // "Namespace", "LoopContext", ...
  bool assignable = false;  // only namespaces accept {% set obj.attr = ... %}
  std::vector<std::pair<std::string, Value>> attrs;
  // LoopContext attributes are computed on access from these (a loop iteration must be
  // cheap: templates may legally run many of them).
  std::shared_ptr<const std::vector<Value>> loop_items;
  int64_t loop_index = -1;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value v);
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
  bool is_macro = false;
};

class Value {
 public:
  Value() = default;  // Undefined
  static Value undefined(std::string hint);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s, bool tainted = false);
  static Value string(TString s);
  static Value markup(TString s);
  static Value list(List items);
  static Value tuple(List items);
  // jinja2 filters like map/select return lazy generators: always truthy, no len(),
  // not JSON-serializable, not subscriptable. Modelled as a flagged list.
  static Value generator(List items);
  static Value dict(Dict d);
  static Value object(std::shared_ptr<Object> o);
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn,
                        bool is_macro = false);
  static Value from_json(const nlohmann::ordered_json& j, bool tainted);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_generator() const { return kind_ == Kind::kList && gen_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_callable() const { return kind_ == Kind::kCallable; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }
  double as_double() const;  // for any number
  const std::string& str() const { return s_->s; }
  const TString& tstr() const { return *s_; }
  const List& items() const { return *list_; }
  const Dict& dict_ref() const { return *dict_; }
  const std::shared_ptr<Object>& obj() const { return obj_; }
  const Callable& fn() const { return *fn_; }
  const std::string& undefined_hint() const { return *hint_; }
  const void* identity() const;  // for `is sameas`

  bool truthy() const;
  std::string type_name() const;  // Python type name for error messages
  // str(value) as Python prints it; tainted bytes keep their taint.
  TString to_tstring() const;
  std::string to_str() const { return to_tstring().s; }
  std::string repr() const;
  // Raises jinja2's UndefinedError if this is Undefined (for operations that need a value).
  const Value& need() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false, markup_ = false, tuple_ = false, gen_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const TString> s_;
  std::shared_ptr<const List> list_;
  std::shared_ptr<const Dict> dict_;
  std::shared_ptr<Object> obj_;
  std::shared_ptr<const Callable> fn_;
  std::shared_ptr<const std::string> hint_;
};

// Python semantics helpers.
bool py_equal(const Value& a, const Value& b);
int py_compare(const Value& a, const Value& b, const char* op);  // <0, 0, >0; throws TypeError
std::string py_float_repr(double d);
std::string py_str_repr(std::string_view s);
// Number of items for len(); throws for unsized values.
int64_t py_len(const Value& v);
// Iterate like Python's iter(): list items, dict keys, string characters.
List py_iter(const Value& v);

struct JsonOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};
// json.dumps(value, ...) with Python's formatting; taint of string values carries over.
TString json_dumps(const Value& v, const JsonOptions& opts);

}  // namespace ballast::chat
