// GET /v1/models, POST /tokenize and POST /detokenize.
#include "server/json_body.h"
#include "server/server.h"
#include "vocab/audit.h"

namespace ballast::server {

using json = nlohmann::json;

namespace {

json model_object(const Server& s, const std::string& name) {
  return {{"id", name}, {"object", "model"}, {"created", s.created}, {"owned_by", "ballast"},
          {"max_model_len", s.ctx_size}};
}

bool parse_body(const Server& s, const HttpRequest& req, HttpResponse& res, nlohmann::ordered_json& body) {
  if (auto e = parse_json_body(req.body, body, s.json_limits)) {
    send_error(res, *e);
    return false;
  }
  if (!body.is_object()) {
    send_error(res, bad_request("request body must be a JSON object"));
    return false;
  }
  return true;
}

MaybeError only_fields(const nlohmann::ordered_json& body, std::initializer_list<const char*> allowed) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok |= it.key() == a;
    if (!ok) return bad_request("unsupported parameter '" + it.key() + "'", it.key(), "unsupported_parameter");
  }
  return {};
}

// 'model' as the chat/completions endpoints read it: absent or null = the served model.
MaybeError get_model(const nlohmann::ordered_json& body, std::string& model) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_string()) return bad_request("'model' must be a string", "model");
  model = it->get<std::string>();
  return {};
}

}  // namespace

void handle_models(Server& s, const HttpRequest& req, HttpResponse& res) {
  if (!s.ready) return send_error(res, ApiError{503, "the model is still loading", "server_error", "", "model_loading"});
  if (req.path == "/v1/models") {
    json data = json::array();
    for (const auto& n : s.model_names) data.push_back(model_object(s, n));
    return send_json(res, {{"object", "list"}, {"data", data}});
  }
  std::string name = req.path.substr(std::string("/v1/models/").size());
  if (auto e = check_model(s, name.empty() ? "?" : name)) return send_error(res, *e);
  send_json(res, model_object(s, name));
}

void handle_tokenize(Server& s, const HttpRequest& req, HttpResponse& res) {
  nlohmann::ordered_json body;
  if (!parse_body(s, req, res, body)) return;
  if (auto e = only_fields(body, {"model", "prompt", "messages", "add_special_tokens", "add_generation_prompt",
                                  "tools", "chat_template_kwargs"}))
    return send_error(res, *e);
  std::string model;
  if (auto e = get_model(body, model)) return send_error(res, *e);
  if (auto e = check_model(s, model)) return send_error(res, *e);
  Result<std::vector<int32_t>> ids = std::vector<int32_t>{};
  if (body.contains("messages")) {
    nlohmann::ordered_json chat = body;
    chat.erase("add_special_tokens");
    ChatParams p;
    if (auto e = parse_chat_request(chat, p, s.limits)) return send_error(res, *e);
    ids = s.prompts->encode_chat(p.messages, p.tools, p.template_kwargs, p.add_generation_prompt);
  } else {
    auto it = body.find("prompt");
    if (it == body.end() || !it->is_string())
      return send_error(res, bad_request("'prompt' (a string) or 'messages' is required", "prompt"));
    bool add_special = true;
    if (auto a = body.find("add_special_tokens"); a != body.end() && !a->is_null()) {
      if (!a->is_boolean()) return send_error(res, bad_request("'add_special_tokens' must be a boolean", "add_special_tokens"));
      add_special = a->get<bool>();
    }
    ids = s.prompts->encode_text(it->get<std::string>(), add_special);
  }
  if (!ids.ok()) return send_error(res, from_status(ids.status(), "prompt"));
  send_json(res, {{"tokens", ids.value()}, {"count", ids.value().size()}, {"max_model_len", s.ctx_size}});
}

void handle_detokenize(Server& s, const HttpRequest& req, HttpResponse& res) {
  nlohmann::ordered_json body;
  if (!parse_body(s, req, res, body)) return;
  if (auto e = only_fields(body, {"model", "tokens", "skip_special_tokens"})) return send_error(res, *e);
  std::string model;
  if (auto e = get_model(body, model)) return send_error(res, *e);
  if (auto e = check_model(s, model)) return send_error(res, *e);
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) return send_error(res, bad_request("'tokens' (a list of ids) is required", "tokens"));
  json tokens = json::parse(it->dump());
  Status st = vocab::validate_ids(tokens, s.rt->audit, "tokens");
  if (!st.ok()) return send_error(res, from_status(st, "tokens"));
  bool skip = false;
  if (auto a = body.find("skip_special_tokens"); a != body.end() && !a->is_null()) {
    if (!a->is_boolean())
      return send_error(res, bad_request("'skip_special_tokens' must be a boolean", "skip_special_tokens"));
    skip = a->get<bool>();
  }
  std::vector<int32_t> ids;
  for (const auto& v : tokens) ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  auto text = s.rt->tok->decode(ids, skip);
  if (!text.ok()) return send_error(res, from_status(text.status(), "tokens"));
  send_json(res, {{"prompt", text.value()}});
}

}  // namespace ballast::server
