// Python binary operators (+ - * / // % ** in) with int64 overflow detection and the
// markupsafe rule that adding plain text to Markup HTML-escapes the plain text.
#include <cmath>
#include <limits>

#include "chat/interpreter.h"
#include "chat/pystr.h"

namespace ballast::chat {
namespace {

Value overflow_checked(bool overflowed, int64_t r) {
  if (overflowed) fail("integer overflow in template arithmetic");
  return Value::integer(r);
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  a.need();
  b.need();
  fail("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value repeat(Interpreter& in, const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    in.check_string(seq.str().size() * static_cast<size_t>(n));
    TString out;
    for (int64_t k = 0; k < n; ++k) out.append(seq.tstr());
    in.charge(out.s.size() / 64);
    return seq.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  in.check_list(seq.items().size() * static_cast<size_t>(n));
  List out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.items().begin(), seq.items().end());
  in.charge(out.size());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace

// printf-style `str % args` for the conversions templates use.
Value percent_format(Interpreter& in, const Value& fmt, const Value& arg) {
  List args = arg.is_tuple() ? arg.items() : List{arg};
  TString out;
  size_t next = 0;
  const std::string& f = fmt.str();
  size_t lit = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    if (f[k] != '%') continue;
    out.append(fmt.tstr(), lit, k);
    if (k + 1 >= f.size()) fail("incomplete format");
    char c = f[++k];
    lit = k + 1;
    if (c == '%') {
      out.append("%");
      continue;
    }
    if (next >= args.size()) fail("not enough arguments for format string");
    const Value& v = args[next++];
    switch (c) {
      case 's': out.append(v.to_tstring()); break;
      case 'r': out.append(v.repr()); break;
      case 'd': case 'i':
        if (!v.is_number()) fail("%d format: a real number is required, not " + v.type_name());
        out.append(std::to_string(v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int()));
        break;
      case 'f': {
        if (!v.is_number()) fail("must be real number, not " + v.type_name());
        char buf[64];
        std::snprintf(buf, sizeof buf, "%f", v.as_double());
        out.append(buf);
        break;
      }
      default: fail(std::string("unsupported format character '") + c + "'");
    }
  }
  out.append(fmt.tstr(), lit, f.size());
  if (next < args.size() && !(args.size() == 1 && args[0].is_dict()))
    fail("not all arguments converted during string formatting");
  in.check_string(out.s.size());
  return Value::string(std::move(out));
}

Value py_add(Interpreter& in, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value::floating(a.as_double() + b.as_double());
    int64_t r = 0;
    bool of = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
    return overflow_checked(of, r);
  }
  if (a.is_string() && b.is_string()) {
    TString out;
    if (a.is_markup() && !b.is_markup()) {
      out.append(a.tstr());
      out.append(html_escape(b.tstr()));
    } else if (b.is_markup() && !a.is_markup()) {
      out.append(html_escape(a.tstr()));
      out.append(b.tstr());
    } else {
      out.append(a.tstr());
      out.append(b.tstr());
    }
    in.check_string(out.s.size());
    in.charge(out.s.size() / 64);
    return (a.is_markup() || b.is_markup()) ? Value::markup(std::move(out)) : Value::string(std::move(out));
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple() && !a.is_generator() && !b.is_generator()) {
    in.check_list(a.items().size() + b.items().size());
    List out = a.items();
    out.insert(out.end(), b.items().begin(), b.items().end());
    in.charge(out.size());
    return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  if (a.is_string() && !b.is_string()) {
    b.need();
    fail("can only concatenate str (not \"" + b.type_name() + "\") to str");
  }
  if (a.is_list() && !a.is_tuple()) {
    b.need();
    fail("can only concatenate list (not \"" + b.type_name() + "\") to list");
  }
  unsupported("+", a, b);
}

Value Interpreter::eval_binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "+") return py_add(*this, a, b);
  if (op == "in") {
    if (b.is_string()) {
      if (!a.is_string()) {
        a.need();
        fail("'in <string>' requires string as left operand, not " + a.type_name());
      }
      return Value::boolean(b.str().find(a.str()) != std::string::npos);
    }
    if (b.is_list()) {
      for (const Value& item : b.items())
        if (py_equal(item, a)) return Value::boolean(true);
      return Value::boolean(false);
    }
    if (b.is_dict()) return Value::boolean(b.dict_ref().find(a) != nullptr);
    if (b.is_undefined()) return Value::boolean(false);
    fail("argument of type '" + b.type_name() + "' is not iterable");
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(*this, a, b.as_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(*this, b, a.as_int());
  }
  if (op == "%" && a.is_string()) return percent_format(*this, a, b);
  if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
  bool fl = a.is_float() || b.is_float();
  if (op == "-") {
    if (fl) return Value::floating(a.as_double() - b.as_double());
    int64_t r = 0;
    bool of = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
    return overflow_checked(of, r);
  }
  if (op == "*") {
    if (fl) return Value::floating(a.as_double() * b.as_double());
    int64_t r = 0;
    bool of = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
    return overflow_checked(of, r);
  }
  if (op == "/") {
    if (b.as_double() == 0) fail("division by zero");
    return Value::floating(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (fl) {
      double x = a.as_double(), y = b.as_double();
      if (y == 0) fail("float floor division by zero");
      // CPython's float_divmod, so results match bit for bit.
      double m = std::fmod(x, y);
      double div = (x - m) / y;
      if (m != 0) {
        if ((y < 0) != (m < 0)) {
          m += y;
          div -= 1.0;
        }
      } else {
        m = std::copysign(0.0, y);
      }
      double fd;
      if (div != 0) {
        fd = std::floor(div);
        if (div - fd > 0.5) fd += 1.0;
      } else {
        fd = std::copysign(0.0, x / y);
      }
      return Value::floating(op == "%" ? m : fd);
    }
    int64_t x = a.as_int(), y = b.as_int();
    if (y == 0) fail("integer division or modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) fail("integer overflow");
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      --q;
      m += y;
    }
    return Value::integer(op == "%" ? m : q);
  }
  if (op == "**") {
    if (!fl && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1)
          if (__builtin_mul_overflow(r, base, &r)) fail("integer overflow in template arithmetic");
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) fail("integer overflow in template arithmetic");
      }
      return Value::integer(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) fail("0.0 cannot be raised to a negative power");
    return Value::floating(std::pow(a.as_double(), b.as_double()));
  }
  unsupported(op, a, b);
}

}  // namespace ballast::chat
