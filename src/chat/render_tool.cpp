// Line-oriented JSON driver over ChatTemplate, used by tests/chat/test_templates.py.
#include "chat/render_tool.h"

#include <iostream>
#include <map>
#include <string>

#include "chat/chat_template.h"

using ballast::chat::ChatTemplate;
using ballast::chat::RenderOptions;
using Json = nlohmann::ordered_json;

namespace {

Json handle(const std::string& line, std::map<std::string, ChatTemplate>& cache) {
  Json req = Json::parse(line, nullptr, false);
  if (req.is_discarded() || !req.is_object()) return Json{{"error", "request is not a JSON object"}};
  if (!req.contains("template") || !req["template"].is_string())
    return Json{{"error", "request needs a \"template\" string"}};
  std::string src = req["template"].get<std::string>();
  auto it = cache.find(src);
  if (it == cache.end()) {
    auto parsed = ChatTemplate::parse(src);
    if (!parsed.ok()) return Json{{"error", parsed.status().message()}};
    if (cache.size() > 64) cache.clear();
    it = cache.emplace(src, std::move(parsed).value()).first;
  }
  RenderOptions opts;
  opts.add_generation_prompt = req.value("add_generation_prompt", false);
  opts.bos_token = req.value("bos_token", std::string());
  opts.eos_token = req.value("eos_token", std::string());
  if (req.contains("tools")) opts.tools = req["tools"];
  if (req.contains("extra_context")) opts.extra_context = req["extra_context"];
  if (req.contains("now") && req["now"].is_string()) opts.now = req["now"].get<std::string>();
  Json messages = req.contains("messages") ? req["messages"] : Json::array();
  auto rendered = it->second.render(messages, opts);
  if (!rendered.ok()) return Json{{"error", rendered.status().message()}};
  Json spans = Json::array();
  for (const auto& s : rendered->content_spans) spans.push_back(Json::array({s.begin, s.end}));
  return Json{{"text", rendered->text}, {"content_spans", spans}};
}

}  // namespace

int ballast_chat_render_main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  std::map<std::string, ChatTemplate> cache;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    Json reply;
    try {
      reply = handle(line, cache);
    } catch (const std::exception& e) {
      reply = Json{{"error", std::string("chat-render: ") + e.what()}};
    }
    std::cout << reply.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n" << std::flush;
    if (!std::cout) return 1;
  }
  return 0;
}
