// Chat templates: the input's first line is a JSON messages array (or anything: then a
// fixed one is used), the rest is the template, parsed and then rendered.
#include <cstdint>
#include <string>

#include "chat/chat_template.h"

using namespace ballast::chat;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string head = nl == std::string::npos ? std::string() : in.substr(0, nl);
  std::string src = nl == std::string::npos ? in : in.substr(nl + 1);
  auto t = ChatTemplate::parse(src);
  if (!t.ok()) return 0;
  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(head, nullptr, false);
  if (!messages.is_array())
    messages = nlohmann::ordered_json::parse(
        R"([{"role":"system","content":"sys"},{"role":"user","content":"hi"},)"
        R"({"role":"assistant","content":"yo","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]}])");
  RenderOptions opts;
  opts.add_generation_prompt = true;
  opts.bos_token = "<s>";
  opts.eos_token = "</s>";
  opts.now = "2026-01-02 03:04:05";
  opts.tools = nlohmann::ordered_json::parse(R"([{"type":"function","function":{"name":"f"}}])");
  (void)t.value().render(messages, opts);
  return 0;
}
