// Schema -> GBNF: one rule per schema node (named by its path), shared primitives, objects
// with properties in declaration order (optional ones skippable, commas placed by head/tail
// rules), bounded whitespace and digit runs so a model cannot loop on them.
#include "grammar/json_schema.h"

#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <sstream>

namespace ballast::grammar {

namespace {

using json = nlohmann::ordered_json;

const char* kPrimitives = R"(ws ::= | " " | "\n" [ ]{0,16}
json-char ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
json-string ::= "\"" json-char* "\""
json-int ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
json-uint ::= "0" | [1-9] [0-9]{0,15}
json-number ::= json-int ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?
json-boolean ::= "true" | "false"
json-null ::= "null"
json-value ::= json-object | json-array | json-string | json-number | json-boolean | json-null
json-object ::= "{" ws ( json-string ws ":" ws json-value ( ws "," ws json-string ws ":" ws json-value )* )? ws "}"
json-array ::= "[" ws ( json-value ( ws "," ws json-value )* )? ws "]"
)";

// A GBNF string literal for bytes.
std::string lit(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += char(c);
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else out += char(c);
  }
  return out + "\"";
}

Status unsupported(const std::string& keyword, const std::string& where) {
  return error(ErrorCode::kUnsupported,
               "unsupported JSON-schema keyword '" + keyword + "' at " + (where.empty() ? "#" : where));
}

class Compiler {
 public:
  explicit Compiler(const json& root) : root_(root) {}

  Result<std::string> run() {
    BALLAST_ASSIGN_OR_RETURN(std::string r, node(root_, "#", "root-value"));
    std::ostringstream out;
    out << "root ::= " << r << "\n" << kPrimitives;
    for (auto& [name, body] : rules_) out << name << " ::= " << body << "\n";
    return out.str();
  }

 private:
  std::string fresh(const std::string& hint) {
    std::string base;
    for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
    if (base.empty() || !std::isalpha(static_cast<unsigned char>(base[0]))) base = "r-" + base;
    std::string name = base;
    for (int k = 2; rules_.count(name) || reserved_.count(name); ++k) name = base + "-" + std::to_string(k);
    reserved_.insert(name);
    return name;
  }
  std::string define(const std::string& hint, std::string body) {
    std::string name = fresh(hint);
    rules_[name] = std::move(body);
    return name;
  }

