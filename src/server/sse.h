// Server-sent events framing as OpenAI sends it: "data: <json>\n\n", then "data: [DONE]\n\n".
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace ballast::server {

std::string sse_event(const nlohmann::json& j);
std::string sse_done();
// JSON text with invalid UTF-8 replaced (never throws).
std::string dump_json(const nlohmann::json& j);

}  // namespace ballast::server
