// `ballast config` and hidden developer tools used by tests and benchmarks.
#include <iostream>

#include "chat/render_tool.h"
#include "cli/options.h"

namespace ballast::cpu {
int cpu_quant_selftest_main(int argc, char** argv);
int cpu_bench_main(int argc, char** argv);
}  // namespace ballast::cpu

namespace ballast::cli {

void add_config(CLI::App& app, Options& o) {
  // `config` reports every option of `serve`, the command with the most of them.
  auto* c = app.add_subcommand("config", "print effective settings and where each came from (flag > env > .env > default)");
  auto* json = keep(std::make_shared<bool>(false));
  c->add_flag("--json", *json, "one JSON object");
  c->allow_extras();
  on_run(c, [&o, json] {
    nlohmann::json j = nlohmann::json::object();
    std::set<std::string> seen;
    for (const auto& info : o.all()) {
      if (!seen.insert(info.name).second) continue;
      j[info.name] = {{"value", info.value()}, {"source", o.source(info)}, {"env", info.env}};
    }
    if (*json) {
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    for (auto& [k, v] : j.items())
      std::cout << k << " = " << v["value"].get<std::string>() << "  (" << v["source"].get<std::string>() << ", "
                << v["env"].get<std::string>() << ")\n";
    return 0;
  });
}

void add_hidden_tools(CLI::App& app, Options&) {
  auto fwd = [&app](const char* name, int (*fn)(int, char**)) {
    auto* c = app.add_subcommand(name, "")->group("");
    c->allow_extras()->prefix_command();
    on_run(c, [c, fn, name] {
      std::vector<std::string> args = c->remaining();
      std::vector<char*> argv{const_cast<char*>(name)};
      for (auto& s : args) argv.push_back(s.data());
      return fn(static_cast<int>(argv.size()), argv.data());
    });
  };
  fwd("quant-dequant", cpu::cpu_quant_selftest_main);
  fwd("bench-kernels", cpu::cpu_bench_main);
  fwd("chat-render", ballast_chat_render_main);
}

}  // namespace ballast::cli
