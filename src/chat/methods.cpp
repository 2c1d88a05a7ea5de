// Attribute/item access and the Python methods templates call on str, dict and list
// (message.content.strip(), tool.get('x'), d.items() ...). Mutating list/dict methods are
// refused exactly as jinja2's ImmutableSandboxedEnvironment refuses them.
#include <set>

#include "chat/filters.h"
#include "chat/interpreter.h"
#include "chat/pystr.h"
#include "chat/unicode.h"

namespace ballast::chat {
namespace {

std::string object_desc(const Value& v) { return v.type_name() + " object"; }

Value missing_attr(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
}

Value str_value(const Value& self, TString t) {
  return self.is_markup() ? Value::markup(std::move(t)) : Value::string(std::move(t));
}

const std::string& need_str(const Value& v, const char* what) {
  if (!v.is_string()) {
    v.need();
    fail(std::string(what) + " must be str, not " + v.type_name());
  }
  return v.str();
}

std::optional<std::string> opt_chars(const std::optional<Value>& v) {
  if (!v || v->is_none()) return std::nullopt;
  return need_str(*v, "strip arg");
}

bool prefix_test(const Value& self, const std::optional<Value>& arg, bool suffix) {
  if (!arg) fail(std::string(suffix ? "endswith" : "startswith") + "() takes at least 1 argument (0 given)");
  const std::string& s = self.str();
  auto check = [&](const Value& p) {
    const std::string& x = need_str(p, suffix ? "endswith first arg" : "startswith first arg");
    if (x.size() > s.size()) return false;
    return suffix ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
  };
  if (arg->is_tuple()) {
    for (const Value& p : arg->items())
      if (check(p)) return true;
    return false;
  }
  return check(*arg);
}

bool all_cps(const std::string& s, bool (*pred)(char32_t)) {
  if (s.empty()) return false;
  size_t pos = 0;
  while (pos < s.size())
    if (!pred(utf8_next(s, pos))) return false;
  return true;
}

Value list_of(std::vector<TString> parts) {
  List out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return Value::list(std::move(out));
}

// str.format with positional/keyword fields and no format specs beyond the field name.
Value str_format(Interpreter& in, const Value& self, CallArgs& args) {
  const std::string& f = self.str();
  TString out;
  size_t auto_idx = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    char c = f[k];
    if (c == '{' && k + 1 < f.size() && f[k + 1] == '{') {
      out.append("{");
      ++k;
    } else if (c == '}' && k + 1 < f.size() && f[k + 1] == '}') {
      out.append("}");
      ++k;
    } else if (c == '{') {
      size_t close = f.find('}', k);
      if (close == std::string::npos) fail("Single '{' encountered in format string");
      std::string field = f.substr(k + 1, close - k - 1);
      if (field.find_first_of(":!.[") != std::string::npos)
        fail("format specs in str.format are not supported");
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_idx >= args.pos.size()) fail("Replacement index out of range for positional args tuple");
        v = &args.pos[auto_idx++];
      } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
        size_t idx = std::stoul(field);
        if (idx >= args.pos.size()) fail("Replacement index out of range for positional args tuple");
        v = &args.pos[idx];
      } else {
        for (auto& [key, val] : args.kw)
          if (key == field) v = &val;
        if (!v) fail("KeyError: '" + field + "'");
      }
      out.append(v->to_tstring());
      k = close;
    } else if (c == '}') {
      fail("Single '}' encountered in format string");
    } else {
      out.append(self.tstr(), k, k + 1);
    }
  }
  in.check_string(out.s.size());
  return Value::string(std::move(out));
}

