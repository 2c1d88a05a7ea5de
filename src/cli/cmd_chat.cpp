// `ballast chat`: interactive terminal chat with the model's own chat template (or, for
// GPT-2 / DialoGPT without one, turns joined by eos).
#include <iostream>

#include "cli/options.h"
#include "server/prompt_builder.h"

namespace ballast::cli {

namespace {

struct ChatArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  std::string system;
  int64_t max_tokens = 512, ctx_size = 4096;
  double temperature = -1;
  int64_t seed = -1;
};

int run_chat(ChatArgs& a) {
  if (!apply_log_format(a.log_format)) return 2;
  auto rtr = runtime::load_runtime(a.rt);
  if (!rtr.ok()) return fail(rtr.status());
  auto& rt = *rtr.value();
  // The server's prompt builder: the model's template (content tokenized as text), or
  // GPT-2 / DialoGPT's eos-joined turns when it has none.
  server::PromptBuilder prompts(rt, false);
  if (Status st = prompts.load_template(); !st.ok()) return fail(st);
  if (!prompts.has_template() && !prompts.eos_turns())
    return fail(error(ErrorCode::kTemplateError, a.rt.model + ": the model has no chat template "
                                                 "(tokenizer_config.json chat_template / GGUF tokenizer.chat_template); "
                                                 "use `ballast generate` for plain completion"));
  if (prompts.eos_turns())
    std::cerr << "ballast chat: no chat template; turns are joined with the eos token (DialoGPT convention)\n";
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!a.system.empty()) messages.push_back({{"role", "system"}, {"content", a.system}});
  std::cerr << "ballast chat: type a message, empty line or Ctrl-D to quit\n";
  std::string line;
  while (true) {
    std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line) || line.empty()) break;
    messages.push_back({{"role", "user"}, {"content", line}});
    auto ids = prompts.encode_chat(messages, nlohmann::ordered_json(), nlohmann::ordered_json(), true);
    if (!ids.ok()) return fail(ids.status());
    engine::GenerationRequest req;
    runtime::set_input(rt.model(), req, ids.value());
    req.sampling = runtime::default_sampling(rt);
    if (a.temperature >= 0) req.sampling.temperature = a.temperature;
    if (a.seed >= 0) req.sampling.seed = static_cast<uint64_t>(a.seed);
    req.max_tokens = a.max_tokens;
    req.stop_ids = rt.audit.stop_ids;
    tokenizer::StreamDecoder stream(*rt.tok, true);
    std::string reply;
    auto out = runtime::generate_sync(rt, std::move(req), a.ctx_size, [&](int32_t id) {
      if (rt.audit.stop_ids.count(id)) return;
      auto d = stream.push(id);
      if (d.ok()) {
        reply += d.value();
        std::cout << d.value() << std::flush;
      }
    });
    if (!out.ok()) return fail(out.status());
    if (auto tail = stream.finish(); tail.ok()) {
      reply += tail.value();
      std::cout << tail.value();
    }
    std::cout << "\n";
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}

}  // namespace

void add_chat(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<ChatArgs>());
  auto* c = app.add_subcommand("chat", "interactive chat in the terminal with the model's chat template");
  add_runtime_options(c, o, a->rt, a->log_format);
  c->add_option("--system", a->system, "system message");
  c->add_option("--max-tokens,-n", a->max_tokens, "tokens per reply at most");
  c->add_option("--temperature", a->temperature, "0 = greedy");
  c->add_option("--seed", a->seed, "random seed");
  o.add(c, "--ctx-size", a->ctx_size, "context size in tokens");
  on_run(c, [a] { return run_chat(*a); });
}

}  // namespace ballast::cli
