// jinja2's builtin filters and tests (the subset chat templates use, with the same
// argument names and defaults), plus transformers' tojson override.
#include "chat/filters.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "chat/pystr.h"
#include "chat/unicode.h"

namespace ballast::chat {
namespace {

using Args = std::vector<std::optional<Value>>;

TString soft_str(const Value& v) { return v.to_tstring(); }
Value same_kind_str(const Value& src, TString t) {
  return src.is_markup() ? Value::markup(std::move(t)) : Value::string(std::move(t));
}

// attribute="a.b.0" -> successive getitem lookups, as jinja2's make_attrgetter does.
Value get_path(Interpreter& in, const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value key = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)
                    ? Value::integer(std::stoll(part))
                    : Value::string(part);
    cur = get_item(in, cur.need(), key);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

List iterate(const Value& v) {
  if (v.is_none() || v.is_number() || v.is_callable() || v.is_object())
    fail("'" + v.type_name() + "' object is not iterable");
  return py_iter(v);
}

// Sort key with jinja2's ignore_case (lowercase strings unless case_sensitive).
Value sort_key(Interpreter& in, const Value& v, const std::optional<std::string>& attr, bool case_sensitive) {
  Value k = attr ? get_path(in, v, *attr) : v;
  if (!case_sensitive && k.is_string()) return Value::string(py_lower(k.str()));
  return k;
}

std::optional<std::string> attr_arg(const std::optional<Value>& v) {
  if (!v || v->is_none()) return std::nullopt;
  if (v->is_int()) return std::to_string(v->as_int());
  if (!v->is_string()) fail("attribute must be a string");
  return v->str();
}

// ---- filters ---------------------------------------------------------------------------

Value f_abs(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("abs", a, {});
  if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
  if (v.is_number()) {
    if (v.as_int() == INT64_MIN) fail("integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  v.need();
  fail("bad operand type for abs(): '" + v.type_name() + "'");
}

Value f_attr(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("attr", a, {"name"});
  if (!b[0] || !b[0]->is_string()) fail("attr filter needs a string attribute name");
  return get_attr(in, v.need(), b[0]->str());
}

Value f_batch(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("batch", a, {"linecount", "fill_with"});
  int64_t n = arg_int(b[0], 0, "linecount");
  if (n <= 0) fail("batch size must be positive");
  List out, cur;
  for (const Value& item : iterate(v)) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (b[1] && !b[1]->is_none())
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*b[1]);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::generator(std::move(out));
}

Value f_capitalize(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("capitalize", a, {});
  TString s = soft_str(v);
  return same_kind_str(v, str_map_case(s, py_capitalize(s.s)));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("center", a, {"width"});
  int64_t w = arg_int(b[0], 80, "width");
  in.check_string(static_cast<size_t>(std::max<int64_t>(w, 0)));
  return Value::string(str_pad(soft_str(v), w, " ", '^'));
}

Value f_default(Interpreter&, const Value& v, CallArgs& a) {
  auto b = bind_args("default", a, {"default_value", "boolean"});
  bool boolean = arg_bool(b[1], false);
  if (v.is_undefined() || (boolean && !v.truthy())) return b[0] ? *b[0] : Value::string("");
  return v;
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) fail("You can only sort by either \"key\" or \"value\" on a mapping");
  bool cs = arg_bool(b[0], false), rev = arg_bool(b[2], false);
  std::string by = b[1] ? b[1]->to_str() : "key";
  if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
  int pos = by == "key" ? 0 : 1;
  List items;
  for (const auto& [k, val] : v.dict_ref().items) items.push_back(Value::tuple({k, val}));
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    Value kx = sort_key(in, x.items()[pos], std::nullopt, cs), ky = sort_key(in, y.items()[pos], std::nullopt, cs);
    return rev ? py_compare(ky, kx, "<") < 0 : py_compare(kx, ky, "<") < 0;
  });
  return Value::list(std::move(items));
}

Value f_escape(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("escape", a, {});
  if (v.is_markup()) return v;
  return Value::markup(html_escape(soft_str(v)));
}

Value f_forceescape(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("forceescape", a, {});
  return Value::markup(html_escape(soft_str(v)));
}

