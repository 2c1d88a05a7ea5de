// Options registry, .env loading and the top-level dispatcher.
#include "cli/options.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/log.h"

namespace ballast::cli {

namespace {
std::map<std::string, std::string> g_env_file;
std::vector<std::string> g_argv;
std::map<const CLI::App*, std::function<int()>> g_handlers;
}

void on_run(CLI::App* sub, std::function<int()> fn) { g_handlers[sub] = std::move(fn); }

std::string Options::env_name(const std::string& flag) {
  // First long name of "--threads,-t" -> BALLAST_THREADS.
  std::string name = flag.substr(0, flag.find(','));
  std::string s = "BALLAST_";
  for (char c : name.substr(name.find_first_not_of('-'))) s += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return s;
}

void Options::load_env_file(int argc, char** argv) {
  std::string path;
  bool explicit_path = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--env-file" && i + 1 < argc) path = argv[i + 1], explicit_path = true;
    else if (a.rfind("--env-file=", 0) == 0) path = a.substr(11), explicit_path = true;
  }
  if (!explicit_path) {
    if (const char* e = std::getenv("BALLAST_ENV_FILE")) path = e, explicit_path = true;
    else path = ".env";
  }
  std::ifstream in(path);
  if (!in) {
    if (explicit_path) {
      std::cerr << "error: --env-file " << path << ": cannot open\n";
      std::exit(2);
    }
    return;
  }
  std::string line;
  while (std::getline(in, line)) {
    auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    line = line.substr(b);
    if (line.rfind("export ", 0) == 0) line = line.substr(7);
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.pop_back();
    while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
    if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'') && v.back() == v[0]) v = v.substr(1, v.size() - 2);
    if (k.rfind("BALLAST_", 0) != 0) continue;
    if (!std::getenv(k.c_str())) {
      setenv(k.c_str(), v.c_str(), 0);
      g_env_file[k] = v;
    }
  }
}

const std::map<std::string, std::string>& Options::env_file_values() { return g_env_file; }

CLI::Option* Options::add_flag(CLI::App* app, const std::string& name, bool& var, const std::string& desc) {
  std::string env = env_name(name);
  auto* o = app->add_flag(name, var, desc)->envname(env);
  record(name, env, o, [&var] { return var ? std::string("true") : std::string("false"); });
  return o;
}

void Options::record(const std::string& name, const std::string& env, CLI::Option* o,
                     std::function<std::string()> v) {
  opts_.push_back(OptionInfo{name.substr(0, name.find(',')), env, o, std::move(v)});
}

std::string Options::source(const OptionInfo& o) const {
  for (const auto& a : g_argv)
    for (const auto& n : o.opt->get_lnames())
      if (a == "--" + n || a.rfind("--" + n + "=", 0) == 0) return "flag";
  for (const auto& a : g_argv)
    for (const auto& n : o.opt->get_snames())
      if (a == "-" + n) return "flag";
  if (g_env_file.count(o.env)) return ".env";
  if (std::getenv(o.env.c_str())) return "environment";
  return "default";
}

void add_runtime_options(CLI::App* app, Options& o, runtime::RuntimeOptions& ro, std::string& log_format) {
  o.add(app, "--model", ro.model, "HF model directory or .gguf file");
  o.add(app, "--tokenizer", ro.tokenizer, "use this tokenizer instead of the model's own");
  o.add(app, "--threads,-t", ro.threads, "CPU threads (0: physical cores)");
  o.add_flag(app, "--strict-vocab", ro.strict_vocab, "refuse to load when a tokenizer id cannot be embedded or a special id is invalid");
  o.add_flag(app, "--resize-embeddings", ro.resize_embeddings, "grow embedding/LM head to cover every tokenizer id (new rows = mean row)");
  o.add_flag(app, "--exact", ro.exact, "CPU: dequantize weights and multiply in fp32 (matches transformers to ~1e-4; slower than the default 8-bit-activation integer kernels)");
  o.add_flag(app, "--check-numerics", ro.check_numerics, "check every layer's output for NaN/Inf and name the first");
  o.add(app, "--device", ro.device, "cpu or cuda (CUDA needs a build with nvcc and a GPU)");
  o.add_flag(app, "--debug-sync", ro.debug_sync, "CUDA: synchronize and check after every kernel, naming a failing one");
  o.add(app, "--log-format", log_format, "human or json");
  static std::string env_file;
  o.add(app, "--env-file", env_file, "read BALLAST_* settings from this file (default ./.env)");
}

bool apply_log_format(const std::string& f) {
  if (f == "json") log::set_format(log::Format::kJson);
  else if (f == "human" || f.empty()) log::set_format(log::Format::kHuman);
  else {
    std::cerr << "error: --log-format: unknown value '" << f << "' (human, json)\n";
    return false;
  }
  return true;
}

std::vector<std::shared_ptr<void>>& kept_objects() {
  static std::vector<std::shared_ptr<void>> kept;
  return kept;
}

int fail(const Status& st) {
  std::string msg = st.message();
  for (auto& c : msg)
    if (c == '\n') c = ' ';
  std::cerr << "error: " << msg << "\n";
  return 1;
}

int run(int argc, char** argv) {
  Options::load_env_file(argc, argv);
  g_argv.assign(argv, argv + argc);
  CLI::App app{"ballast: LLM inference engine and OpenAI-compatible server (CPU; CUDA when built with nvcc)"};
  app.require_subcommand(1);
  Options o;
  add_generate(app, o);
  add_tokenize(app, o);
  add_inspect(app, o);
  add_chat(app, o);
  add_bench(app, o);
  add_config(app, o);
  add_serve(app, o);
  add_hidden_tools(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands().empty()) {
      bool known = false;
      for (auto* s : app.get_subcommands({})) known |= s->get_name() == argv[1];
      if (!known) what = std::string("unknown command '") + argv[1] + "'";
    }
    if (what.empty()) what = e.get_name();
    std::cerr << "error: " << what << " (see ballast --help)\n";
    return 2;
  }
  for (auto* sub : app.get_subcommands())
    if (auto it = g_handlers.find(sub); it != g_handlers.end()) return it->second();
  return 0;
}

}  // namespace ballast::cli
