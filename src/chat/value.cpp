// Value construction, Python-compatible printing (str/repr/float formatting), equality,
// ordering, and json.dumps.
#include "chat/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/unicode.h"

namespace ballast::chat {

void fail(std::string message) { throw TemplateException{std::move(message)}; }

// ---- TString ---------------------------------------------------------------------------

TString::TString(std::string text, bool tainted) : s(std::move(text)) {
  if (tainted && !s.empty()) taint.push_back({0, s.size()});
}

void TString::mark(size_t begin, size_t end) {
  if (begin >= end) return;
  if (!taint.empty() && taint.back().end >= begin && taint.back().begin <= begin) {
    taint.back().end = std::max(taint.back().end, end);
    return;
  }
  if (taint.empty() || taint.back().end < begin) {
    taint.push_back({begin, end});
    return;
  }
  // Out-of-order insertion (rare): rebuild.
  taint.push_back({begin, end});
  std::sort(taint.begin(), taint.end(), [](Span a, Span b) { return a.begin < b.begin; });
  std::vector<Span> merged;
  for (Span sp : taint) {
    if (!merged.empty() && merged.back().end >= sp.begin)
      merged.back().end = std::max(merged.back().end, sp.end);
    else
      merged.push_back(sp);
  }
  taint = std::move(merged);
}

void TString::append(const TString& o, size_t begin, size_t end) {
  size_t base = s.size();
  s.append(o.s, begin, end - begin);
  for (const Span& sp : o.taint) {
    size_t b = std::max(sp.begin, begin), e = std::min(sp.end, end);
    if (b < e) mark(base + (b - begin), base + (e - begin));
  }
}

TString TString::substr(size_t begin, size_t end) const {
  TString out;
  out.append(*this, begin, end);
  return out;
}

bool TString::tainted_at(size_t pos) const { return any_taint(pos, pos + 1); }

bool TString::any_taint(size_t begin, size_t end) const {
  for (const Span& sp : taint)
    if (sp.begin < end && begin < sp.end) return true;
  return false;
}

// ---- Dict / Object ---------------------------------------------------------------------

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (py_equal(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.is_string() && k.str() == key) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  for (auto& [k, v] : items)
    if (py_equal(k, key)) {
      v = std::move(value);
      return;
    }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* Object::find(std::string_view name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}

void Object::set(const std::string& name, Value v) {
  for (auto& [k, old] : attrs)
    if (k == name) {
      old = std::move(v);
      return;
    }
  attrs.emplace_back(name, std::move(v));
}

// ---- Value -----------------------------------------------------------------------------

Value Value::undefined(std::string hint) {
  Value v;
  v.hint_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.b_ = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.i_ = i;
  return v;
}
Value Value::floating(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.f_ = f;
  return v;
}
Value Value::string(std::string s, bool tainted) { return string(TString(std::move(s), tainted)); }
Value Value::string(TString s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const TString>(std::move(s));
  return v;
}
Value Value::markup(TString s) {
  Value v = string(std::move(s));
  v.markup_ = true;
  return v;
}
Value Value::list(List items) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<const List>(std::move(items));
  return v;
}
Value Value::tuple(List items) {
  Value v = list(std::move(items));
  v.tuple_ = true;
  return v;
}
Value Value::generator(List items) {
  Value v = list(std::move(items));
  v.gen_ = true;
  return v;
}
Value Value::dict(Dict d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = std::make_shared<const Dict>(std::move(d));
  return v;
}
Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind_ = Kind::kObject;
  v.obj_ = std::move(o);
  return v;
}
Value Value::callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn,
                      bool is_macro) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.fn_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn), is_macro});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j, bool tainted) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return floating(static_cast<double>(u));
      return integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>(), tainted);
    case nlohmann::ordered_json::value_t::array: {
      List items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e, tainted));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      d.items.reserve(j.size());
      // Keys of request data are tainted too: templates print tool parameter names
      // (`properties.items()`), and a key is as much client text as a value.
      for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(string(it.key(), tainted), from_json(it.value(), tainted));
      return dict(std::move(d));
    }
    default: return none();
  }
}

double Value::as_double() const {
  if (kind_ == Kind::kFloat) return f_;
  return static_cast<double>(as_int());
}

const void* Value::identity() const {
  switch (kind_) {
    case Kind::kString: return s_.get();
    case Kind::kList: return list_.get();
    case Kind::kDict: return dict_.get();
    case Kind::kObject: return obj_.get();
    case Kind::kCallable: return fn_.get();
    default: return nullptr;
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined: case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0.0;
    case Kind::kString: return !s_->s.empty();
    case Kind::kList: return gen_ || !list_->empty();
    case Kind::kDict: return !dict_->items.empty();
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return markup_ ? "Markup" : "str";
    case Kind::kList: return gen_ ? "generator" : tuple_ ? "tuple" : "list";
    case Kind::kDict: return "dict";
    case Kind::kObject: return obj_->type_name;
    case Kind::kCallable: return "function";
  }
  return "object";
}