Value f_first(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("first", a, {});
  List items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("last", a, {});
  if (v.is_generator()) fail("'generator' object is not reversible");
  List items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

std::optional<double> parse_py_float(std::string s) {
  s = str_strip(TString(s), std::nullopt, true, true).s;
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  std::string low = py_lower(s);
  std::string body = (low[0] == '+' || low[0] == '-') ? low.substr(1) : low;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double r = body == "nan" ? NAN : INFINITY;
    return low[0] == '-' ? -r : r;
  }
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (*end || low.find('x') != std::string::npos) return std::nullopt;
  return d;
}

Value f_float(Interpreter&, const Value& v, CallArgs& a) {
  auto b = bind_args("float", a, {"default"});
  Value dflt = b[0] ? *b[0] : Value::floating(0.0);
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_py_float(v.str())) return Value::floating(*d);
  }
  return dflt;
}

Value f_int(Interpreter&, const Value& v, CallArgs& a) {
  auto b = bind_args("int", a, {"default", "base"});
  Value dflt = b[0] ? *b[0] : Value::integer(0);
  int64_t base = arg_int(b[1], 10, "base");
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    double d = v.as_double();
    if (std::isnan(d) || std::isinf(d)) fail("cannot convert float to integer");
    if (std::fabs(d) >= 9.2e18) fail("integer overflow");
    return Value::integer(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    std::string s = str_strip(v.tstr(), std::nullopt, true, true).s;
    std::string digits;
    for (char c : s)
      if (c != '_') digits += c;
    if (!digits.empty() && s.find("__") == std::string::npos && s.front() != '_' && s.back() != '_') {
      errno = 0;
      char* end = nullptr;
      long long r = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
      bool prefixed = digits.find_first_of("xXoObB") != std::string::npos;
      if (!*end && errno == 0 && (!prefixed || base != 10)) return Value::integer(r);
      if (errno == ERANGE) fail("integer overflow");
    }
    if (auto d = parse_py_float(s)) {
      if (std::isnan(*d) || std::isinf(*d)) fail("cannot convert float to integer");
      if (std::fabs(*d) >= 9.2e18) fail("integer overflow");
      return Value::integer(static_cast<int64_t>(*d));
    }
  }
  return dflt;
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("indent", a, {"width", "first", "blank"});
  std::string ind;
  if (b[0] && b[0]->is_string()) {
    ind = b[0]->str();
  } else {
    int64_t w = arg_int(b[0], 4, "width");
    in.check_string(static_cast<size_t>(std::max<int64_t>(w, 0)));
    ind = std::string(static_cast<size_t>(std::max<int64_t>(w, 0)), ' ');
  }
  bool first = arg_bool(b[1], false), blank = arg_bool(b[2], false);
  TString s = soft_str(v);
  s.append("\n");  // jinja2 appends a newline so splitlines keeps a trailing empty line
  std::vector<TString> lines = str_splitlines(s, false);
  TString rv;
  if (blank) {
    TString sep("\n" + ind);
    rv = str_join(sep, lines);
  } else if (!lines.empty()) {
    rv = lines[0];
    for (size_t k = 1; k < lines.size(); ++k) {
      rv.append("\n");
      if (!lines[k].s.empty()) rv.append(ind);
      rv.append(lines[k]);
    }
  }
  if (first) {
    TString t(ind);
    t.append(rv);
    rv = std::move(t);
  }
  in.check_string(rv.s.size());
  return same_kind_str(v, std::move(rv));
}

Value f_items(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("items", a, {});
  if (v.is_undefined()) return Value::generator({});
  if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
  List out;
  for (const auto& [k, val] : v.dict_ref().items) out.push_back(Value::tuple({k, val}));
  return Value::generator(std::move(out));
}

Value f_join(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("join", a, {"d", "attribute"});
  TString sep = b[0] ? soft_str(*b[0]) : TString();
  auto attr = attr_arg(b[1]);
  std::vector<TString> parts;
  for (const Value& item : iterate(v)) parts.push_back(soft_str(attr ? get_path(in, item, *attr) : item));
  TString r = str_join(sep, parts);
  in.check_string(r.s.size());
  in.charge(r.s.size() / 64);
  return Value::string(std::move(r));
}

Value f_length(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("length", a, {});
  return Value::integer(py_len(v));
}

Value f_list(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("list", a, {});
  return Value::list(iterate(v));
}

