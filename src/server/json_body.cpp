// Bounded JSON request bodies: see json_body.h.
#include "server/json_body.h"

namespace ballast::server {

namespace {

bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

template <class J>
MaybeError parse_as(std::string_view body, J& out, const JsonBodyLimits& lim) {
  if (auto e = prescan_json_body(body, lim)) return e;
  try {
    out = J::parse(body.begin(), body.end());
  } catch (const std::exception& e) {
    return bad_request(std::string("request body is not valid JSON: ") + e.what());
  }
  return {};
}

template <class J>
std::string brief(const J& v, size_t max_chars) {
  // Containers are bounded by the body pre-scan; dump never recurses past max_depth.
  std::string s = v.dump(-1, ' ', false, J::error_handler_t::replace);
  if (s.size() > max_chars) {
    s.resize(max_chars);
    s += "...";
  }
  return s;
}

}  // namespace

MaybeError prescan_json_body(std::string_view body, const JsonBodyLimits& lim) {
  size_t i = 0;
  if (body.size() >= 3 && static_cast<unsigned char>(body[0]) == 0xEF && static_cast<unsigned char>(body[1]) == 0xBB &&
      static_cast<unsigned char>(body[2]) == 0xBF)
    return bad_request("request body starts with a UTF-8 byte order mark; send the JSON without it");
  while (i < body.size() && is_ws(static_cast<unsigned char>(body[i]))) ++i;
  size_t depth = 0, containers = 0, values = 1;
  bool in_string = false, escape = false, started = false;
  for (; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\0') return bad_request("request body contains a NUL byte at offset " + std::to_string(i));
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (started && depth == 0) {
      if (!is_ws(static_cast<unsigned char>(c)))
        return bad_request("request body is not valid JSON: unexpected data after the JSON value at offset " +
                           std::to_string(i));
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        started = true;
        if (++depth > lim.max_depth)
          return bad_request("request body is nested more than " + std::to_string(lim.max_depth) +
                             " levels deep (arrays/objects); flatten it");
        if (++containers > lim.max_containers)
          return bad_request("request body has more than " + std::to_string(lim.max_containers) +
                             " arrays/objects; send fewer");
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced: the parser reports it
        break;
      case ',':
        if (++values > lim.max_values)
          return bad_request("request body has more than " + std::to_string(lim.max_values) + " JSON values; send fewer");
        break;
      default:
        // A scalar at the top level: nothing nested, the parser checks the rest.
        if (depth == 0) return {};
    }
  }
  return {};
}

MaybeError parse_json_body(std::string_view body, nlohmann::json& out, const JsonBodyLimits& lim) {
  return parse_as(body, out, lim);
}

MaybeError parse_json_body(std::string_view body, nlohmann::ordered_json& out, const JsonBodyLimits& lim) {
  return parse_as(body, out, lim);
}

std::string brief_json(const nlohmann::json& v, size_t max_chars) { return brief(v, max_chars); }
std::string brief_json(const nlohmann::ordered_json& v, size_t max_chars) { return brief(v, max_chars); }

}  // namespace ballast::server