const Value& Value::need() const {
  if (kind_ == Kind::kUndefined) fail(hint_ ? *hint_ : "value is undefined");
  return *this;
}

// ---- printing --------------------------------------------------------------------------

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (size_t k = 0; k < epos; ++k)
    if (sci[k] != '.') digits += sci[k];
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = neg ? "-" : "";
  int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (n <= exp + 1) {
        out += digits + std::string(exp + 1 - n, '0') + ".0";
      } else {
        out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
      }
    } else {
      out += "0." + std::string(-exp - 1, '0') + digits;
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  char eb[16];
  std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
  return out + eb;
}

std::string py_str_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, q);
  size_t pos = 0;
  while (pos < s.size()) {
    size_t start = pos;
    char32_t c = utf8_next(s, pos);
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && !py_isprintable(c))) {
      char b[16];
      if (c < 0x100)
        std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000)
        std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(b, sizeof b, "\\U%08x", static_cast<unsigned>(c));
      out += b;
    } else {
      out.append(s.substr(start, pos - start));
    }
  }
  out += q;
  return out;
}

static void repr_into(const Value& v, TString& out, int depth) {
  if (depth > 200) fail("maximum recursion depth exceeded while getting the repr of an object");
  switch (v.kind()) {
    case Kind::kString: {
      size_t b = out.s.size();
      out.append(py_str_repr(v.str()));
      if (!v.tstr().taint.empty()) out.mark(b, out.s.size());
      return;
    }
    case Kind::kList: {
      if (v.is_generator()) {
        out.append("<generator object>");
        return;
      }
      out.append(v.is_tuple() ? "(" : "[");
      bool first = true;
      for (const Value& e : v.items()) {
        if (!first) out.append(", ");
        first = false;
        repr_into(e, out, depth + 1);
      }
      if (v.is_tuple() && v.items().size() == 1) out.append(",");
      out.append(v.is_tuple() ? ")" : "]");
      return;
    }
    case Kind::kDict: {
      out.append("{");
      bool first = true;
      for (const auto& [k, e] : v.dict_ref().items) {
        if (!first) out.append(", ");
        first = false;
        repr_into(k, out, depth + 1);
        out.append(": ");
        repr_into(e, out, depth + 1);
      }
      out.append("}");
      return;
    }
    case Kind::kObject: {
      if (v.obj()->type_name == "Namespace") {
        out.append("<Namespace {");
        bool first = true;
        for (const auto& [k, e] : v.obj()->attrs) {
          if (!first) out.append(", ");
          first = false;
          out.append(py_str_repr(k));
          out.append(": ");
          repr_into(e, out, depth + 1);
        }
        out.append("}>");
      } else {
        out.append("<" + v.obj()->type_name + " object>");
      }
      return;
    }
    case Kind::kUndefined: out.append("Undefined"); return;
    default: out.append(v.to_str()); return;
  }
}

std::string Value::repr() const {
  TString t;
  repr_into(*this, t, 0);
  return t.s;
}

TString Value::to_tstring() const {
  switch (kind_) {
    case Kind::kUndefined: return TString();
    case Kind::kNone: return TString("None");
    case Kind::kBool: return TString(b_ ? "True" : "False");
    case Kind::kInt: return TString(std::to_string(i_));
    case Kind::kFloat: return TString(py_float_repr(f_));
    case Kind::kString: return *s_;
    case Kind::kCallable: return TString("<function " + fn_->name + ">");
    default: {
      TString t;
      repr_into(*this, t, 0);
      return t;
    }
  }
}

// ---- comparisons -----------------------------------------------------------------------