Value f_lower(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("lower", a, {});
  TString s = soft_str(v);
  return same_kind_str(v, str_map_case(s, py_lower(s.s)));
}

Value f_upper(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("upper", a, {});
  TString s = soft_str(v);
  return same_kind_str(v, str_map_case(s, py_upper(s.s)));
}

// jinja2's title filter: capitalise each word split on [-\s({[<]+ separators.
Value f_title(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("title", a, {});
  TString s = soft_str(v);
  std::string out;
  bool word_start = true;
  size_t pos = 0;
  while (pos < s.s.size()) {
    char32_t c = utf8_next(s.s, pos);
    bool sep = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      utf8_append(out, c);
      word_start = true;
    } else {
      utf8_append(out, word_start ? py_toupper(c) : py_tolower(c));
      word_start = false;
    }
  }
  return same_kind_str(v, str_map_case(s, out));
}

Value f_map(Interpreter& in, const Value& v, CallArgs& a) {
  List out;
  std::optional<std::string> attr;
  std::optional<Value> dflt;
  for (auto& [k, val] : a.kw) {
    if (k == "attribute") attr = attr_arg(val);
    else if (k == "default") dflt = val;
    else if (!a.pos.empty()) continue;
    else fail("map() got an unexpected keyword argument '" + k + "'");
  }
  if (!v.truthy()) return Value::generator({});  // jinja2: `if value:` guards the loop
  if (attr) {
    for (const Value& item : iterate(v)) {
      Value r = get_path(in, item, *attr);
      out.push_back(r.is_undefined() && dflt ? *dflt : r);
    }
    return Value::generator(std::move(out));
  }
  if (a.pos.empty()) fail("map requires a filter argument");
  if (!a.pos[0].is_string()) fail("map filter name must be a string");
  std::string name = a.pos[0].str();
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (const Value& item : iterate(v)) {
    CallArgs copy = rest;
    out.push_back(in.apply_filter(name, item, copy));
  }
  return Value::generator(std::move(out));
}

Value min_max(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  auto b = bind_args(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  bool cs = arg_bool(b[0], false);
  auto attr = attr_arg(b[1]);
  List items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    int c = py_compare(sort_key(in, items[k], attr, cs), sort_key(in, items[best], attr, cs), "<");
    if (want_max ? c > 0 : c < 0) best = k;
  }
  return items[best];
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, true); }
Value f_min(Interpreter& in, const Value& v, CallArgs& a) { return min_max(in, v, a, false); }

Value f_replace(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("replace", a, {"old", "new", "count"});
  if (!b[0] || !b[1]) fail("replace filter needs old and new arguments");
  TString r = str_replace(soft_str(v), b[0]->to_str(), soft_str(*b[1]), b[2] && !b[2]->is_none() ? arg_int(b[2], -1, "count") : -1);
  in.check_string(r.s.size());
  return same_kind_str(v, std::move(r));
}

Value f_reverse(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("reverse", a, {});
  if (v.is_string()) return Value::string(str_slice(v.tstr(), std::nullopt, std::nullopt, -1));
  List items = iterate(v);
  std::reverse(items.begin(), items.end());
  // reversed(list) is an iterator; reversing a generator materialises a list.
  return v.is_generator() ? Value::list(std::move(items)) : Value::generator(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& a) {
  auto b = bind_args("round", a, {"precision", "method"});
  int64_t prec = arg_int(b[0], 0, "precision");
  std::string method = b[1] ? b[1]->to_str() : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    fail("method must be common, ceil or floor");
  if (!v.is_number()) {
    v.need();
    fail("type " + v.type_name() + " doesn't define __round__ method");
  }
  if (method == "common") {
    if (!v.is_float()) return Value::integer(v.as_int());
    double d = v.as_double();
    if (std::isnan(d) || std::isinf(d)) return v;
    if (prec == 0) return Value::floating(std::nearbyint(d));
    if (prec < 0 || prec > 300) return Value::floating(d);
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), d);  // exact, half-even
    return Value::floating(std::strtod(buf, nullptr));
  }
  double m = std::pow(10.0, static_cast<double>(prec));
  double d = v.as_double() * m;
  d = method == "ceil" ? std::ceil(d) : std::floor(d);
  return Value::floating(d / m);
}

