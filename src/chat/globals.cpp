// Builtin global functions (range, namespace, dict, cycler, joiner) and transformers'
// extras (raise_exception, strftime_now), plus the argument-binding helpers.
#include <ctime>

#include "chat/filters.h"

namespace ballast::chat {

std::vector<std::optional<Value>> bind_args(const std::string& fname, const CallArgs& args,
                                            std::initializer_list<const char*> names) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.pos.size() > names.size())
    fail(fname + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
         std::to_string(args.pos.size()) + " given)");
  for (size_t k = 0; k < args.pos.size(); ++k) out[k] = args.pos[k];
  for (const auto& [key, v] : args.kw) {
    size_t idx = 0;
    bool found = false;
    for (const char* n : names) {
      if (key == n) {
        found = true;
        break;
      }
      ++idx;
    }
    if (!found) fail(fname + "() got an unexpected keyword argument '" + key + "'");
    if (out[idx]) fail(fname + "() got multiple values for argument '" + key + "'");
    out[idx] = v;
  }
  return out;
}

int64_t arg_int(const std::optional<Value>& v, int64_t dflt, const char* what) {
  if (!v) return dflt;
  if (v->is_int() || v->is_bool()) return v->as_int();
  v->need();
  fail(std::string("'") + v->type_name() + "' object cannot be interpreted as an integer (" + what + ")");
}

bool arg_bool(const std::optional<Value>& v, bool dflt) { return v ? v->truthy() : dflt; }

std::optional<std::string> arg_opt_str(const std::optional<Value>& v, const char* what) {
  if (!v || v->is_none()) return std::nullopt;
  if (!v->is_string()) fail(std::string(what) + " must be a string");
  return v->str();
}

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Value g_range(Interpreter& in, CallArgs& a) {
  if (!a.kw.empty()) fail("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments");
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = arg_int(a.pos[0], 0, "range");
  } else {
    start = arg_int(a.pos[0], 0, "range");
    stop = arg_int(a.pos[1], 0, "range");
    if (a.pos.size() == 3) step = arg_int(a.pos[2], 0, "range");
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  __int128 n = step > 0 ? ((__int128)stop - start + step - 1) / step : ((__int128)start - stop - step - 1) / -step;
  if (n < 0) n = 0;
  if (n > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  List out;
  for (int64_t k = 0; k < static_cast<int64_t>(n); ++k) out.push_back(Value::integer(start + k * step));
  in.charge(out.size());
  return Value::list(std::move(out));
}

void fill_from(Dict& d, const CallArgs& a, const char* fname) {
  if (a.pos.size() > 1) fail(std::string(fname) + " expected at most 1 positional argument");
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.dict_ref().items) d.set(k, v);
    } else {
      for (const Value& pair : py_iter(src.need())) {
        List kv = py_iter(pair);
        if (kv.size() != 2) fail("dictionary update sequence element has wrong length");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kw) d.set(Value::string(k), v);
}

Value g_dict(Interpreter&, CallArgs& a) {
  Dict d;
  fill_from(d, a, "dict");
  return Value::dict(std::move(d));
}

Value g_namespace(Interpreter&, CallArgs& a) {
  Dict d;
  fill_from(d, a, "namespace");
  auto ns = std::make_shared<Object>();
  ns->type_name = "Namespace";
  ns->assignable = true;
  for (auto& [k, v] : d.items) {
    if (!k.is_string()) fail("namespace keys must be strings");
    ns->set(k.str(), v);
  }
  return Value::object(ns);
}

Value g_raise_exception(Interpreter&, CallArgs& a) {
  std::string msg = a.pos.empty() ? std::string() : a.pos[0].to_str();
  fail("raise_exception: " + msg);
}

Value g_cycler(Interpreter&, CallArgs& a) {
  if (a.pos.empty()) fail("cycler needs at least one item");
  auto obj = std::make_shared<Object>();
  obj->type_name = "Cycler";
  auto items = std::make_shared<List>(a.pos);
  auto pos = std::make_shared<size_t>(0);
  std::weak_ptr<Object> weak = obj;
  auto refresh = [weak, items, pos]() {
    if (auto o = weak.lock()) o->set("current", (*items)[*pos]);
  };
  obj->set("current", (*items)[0]);
  obj->set("next", Value::callable("next", [items, pos, refresh](Interpreter&, CallArgs&) {
    Value v = (*items)[*pos];
    *pos = (*pos + 1) % items->size();
    refresh();
    return v;
  }));
  obj->set("reset", Value::callable("reset", [pos, refresh](Interpreter&, CallArgs&) {
    *pos = 0;
    refresh();
    return Value::none();
  }));
  return Value::object(obj);
}

Value g_joiner(Interpreter&, CallArgs& a) {
  auto b = bind_args("joiner", a, {"sep"});
  Value sep = b[0] ? *b[0] : Value::string(", ");
  auto used = std::make_shared<bool>(false);
  return Value::callable("joiner", [sep, used](Interpreter&, CallArgs&) {
    if (!*used) {
      *used = true;
      return Value::string("");
    }
    return sep;
  });
}

}  // namespace

void add_builtin_globals(Scope& scope, const GlobalsConfig& cfg) {
  scope.set("range", Value::callable("range", g_range));
  scope.set("dict", Value::callable("dict", g_dict));
  scope.set("namespace", Value::callable("namespace", g_namespace));
  scope.set("cycler", Value::callable("cycler", g_cycler));
  scope.set("joiner", Value::callable("joiner", g_joiner));
  scope.set("raise_exception", Value::callable("raise_exception", g_raise_exception));
  std::optional<std::string> now = cfg.now;
  scope.set("strftime_now", Value::callable("strftime_now", [now](Interpreter&, CallArgs& a) {
    auto b = bind_args("strftime_now", a, {"format"});
    if (!b[0] || !b[0]->is_string()) fail("strftime_now() needs a format string");
    std::tm tm{};
    if (now) {
      int Y = 0, M = 1, D = 1, h = 0, m = 0, s = 0;
      if (std::sscanf(now->c_str(), "%d-%d-%d%*c%d:%d:%d", &Y, &M, &D, &h, &m, &s) < 3)
        fail("bad fixed time '" + *now + "' (want YYYY-MM-DD HH:MM:SS)");
      tm.tm_year = Y - 1900;
      tm.tm_mon = M - 1;
      tm.tm_mday = D;
      tm.tm_hour = h;
      tm.tm_min = m;
      tm.tm_sec = s;
      std::mktime(&tm);  // fills weekday / yearday
      tm.tm_hour = h;
      tm.tm_min = m;
      tm.tm_sec = s;
    } else {
      std::time_t t = std::time(nullptr);
      localtime_r(&t, &tm);
    }
    const std::string& fmt = b[0]->str();
    if (fmt.size() > 1024) fail("strftime format too long");
    std::string out(fmt.size() * 16 + 64, '\0');
    size_t n = fmt.empty() ? 0 : std::strftime(out.data(), out.size(), fmt.c_str(), &tm);
    out.resize(n);
    return Value::string(out);
  }));
}

}  // namespace ballast::chat