bool py_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined: case Kind::kNone: return true;
    case Kind::kString: return a.str() == b.str();
    case Kind::kList: {
      if (a.is_generator() || b.is_generator()) return a.identity() == b.identity();
      if (a.is_tuple() != b.is_tuple()) return false;
      const List &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t k = 0; k < x.size(); ++k)
        if (!py_equal(x[k], y[k])) return false;
      return true;
    }
    case Kind::kDict: {
      const Dict &x = a.dict_ref(), &y = b.dict_ref();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.find(k);
        if (!o || !py_equal(v, *o)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

int py_compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.str().compare(b.str());  // UTF-8 byte order == code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const List &x = a.items(), &y = b.items();
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (py_equal(x[k], y[k])) continue;
      return py_compare(x[k], y[k], op);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  a.need();
  b.need();
  fail(std::string("'") + op + "' not supported between instances of '" + a.type_name() +
       "' and '" + b.type_name() + "'");
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return 0;
    case Kind::kString: return static_cast<int64_t>(utf8_length(v.str()));
    case Kind::kList:
      if (v.is_generator()) fail("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.items().size());
    case Kind::kDict: return static_cast<int64_t>(v.dict_ref().items.size());
    default: fail("object of type '" + v.type_name() + "' has no len()");
  }
}

List py_iter(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined: return {};
    case Kind::kList: return v.items();
    case Kind::kDict: {
      List keys;
      for (const auto& kv : v.dict_ref().items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::kString: {
      List chars;
      const TString& t = v.tstr();
      size_t pos = 0;
      while (pos < t.s.size()) {
        size_t b = pos;
        utf8_next(t.s, pos);
        chars.push_back(Value::string(t.substr(b, pos)));
      }
      return chars;
    }
    default: fail("'" + v.type_name() + "' object is not iterable");
  }
}

// ---- json.dumps ------------------------------------------------------------------------

static void json_string(const TString& t, size_t b, size_t e, bool ensure_ascii, TString& out) {
  out.append("\"");
  size_t pos = b;
  while (pos < e) {
    size_t start = pos;
    char32_t c = utf8_next(t.s, pos);
    size_t ob = out.s.size();
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default: {
        char buf[16];
        if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
          if (c >= 0x10000) {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (unsigned)(v >> 10),
                          0xDC00 + (unsigned)(v & 0x3FF));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          }
          out.append(buf);
        } else {
          out.append(std::string_view(t.s).substr(start, pos - start));
        }
      }
    }
    if (t.any_taint(start, pos)) out.mark(ob, out.s.size());
  }
  out.append("\"");
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(d);
}

static void dumps_into(const Value& v, const JsonOptions& o, int level, TString& out) {
  if (level > 200) fail("maximum recursion depth exceeded in tojson");
  auto newline = [&](int lvl) {
    out.append("\n");
    for (int k = 0; k < lvl; ++k) out.append(o.indent);
  };
  switch (v.kind()) {
    case Kind::kNone: out.append("null"); return;
    case Kind::kBool: out.append(v.as_bool() ? "true" : "false"); return;
    case Kind::kInt: out.append(std::to_string(v.as_int())); return;
    case Kind::kFloat: out.append(json_float(v.as_double())); return;
    case Kind::kString: json_string(v.tstr(), 0, v.str().size(), o.ensure_ascii, out); return;
    case Kind::kList: {
      if (v.is_generator()) fail("Object of type generator is not JSON serializable");
      if (v.items().empty()) {
        out.append("[]");
        return;
      }
      out.append("[");
      if (o.has_indent) newline(level + 1);
      bool first = true;
      for (const Value& e : v.items()) {
        if (!first) {
          out.append(o.item_sep);
          if (o.has_indent) newline(level + 1);
        }
        first = false;
        dumps_into(e, o, level + 1, out);
      }
      if (o.has_indent) newline(level);
      out.append("]");
      return;
    }
    case Kind::kDict: {
      if (v.dict_ref().items.empty()) {
        out.append("{}");
        return;
      }
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : v.dict_ref().items) items.push_back(&kv);
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) {
          return py_compare(a->first, b->first, "<") < 0;
        });
      out.append("{");
      if (o.has_indent) newline(level + 1);
      bool first = true;
      for (const auto* kv : items) {
        if (!first) {
          out.append(o.item_sep);
          if (o.has_indent) newline(level + 1);
        }
        first = false;
        const Value& k = kv->first;
        if (k.is_string()) {
          json_string(k.tstr(), 0, k.str().size(), o.ensure_ascii, out);
        } else if (k.is_none() || k.is_bool() || k.is_int() || k.is_float()) {
          std::string ks = k.is_none() ? "null"
                           : k.is_bool() ? (k.as_bool() ? "true" : "false")
                           : k.is_int()  ? std::to_string(k.as_int())
                                         : json_float(k.as_double());
          out.append("\"" + ks + "\"");
        } else {
          fail("keys must be str, int, float, bool or None, not " + k.type_name());
        }
        out.append(o.key_sep);
        dumps_into(kv->second, o, level + 1, out);
      }
      if (o.has_indent) newline(level);
      out.append("}");
      return;
    }
    default: fail("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

TString json_dumps(const Value& v, const JsonOptions& opts) {
  TString out;
  dumps_into(v, opts, 0, out);
  return out;
}

}  // namespace ballast::chat