Value f_safe(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("safe", a, {});
  return Value::markup(soft_str(v));
}

Value select_impl(Interpreter& in, const Value& v, CallArgs& a, bool select, bool by_attr) {
  size_t first_arg = by_attr ? 1 : 0;
  std::optional<std::string> attr;
  if (by_attr) {
    if (a.pos.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = attr_arg(a.pos[0]);
  }
  std::optional<std::string> test;
  CallArgs test_args;
  if (a.pos.size() > first_arg) {
    if (!a.pos[first_arg].is_string()) fail("test name must be a string");
    test = a.pos[first_arg].str();
    test_args.pos.assign(a.pos.begin() + first_arg + 1, a.pos.end());
    test_args.kw = a.kw;
  }
  List out;
  if (!v.truthy()) return Value::generator({});  // jinja2: `if value:` guards the loop
  for (const Value& item : iterate(v)) {
    Value probe = attr ? get_path(in, item, *attr) : item;
    bool ok;
    if (test) {
      CallArgs copy = test_args;
      ok = in.apply_test(*test, probe, copy);
    } else {
      ok = probe.truthy();
    }
    if (ok == select) out.push_back(item);
  }
  return Value::generator(std::move(out));
}
Value f_select(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, false); }
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, false); }
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, true); }
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, true); }

Value f_sort(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("sort", a, {"reverse", "case_sensitive", "attribute"});
  bool rev = arg_bool(b[0], false), cs = arg_bool(b[1], false);
  auto attr = attr_arg(b[2]);
  List items = iterate(v);
  std::vector<Value> keys;
  for (const Value& it : items) keys.push_back(sort_key(in, it, attr, cs));
  std::vector<size_t> idx(items.size());
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t x, size_t y) {
    return rev ? py_compare(keys[y], keys[x], "<") < 0 : py_compare(keys[x], keys[y], "<") < 0;
  });
  List out;
  for (size_t k : idx) out.push_back(items[k]);
  return Value::list(std::move(out));
}

Value f_string(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("string", a, {});
  if (v.is_string()) return v;
  return Value::string(soft_str(v));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("sum", a, {"attribute", "start"});
  auto attr = attr_arg(b[0]);
  Value total = b[1] ? *b[1] : Value::integer(0);
  for (const Value& item : iterate(v)) total = py_add(in, total, attr ? get_path(in, item, *attr) : item);
  return total;
}

Value f_tojson(Interpreter& in, const Value& v, CallArgs& a) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  auto b = bind_args("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = arg_bool(b[0], false);
  o.sort_keys = arg_bool(b[3], false);
  if (b[1] && !b[1]->is_none()) {
    o.has_indent = true;
    if (b[1]->is_string()) o.indent = b[1]->str();
    else o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(arg_int(b[1], 0, "indent"), 0, 1024)), ' ');
    o.item_sep = ",";
  }
  if (b[2] && !b[2]->is_none()) {
    if (!b[2]->is_list() || b[2]->items().size() != 2 || !b[2]->items()[0].is_string() || !b[2]->items()[1].is_string())
      fail("separators must be a (item_separator, key_separator) pair");
    o.item_sep = b[2]->items()[0].str();
    o.key_sep = b[2]->items()[1].str();
  }
  TString r = json_dumps(v, o);
  in.check_string(r.s.size());
  in.charge(r.s.size() / 64);
  return Value::string(std::move(r));
}

Value f_trim(Interpreter&, const Value& v, CallArgs& a) {
  auto b = bind_args("trim", a, {"chars"});
  std::optional<std::string> chars;
  if (b[0] && !b[0]->is_none()) chars = b[0]->to_str();
  return same_kind_str(v, str_strip(soft_str(v), chars, true, true));
}