Value call_str_method(Interpreter& in, const Value& self, const std::string& m, CallArgs& args) {
  const TString& t = self.tstr();
  if (m == "strip" || m == "lstrip" || m == "rstrip") {
    auto a = bind_args(m, args, {"chars"});
    return str_value(self, str_strip(t, opt_chars(a[0]), m != "rstrip", m != "lstrip"));
  }
  if (m == "split" || m == "rsplit") {
    auto a = bind_args(m, args, {"sep", "maxsplit"});
    std::optional<std::string> sep;
    if (a[0] && !a[0]->is_none()) sep = need_str(*a[0], "sep");
    int64_t maxsplit = arg_int(a[1], -1, "maxsplit");
    return list_of(m == "split" ? str_split(t, sep, maxsplit) : str_rsplit(t, sep, maxsplit));
  }
  if (m == "splitlines") {
    auto a = bind_args(m, args, {"keepends"});
    return list_of(str_splitlines(t, arg_bool(a[0], false)));
  }
  if (m == "startswith" || m == "endswith") {
    auto a = bind_args(m, args, {"prefix"});
    return Value::boolean(prefix_test(self, a[0], m == "endswith"));
  }
  if (m == "upper") return str_value(self, str_map_case(t, py_upper(t.s)));
  if (m == "lower") return str_value(self, str_map_case(t, py_lower(t.s)));
  if (m == "title") return str_value(self, str_map_case(t, py_title(t.s)));
  if (m == "capitalize") return str_value(self, str_map_case(t, py_capitalize(t.s)));
  if (m == "swapcase") return str_value(self, str_map_case(t, py_swapcase(t.s)));
  if (m == "replace") {
    auto a = bind_args(m, args, {"old", "new", "count"});
    if (!a[0] || !a[1]) fail("replace expected at least 2 arguments");
    need_str(*a[1], "replace() argument 2");
    TString r = str_replace(t, need_str(*a[0], "replace() argument 1"), a[1]->tstr(), arg_int(a[2], -1, "count"));
    in.check_string(r.s.size());
    return str_value(self, std::move(r));
  }
  if (m == "find" || m == "rfind" || m == "index" || m == "rindex") {
    auto a = bind_args(m, args, {"sub", "start", "end"});
    if (!a[0]) fail(m + "() takes at least 1 argument (0 given)");
    std::optional<int64_t> b, e;
    if (a[1] && !a[1]->is_none()) b = arg_int(a[1], 0, "start");
    if (a[2] && !a[2]->is_none()) e = arg_int(a[2], 0, "end");
    int64_t r = str_find(t.s, need_str(*a[0], "must be str"), b, e, m[0] == 'r');
    if (r < 0 && (m == "index" || m == "rindex")) fail("substring not found");
    return Value::integer(r);
  }
  if (m == "count") {
    auto a = bind_args(m, args, {"sub"});
    if (!a[0]) fail("count() takes at least 1 argument (0 given)");
    return Value::integer(str_count(t.s, need_str(*a[0], "must be str")));
  }
  if (m == "join") {
    auto a = bind_args(m, args, {"iterable"});
    if (!a[0]) fail("join() takes exactly one argument (0 given)");
    std::vector<TString> parts;
    for (const Value& v : py_iter(a[0]->need())) {
      if (!v.is_string()) fail("sequence item: expected str instance, " + v.type_name() + " found");
      parts.push_back(v.tstr());
    }
    TString r = str_join(t, parts);
    in.check_string(r.s.size());
    return str_value(self, std::move(r));
  }
  if (m == "format") return str_format(in, self, args);
  if (m == "center" || m == "ljust" || m == "rjust") {
    auto a = bind_args(m, args, {"width", "fillchar"});
    std::string fill = a[1] ? need_str(*a[1], "fillchar") : " ";
    if (utf8_length(fill) != 1) fail("The fill character must be exactly one character long");
    int64_t w = arg_int(a[0], 0, "width");
    in.check_string(static_cast<size_t>(std::max<int64_t>(w, 0)) * fill.size());
    return str_value(self, str_pad(t, w, fill, m == "center" ? '^' : m == "ljust" ? '<' : '>'));
  }
  if (m == "zfill") {
    auto a = bind_args(m, args, {"width"});
    int64_t w = arg_int(a[0], 0, "width");
    in.check_string(static_cast<size_t>(std::max<int64_t>(w, 0)));
    int64_t len = static_cast<int64_t>(utf8_length(t.s));
    if (w <= len) return self;
    TString out;
    size_t sign = (!t.s.empty() && (t.s[0] == '+' || t.s[0] == '-')) ? 1 : 0;
    out.append(t, 0, sign);
    out.append(std::string(static_cast<size_t>(w - len), '0'));
    out.append(t, sign, t.s.size());
    return Value::string(std::move(out));
  }
  if (m == "removeprefix" || m == "removesuffix") {
    auto a = bind_args(m, args, {"affix"});
    if (!a[0]) fail(m + "() takes exactly one argument (0 given)");
    const std::string& x = need_str(*a[0], m.c_str());
    const std::string& s = t.s;
    if (m == "removeprefix" && s.compare(0, x.size(), x) == 0) return str_value(self, t.substr(x.size(), s.size()));
    if (m == "removesuffix" && !x.empty() && x.size() <= s.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
      return str_value(self, t.substr(0, s.size() - x.size()));
    return self;
  }
  if (m == "partition" || m == "rpartition") {
    auto a = bind_args(m, args, {"sep"});
    if (!a[0]) fail(m + "() takes exactly one argument (0 given)");
    const std::string& sep = need_str(*a[0], "sep");
    if (sep.empty()) fail("empty separator");
    size_t f = m == "partition" ? t.s.find(sep) : t.s.rfind(sep);
    if (f == std::string::npos) {
      Value empty = Value::string("");
      return m == "partition" ? Value::tuple({self, empty, empty}) : Value::tuple({empty, empty, self});
    }
    return Value::tuple({Value::string(t.substr(0, f)), *a[0], Value::string(t.substr(f + sep.size(), t.s.size()))});
  }
  bind_args(m, args, {});
  if (m == "isdigit" || m == "isdecimal" || m == "isnumeric") return Value::boolean(all_cps(t.s, py_isdigit));
  if (m == "isalpha") return Value::boolean(all_cps(t.s, py_isalpha));
  if (m == "isalnum") return Value::boolean(all_cps(t.s, py_isalnum));
  if (m == "isspace") return Value::boolean(all_cps(t.s, py_isspace));
  if (m == "islower" || m == "isupper") {
    bool any_cased = false, ok = true;
    size_t pos = 0;
    while (pos < t.s.size()) {
      char32_t c = utf8_next(t.s, pos);
      if (py_iscased(c)) any_cased = true;
      if (m == "islower" ? py_isupper_cp(c) : py_islower_cp(c)) ok = false;
    }
    return Value::boolean(any_cased && ok);
  }
  fail("'str' object has no attribute '" + m + "'");
}

Value call_dict_method(Interpreter& in, const Value& self, const std::string& m, CallArgs& args) {
  const Dict& d = self.dict_ref();
  if (m == "get") {
    auto a = bind_args(m, args, {"key", "default"});
    if (!a[0]) fail("get expected at least 1 argument, got 0");
    if (const Value* v = d.find(*a[0])) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  bind_args(m, args, {});
  if (m == "items") {
    List out;
    for (const auto& [k, v] : d.items) out.push_back(Value::tuple({k, v}));
    return Value::list(std::move(out));
  }
  if (m == "keys" || m == "values") {
    List out;
    for (const auto& [k, v] : d.items) out.push_back(m == "keys" ? k : v);
    return Value::list(std::move(out));
  }
  if (m == "copy") return Value::dict(d);
  fail("'dict' object has no attribute '" + m + "'");
}

Value call_list_method(Interpreter& in, const Value& self, const std::string& m, CallArgs& args) {
  const List& l = self.items();
  if (m == "index" || m == "count") {
    auto a = bind_args(m, args, {"value"});
    if (!a[0]) fail(m + "() takes exactly one argument (0 given)");
    int64_t n = 0;
    for (size_t k = 0; k < l.size(); ++k)
      if (py_equal(l[k], *a[0])) {
        if (m == "index") return Value::integer(static_cast<int64_t>(k));
        ++n;
      }
    if (m == "index") fail(a[0]->repr() + " is not in list");
    return Value::integer(n);
  }
  bind_args(m, args, {});
  if (m == "copy") return Value::list(l);
  fail("'list' object has no attribute '" + m + "'");
}

const std::set<std::string>& str_methods() {
  static const std::set<std::string> k = {
      "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith",
      "upper", "lower", "title", "capitalize", "swapcase", "replace", "find", "rfind", "index",
      "rindex", "count", "join", "format", "center", "ljust", "rjust", "zfill", "removeprefix",
      "removesuffix", "partition", "rpartition", "isdigit", "isdecimal", "isnumeric", "isalpha",
      "isalnum", "isspace", "islower", "isupper"};
  return k;
}

Value loop_attr(const Object& o, const std::string& name) {
  const int64_t k = o.loop_index, n = static_cast<int64_t>(o.loop_items->size());
  if (name == "index") return Value::integer(k + 1);
  if (name == "index0") return Value::integer(k);
  if (name == "revindex") return Value::integer(n - k);
  if (name == "revindex0") return Value::integer(n - k - 1);
  if (name == "first") return Value::boolean(k == 0);
  if (name == "last") return Value::boolean(k == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(1);
  if (name == "depth0") return Value::integer(0);
  if (name == "previtem") return k > 0 ? (*o.loop_items)[k - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem") return k + 1 < n ? (*o.loop_items)[k + 1] : Value::undefined("there is no next item");
  if (name == "cycle")
    return Value::callable("cycle", [k](Interpreter&, CallArgs& a) {
      if (a.pos.empty()) fail("no items for cycling given");
      return a.pos[k % a.pos.size()];
    });
  return Value::undefined("'LoopContext object' has no attribute '" + name + "'");
}

}  // namespace

Value get_attr(Interpreter& in, const Value& obj, const std::string& name) {
  if (!name.empty() && name[0] == '_') return missing_attr(obj, name);
  static const std::set<std::string> kDictMethods = {"items", "keys", "values", "get", "copy"};
  static const std::set<std::string> kDictUnsafe = {"pop", "popitem", "setdefault", "update", "clear"};
  static const std::set<std::string> kListMethods = {"index", "count", "copy"};
  static const std::set<std::string> kListUnsafe = {"append", "extend", "insert", "pop", "remove",
                                                     "reverse", "sort", "clear"};
  auto bound = [&](auto fn) {
    Value self = obj;
    return Value::callable(name, [self, name, fn](Interpreter& i, CallArgs& a) { return fn(i, self, name, a); });
  };
  auto unsafe = [&]() {
    return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.");
  };
  switch (obj.kind()) {
    case Kind::kString:
      if (str_methods().count(name)) return bound(call_str_method);
      return missing_attr(obj, name);
    case Kind::kDict:
      if (kDictMethods.count(name)) return bound(call_dict_method);
      if (kDictUnsafe.count(name)) return unsafe();
      if (const Value* v = obj.dict_ref().find(std::string_view(name))) return *v;
      return missing_attr(obj, name);
    case Kind::kList:
      if (kListMethods.count(name) && !obj.is_tuple()) return bound(call_list_method);
      if (kListUnsafe.count(name) && !obj.is_tuple()) return unsafe();
      if (obj.is_tuple() && (name == "index" || name == "count")) return bound(call_list_method);
      return missing_attr(obj, name);
    case Kind::kObject:
      if (obj.obj()->loop_items) return loop_attr(*obj.obj(), name);
      if (const Value* v = obj.obj()->find(name)) return *v;
      return missing_attr(obj, name);
    default: return missing_attr(obj, name);
  }
}

Value get_item(Interpreter& in, const Value& obj, const Value& key) {
  switch (obj.kind()) {
    case Kind::kDict:
      if (const Value* v = obj.dict_ref().find(key)) return *v;
      break;
    case Kind::kList:
      if (obj.is_generator()) return Value::undefined("'generator' object is not subscriptable");
      if (key.is_int() || key.is_bool()) {
        int64_t n = static_cast<int64_t>(obj.items().size()), i = key.as_int();
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.items()[i];
        return Value::undefined("'" + object_desc(obj) + "' has no element " + key.repr());
      }
      break;
    case Kind::kString:
      if (key.is_int() || key.is_bool()) {
        if (auto c = str_index(obj.tstr(), key.as_int())) return Value::string(std::move(*c));
        return Value::undefined("'" + object_desc(obj) + "' has no element " + key.repr());
      }
      break;
    default: break;
  }
  if (key.is_string()) {
    // jinja2 falls back to getattr for string subscripts (d['items'] -> method if no key).
    if (obj.is_dict() && obj.dict_ref().find(key)) return *obj.dict_ref().find(key);
    Value v = get_attr(in, obj, key.str());
    return v;
  }
  if (key.is_undefined()) return Value::undefined("'" + object_desc(obj) + "' has no element Undefined");
  return Value::undefined("'" + object_desc(obj) + "' has no element " + key.repr());
}

}  // namespace ballast::chat
