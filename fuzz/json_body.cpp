// Request bodies: parse_json_body (both json flavours) and, on success, the OpenAI
// completion and chat schema parsers and sampling-parameter mapping.
#include <cstdint>
#include <string_view>

#include "server/json_body.h"
#include "server/openai_schema.h"

using namespace ballast::server;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  nlohmann::json j;
  if (!parse_json_body(body, j)) {
    (void)brief_json(j, 16);
    CompletionParams cp;
    if (!parse_completion_request(j, cp)) (void)cp.sampling({});
  }
  nlohmann::ordered_json oj;
  if (!parse_json_body(body, oj)) {
    (void)brief_json(oj);
    ChatParams chat;
    if (!parse_chat_request(oj, chat)) (void)chat.sampling({});
  }
  return 0;
}