Value f_truncate(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("truncate", a, {"length", "killwords", "end", "leeway"});
  int64_t length = arg_int(b[0], 255, "length");
  bool killwords = arg_bool(b[1], false);
  std::string end = b[2] ? b[2]->to_str() : "...";
  int64_t leeway = arg_int(b[3], 5, "leeway");
  TString s = soft_str(v);
  int64_t n = static_cast<int64_t>(utf8_length(s.s));
  int64_t end_len = static_cast<int64_t>(utf8_length(end));
  if (length < end_len) fail("expected length >= " + std::to_string(end_len) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  if (n <= length + leeway) return Value::string(s);
  TString head = str_slice(s, std::nullopt, length - end_len, std::nullopt);
  if (!killwords) head = str_rsplit(head, std::string(" "), 1)[0];
  head.append(end);
  return Value::string(std::move(head));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& a) {
  auto b = bind_args("unique", a, {"case_sensitive", "attribute"});
  bool cs = arg_bool(b[0], false);
  auto attr = attr_arg(b[1]);
  List out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(in, item, attr, cs);
    bool dup = false;
    for (const Value& s : seen)
      if (py_equal(s, key)) dup = true;
    if (dup) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::generator(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& a) {
  bind_args("wordcount", a, {});
  std::string s = soft_str(v).s;
  int64_t n = 0;
  bool in_word = false;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = utf8_next(s, pos);
    bool w = py_isalnum(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value f_format(Interpreter& in, const Value& v, CallArgs& a) {
  // jinja2: soft_str(value) % (kwargs or args)
  Value fmt = Value::string(soft_str(v));
  Value args = Value::tuple(a.pos);
  if (!a.kw.empty()) fail("format filter with keyword arguments is not supported");
  return percent_format(in, fmt, args);
}

// ---- tests -----------------------------------------------------------------------------

Value test_arg(CallArgs& a, const char* name) {
  auto b = bind_args(name, a, {"other"});
  if (!b[0]) fail(std::string("test '") + name + "' needs an argument");
  return *b[0];
}

bool t_defined(Interpreter&, const Value& v, CallArgs&) { return !v.is_undefined(); }
bool t_undefined(Interpreter&, const Value& v, CallArgs&) { return v.is_undefined(); }
bool t_none(Interpreter&, const Value& v, CallArgs&) { return v.is_none(); }
bool t_boolean(Interpreter&, const Value& v, CallArgs&) { return v.is_bool(); }
bool t_true(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
bool t_false(Interpreter&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
bool t_integer(Interpreter&, const Value& v, CallArgs&) { return v.is_int(); }
bool t_float(Interpreter&, const Value& v, CallArgs&) { return v.is_float(); }
bool t_number(Interpreter&, const Value& v, CallArgs&) { return v.is_number(); }
bool t_string(Interpreter&, const Value& v, CallArgs&) { return v.is_string(); }
bool t_mapping(Interpreter&, const Value& v, CallArgs&) { return v.is_dict(); }
bool t_iterable(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined() ||
         (v.is_object() && v.obj()->type_name == "LoopContext");
}
bool t_sequence(Interpreter&, const Value& v, CallArgs&) {
  return v.is_string() || (v.is_list() && !v.is_generator()) || v.is_dict() || v.is_undefined();
}
bool t_callable(Interpreter&, const Value& v, CallArgs&) { return v.is_callable(); }
bool t_escaped(Interpreter&, const Value& v, CallArgs&) { return v.is_markup(); }
int64_t int_mod(const Value& v, int64_t m) {
  if (!v.is_number()) {
    v.need();
    fail("unsupported operand type(s) for %: '" + v.type_name() + "' and 'int'");
  }
  if (v.is_float()) return static_cast<int64_t>(std::fmod(v.as_double(), static_cast<double>(m)) != 0);
  int64_t r = v.as_int() % m;
  return r;
}
bool t_odd(Interpreter&, const Value& v, CallArgs&) { return int_mod(v, 2) != 0; }
bool t_even(Interpreter&, const Value& v, CallArgs&) { return int_mod(v, 2) == 0; }
bool t_divisibleby(Interpreter&, const Value& v, CallArgs& a) {
  const Value& n = test_arg(a, "divisibleby");
  if (!n.is_number() || !v.is_number()) {
    v.need();
    fail("unsupported operand type(s) for %");
  }
  if (n.as_double() == 0) fail("integer division or modulo by zero");
  if (v.is_float() || n.is_float()) return std::fmod(v.as_double(), n.as_double()) == 0;
  return v.as_int() % n.as_int() == 0;
}
bool t_eq(Interpreter&, const Value& v, CallArgs& a) { return py_equal(v, test_arg(a, "eq")); }
bool t_ne(Interpreter&, const Value& v, CallArgs& a) { return !py_equal(v, test_arg(a, "ne")); }
bool t_lt(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "lt"), "<") < 0; }
bool t_le(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "le"), "<=") <= 0; }
bool t_gt(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "gt"), ">") > 0; }
bool t_ge(Interpreter&, const Value& v, CallArgs& a) { return py_compare(v, test_arg(a, "ge"), ">=") >= 0; }
bool t_in(Interpreter& in, const Value& v, CallArgs& a) {
  const Value& seq = test_arg(a, "in");
  Value s = seq;
  if (s.is_string()) {
    if (!v.is_string()) fail("'in <string>' requires string as left operand");
    return s.str().find(v.str()) != std::string::npos;
  }
  if (s.is_list()) {
    for (const Value& x : s.items())
      if (py_equal(x, v)) return true;
    return false;
  }
  if (s.is_dict()) return s.dict_ref().find(v) != nullptr;
  if (s.is_undefined()) return false;
  fail("argument of type '" + s.type_name() + "' is not iterable");
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value& o = test_arg(a, "sameas");
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Kind::kNone: case Kind::kUndefined: return v.is_none();
    case Kind::kBool: return v.as_bool() == o.as_bool();
    case Kind::kInt: return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::kFloat: return false;
    default: return v.identity() == o.identity();
  }
}
bool t_lower(Interpreter&, const Value& v, CallArgs&) {
  std::string s = v.to_str();
  bool cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = utf8_next(s, pos);
    if (py_isupper_cp(c)) return false;
    cased |= py_iscased(c);
  }
  return cased;
}
bool t_upper(Interpreter&, const Value& v, CallArgs&) {
  std::string s = v.to_str();
  bool cased = false;
  size_t pos = 0;
  while (pos < s.size()) {
    char32_t c = utf8_next(s, pos);
    if (py_islower_cp(c)) return false;
    cased |= py_iscased(c);
  }
  return cased;
}
bool t_filter(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_filter(v.str()); }
bool t_test(Interpreter&, const Value& v, CallArgs&) { return v.is_string() && find_test(v.str()); }