  // Returns a GBNF expression (usually a rule name) for the schema.
  Result<std::string> node(const json& s, const std::string& where, const std::string& hint) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return std::string("json-value");
      return error(ErrorCode::kUnsupported, "the schema at " + where + " is false (nothing validates)");
    }
    if (!s.is_object()) return error(ErrorCode::kInvalidArgument, "the schema at " + where + " must be an object");
    static const std::set<std::string> kIgnored{"title", "description", "default", "examples", "$schema", "$id",
                                                "$comment", "deprecated", "readOnly", "writeOnly", "$defs",
                                                "definitions", "strict", "name"};
    static const std::set<std::string> kKnown{"type", "enum", "const", "properties", "required",
                                              "additionalProperties", "items", "minItems", "maxItems", "minLength",
                                              "maxLength", "pattern", "format", "minimum", "maximum", "anyOf",
                                              "oneOf", "allOf", "$ref", "exclusiveMinimum", "exclusiveMaximum"};
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!kIgnored.count(it.key()) && !kKnown.count(it.key())) return unsupported(it.key(), where);
    if (s.contains("$ref")) return ref(s["$ref"], where);
    if (s.contains("const")) return define(hint, lit(s["const"].dump()));
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty())
        return error(ErrorCode::kInvalidArgument, "'enum' at " + where + " must be a non-empty list");
      std::string body;
      for (const auto& v : s["enum"]) body += (body.empty() ? "" : " | ") + lit(v.dump());
      return define(hint, body);
    }
    for (const char* k : {"anyOf", "oneOf"})
      if (s.contains(k)) {
        if (!s[k].is_array() || s[k].empty())
          return error(ErrorCode::kInvalidArgument, std::string("'") + k + "' at " + where + " must be a non-empty list");
        std::string body;
        for (size_t i = 0; i < s[k].size(); ++i) {
          BALLAST_ASSIGN_OR_RETURN(std::string r, node(s[k][i], where + "/" + k + "/" + std::to_string(i), hint));
          body += (body.empty() ? "" : " | ") + r;
        }
        return define(hint, body);
      }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].size() != 1) return unsupported("allOf", where);
      return node(s["allOf"][0], where + "/allOf/0", hint);
    }
    if (!s.contains("type")) {
      if (s.contains("properties")) return object(s, where, hint);
      if (s.contains("items")) return array(s, where, hint);
      return std::string("json-value");
    }
    const json& t = s["type"];
    if (t.is_array()) {
      std::string body;
      for (const auto& one : t) {
        if (!one.is_string()) return error(ErrorCode::kInvalidArgument, "'type' at " + where + " must name types");
        BALLAST_ASSIGN_OR_RETURN(std::string r, typed(s, one.get<std::string>(), where, hint));
        body += (body.empty() ? "" : " | ") + r;
      }
      if (body.empty()) return error(ErrorCode::kInvalidArgument, "'type' at " + where + " is empty");
      return define(hint, body);
    }
    if (!t.is_string()) return error(ErrorCode::kInvalidArgument, "'type' at " + where + " must be a string or a list");
    return typed(s, t.get<std::string>(), where, hint);
  }

  Result<std::string> ref(const json& r, const std::string& where) {
    if (!r.is_string()) return error(ErrorCode::kInvalidArgument, "'$ref' at " + where + " must be a string");
    const std::string p = r.get<std::string>();
    if (p == "#") return ref_rule(p, root_, "#");
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string pre = prefix;
      if (p.compare(0, pre.size(), pre) == 0) {
        const std::string key = pre.substr(2, pre.size() - 3);
        const std::string name = p.substr(pre.size());
        if (!root_.contains(key) || !root_[key].contains(name))
          return error(ErrorCode::kInvalidArgument, "'$ref' at " + where + " points to a missing definition '" + p + "'");
        return ref_rule(p, root_[key][name], p);
      }
    }
    return error(ErrorCode::kUnsupported, "unsupported '$ref' at " + where + ": '" + p +
                                               "' (only #, #/$defs/NAME and #/definitions/NAME)");
  }
  // One rule per definition; reserved before compiling so recursive schemas terminate.
  Result<std::string> ref_rule(const std::string& key, const json& def, const std::string& where) {
    auto it = refs_.find(key);
    if (it != refs_.end()) return it->second;
    std::string name = fresh("def-" + key.substr(key.rfind('/') + 1));
    refs_[key] = name;
    BALLAST_ASSIGN_OR_RETURN(std::string body, node(def, where, name + "-body"));
    rules_[name] = body;
    return name;
  }

  Result<std::string> typed(const json& s, const std::string& t, const std::string& where, const std::string& hint) {
    if (t == "string") return string(s, where, hint);
    if (t == "integer") return integer(s, where, hint);
    if (t == "number") return std::string("json-number");
    if (t == "boolean") return std::string("json-boolean");
    if (t == "null") return std::string("json-null");
    if (t == "object") return object(s, where, hint);
    if (t == "array") return array(s, where, hint);
    return error(ErrorCode::kInvalidArgument, "unknown type '" + t + "' at " + where);
  }

  Result<std::string> integer(const json& s, const std::string& where, const std::string& hint) {
    // Small closed ranges are listed exactly; a non-negative minimum drops the sign;
    // other bounds are not enforced (docs/server.md).
    auto num = [&](const char* k) -> std::optional<double> {
      if (s.contains(k) && s[k].is_number()) return s[k].get<double>();
      return std::nullopt;
    };
    auto lo = num("minimum"), hi = num("maximum");
    if (auto x = num("exclusiveMinimum")) lo = std::floor(*x) + 1;
    if (auto x = num("exclusiveMaximum")) hi = std::ceil(*x) - 1;
    if (lo && hi && *hi - *lo <= 256) {
      std::string body;
      for (long long v = static_cast<long long>(std::ceil(*lo)); v <= static_cast<long long>(std::floor(*hi)); ++v)
        body += (body.empty() ? "" : " | ") + lit(std::to_string(v));
      if (body.empty()) return error(ErrorCode::kInvalidArgument, "empty integer range at " + where);
      return define(hint, body);
    }
    if (lo && *lo >= 0) return std::string("json-uint");
    return std::string("json-int");
  }

  Result<std::string> string(const json& s, const std::string& where, const std::string& hint) {
    if (s.contains("format")) {
      static const std::map<std::string, std::string> kFormats{
          {"date", R"("\"" [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) "\"")"},
          {"time", R"("\"" ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ) "\"")"},
          {"date-time", R"("\"" [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [12] [0-9] | "3" [01] ) "T" ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ) "\"")"},
          {"uuid", R"("\"" [0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12} "\"")"}};
      if (!s["format"].is_string() || !kFormats.count(s["format"].get<std::string>()))
        return error(ErrorCode::kUnsupported, "unsupported JSON-schema keyword 'format' at " + where + ": " +
                                                   s["format"].dump() + " (supported: date, time, date-time, uuid)");
      if (s.contains("pattern") || s.contains("minLength") || s.contains("maxLength"))
        return unsupported("format", where + " (together with pattern / minLength / maxLength)");
      return define(hint, kFormats.at(s["format"].get<std::string>()));
    }
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) return error(ErrorCode::kInvalidArgument, "'pattern' at " + where + " must be a string");
      if (s.contains("minLength") || s.contains("maxLength"))
        return unsupported("minLength", where + " (together with pattern)");
      auto p = pattern_to_gbnf(s["pattern"].get<std::string>());
      if (!p.ok()) return error(ErrorCode::kUnsupported, "unsupported JSON-schema keyword 'pattern' at " + where + ": " +
                                                              p.status().message());
      return define(hint, "\"\\\"\" " + p.value() + " \"\\\"\"");
    }
    if (s.contains("minLength") || s.contains("maxLength")) {
      const int64_t mn = s.value("minLength", 0);
      const int64_t mx = s.contains("maxLength") ? s["maxLength"].get<int64_t>() : -1;
      if (mn < 0 || mn > 10000 || mx > 10000 || (mx >= 0 && mx < mn))
        return error(ErrorCode::kUnsupported, "unsupported string length bounds at " + where + " (0..10000)");
      return define(hint, "\"\\\"\" json-char{" + std::to_string(mn) + "," + (mx >= 0 ? std::to_string(mx) : "") +
                              "} \"\\\"\"");
    }
    return std::string("json-string");
  }

  Result<std::string> array(const json& s, const std::string& where, const std::string& hint) {
    std::string item = "json-value";
    if (s.contains("items")) {
      BALLAST_ASSIGN_OR_RETURN(item, node(s["items"], where + "/items", hint + "-item"));
    }
    const int64_t mn = s.value("minItems", 0);
    const int64_t mx = s.contains("maxItems") ? s["maxItems"].get<int64_t>() : -1;
    if (mn < 0 || mn > 1000 || mx > 1000 || (mx >= 0 && mx < mn))
      return error(ErrorCode::kUnsupported, "unsupported array length bounds at " + where + " (0..1000)");
    if (mx == 0) return define(hint, R"("[" ws "]")");
    const std::string more = "( ws \",\" ws " + item + " )";
    std::string tail;
    const int64_t rest_min = std::max<int64_t>(0, mn - 1);
    tail = more + "{" + std::to_string(rest_min) + "," + (mx >= 0 ? std::to_string(mx - 1) : "") + "}";
    std::string inner = item + " " + tail;
    if (mn == 0) inner = "( " + inner + " )?";
    return define(hint, "\"[\" ws " + inner + " ws \"]\"");
  }

  Result<std::string> object(const json& s, const std::string& where, const std::string& hint) {
    std::vector<std::pair<std::string, std::string>> props;  // key literal, value rule
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return error(ErrorCode::kInvalidArgument, "'required' at " + where + " must be a list");
      for (const auto& r : s["required"]) required.insert(r.get<std::string>());
    }
    const json empty = json::object();
    const json& ps = s.contains("properties") ? s["properties"] : empty;
    if (!ps.is_object()) return error(ErrorCode::kInvalidArgument, "'properties' at " + where + " must be an object");
    std::vector<bool> req;
    for (auto it = ps.begin(); it != ps.end(); ++it) {
      BALLAST_ASSIGN_OR_RETURN(std::string v, node(it.value(), where + "/properties/" + it.key(), hint + "-" + it.key()));
      props.emplace_back(lit(json(it.key()).dump()), v);
      req.push_back(required.count(it.key()) > 0);
    }
    for (const auto& r : required)
      if (!ps.contains(r)) return error(ErrorCode::kInvalidArgument, "'required' at " + where + " names '" + r + "', which is not in 'properties'");
    if (s.contains("additionalProperties")) {
      const json& ap = s["additionalProperties"];
      if (ap.is_object() || (ap.is_boolean() && ap.get<bool>())) {
        if (!props.empty()) return unsupported("additionalProperties", where + " (a schema or true beside 'properties')");
        std::string v = "json-value";
        if (ap.is_object()) {
          BALLAST_ASSIGN_OR_RETURN(v, node(ap, where + "/additionalProperties", hint + "-value"));
        }
        const std::string kv = "json-string ws \":\" ws " + v;
        return define(hint, "\"{\" ws ( " + kv + " ( ws \",\" ws " + kv + " )* )? ws \"}\"");
      }
    }
    // Without additionalProperties (or false), only the declared properties are written.
    if (props.empty()) return define(hint, R"("{" ws "}")");
    const size_t n = props.size();
    auto kv = [&](size_t i) { return props[i].first + " ws \":\" ws " + props[i].second; };
    // tail_i: properties i.. after one was written; head_i: before any was written. An
    // empty string is the empty sequence (an empty alternative where it is one).
    std::vector<std::string> tail(n + 1), head(n + 1);
    auto join = [](const std::string& a, const std::string& b) { return b.empty() ? a : a + " " + b; };
    for (size_t i = n; i-- > 0;) {
      std::string with = join("ws \",\" ws " + kv(i), tail[i + 1]);
      tail[i] = define(hint + "-tail", req[i] ? with : with + " | " + tail[i + 1]);
    }
    for (size_t i = n; i-- > 0;) {
      std::string first = join(kv(i), tail[i + 1]);
      head[i] = define(hint + "-head", req[i] ? first : first + " | " + head[i + 1]);
    }
    std::string inner = head[0];
    return define(hint, "\"{\" ws " + inner + " ws \"}\"");
  }

  const json& root_;
  std::map<std::string, std::string> rules_;
  std::set<std::string> reserved_{"root", "ws", "json-char", "json-string", "json-int", "json-uint",
                                  "json-number", "json-boolean", "json-null", "json-value", "json-object",
                                  "json-array"};
  std::map<std::string, std::string> refs_;
};

}  // namespace

std::string json_object_gbnf() { return std::string("root ::= json-object\n") + kPrimitives; }

Result<std::string> schema_to_gbnf(const json& schema) { return Compiler(schema).run(); }

}  // namespace ballast::grammar