const std::map<std::string, FilterFn>& filters() {
  static const std::map<std::string, FilterFn> k = {
      {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize},
      {"center", f_center}, {"count", f_length}, {"d", f_default}, {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape}, {"escape", f_escape}, {"first", f_first},
      {"float", f_float}, {"forceescape", f_forceescape}, {"format", f_format}, {"indent", f_indent},
      {"int", f_int}, {"items", f_items}, {"join", f_join}, {"last", f_last}, {"length", f_length},
      {"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"max", f_max}, {"min", f_min},
      {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace},
      {"reverse", f_reverse}, {"round", f_round}, {"safe", f_safe}, {"select", f_select},
      {"selectattr", f_selectattr}, {"sort", f_sort}, {"string", f_string}, {"sum", f_sum},
      {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim}, {"truncate", f_truncate},
      {"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount},
  };
  return k;
}

const std::map<std::string, TestFn>& tests() {
  static const std::map<std::string, TestFn> k = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
      {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq}, {"==", t_eq},
      {"escaped", t_escaped}, {"even", t_even}, {"false", t_false}, {"filter", t_filter},
      {"float", t_float}, {"ge", t_ge}, {">=", t_ge}, {"gt", t_gt}, {"greaterthan", t_gt},
      {">", t_gt}, {"in", t_in}, {"integer", t_integer}, {"iterable", t_iterable}, {"le", t_le},
      {"<=", t_le}, {"lower", t_lower}, {"lt", t_lt}, {"lessthan", t_lt}, {"<", t_lt},
      {"mapping", t_mapping}, {"ne", t_ne}, {"!=", t_ne}, {"none", t_none}, {"number", t_number},
      {"odd", t_odd}, {"sameas", t_sameas}, {"sequence", t_sequence}, {"string", t_string},
      {"test", t_test}, {"true", t_true}, {"undefined", t_undefined}, {"upper", t_upper},
  };
  return k;
}

}  // namespace

FilterFn find_filter(const std::string& name) {
  auto it = filters().find(name);
  return it == filters().end() ? nullptr : it->second;
}

TestFn find_test(const std::string& name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

bool filter_exists(const std::string& name) { return find_filter(name) != nullptr; }
bool test_exists(const std::string& name) { return find_test(name) != nullptr; }

}  // namespace ballast::chat
