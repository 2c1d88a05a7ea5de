// Option plumbing shared by every command: each option is a flag, an environment
// variable BALLAST_<OPTION> and a .env entry (precedence flag > environment > .env >
// default), and `ballast config` can say where every effective value came from.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/runtime.h"

namespace ballast::cli {

struct OptionInfo {
  std::string name;   // "--model"
  std::string env;    // "BALLAST_MODEL"
  CLI::Option* opt = nullptr;
  std::function<std::string()> value;
};

class Options {
 public:
  // Loads .env (the --env-file given in argv / BALLAST_ENV_FILE, else ./.env when present)
  // without overriding variables already in the environment.
  static void load_env_file(int argc, char** argv);
  static const std::map<std::string, std::string>& env_file_values();

  template <class T>
  CLI::Option* add(CLI::App* app, const std::string& name, T& var, const std::string& desc) {
    std::string env = env_name(name);
    auto* o = app->add_option(name, var, desc)->envname(env);
    record(name, env, o, [&var] { return to_text(var); });
    return o;
  }
  CLI::Option* add_flag(CLI::App* app, const std::string& name, bool& var, const std::string& desc);
  // "flag", "environment", ".env" or "default".
  std::string source(const OptionInfo& o) const;
  const std::vector<OptionInfo>& all() const { return opts_; }
  static std::string env_name(const std::string& flag);

 private:
  void record(const std::string& name, const std::string& env, CLI::Option* o, std::function<std::string()> v);
  template <class T>
  static std::string to_text(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) return v;
    else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      std::string s;
      for (auto& x : v) s += (s.empty() ? "" : ",") + x;
      return s;
    } else return std::to_string(v);
  }
  std::vector<OptionInfo> opts_;
};

// Options every model-loading command shares (--model, --threads, vocab policies, logs).
void add_runtime_options(CLI::App* app, Options& o, runtime::RuntimeOptions& ro, std::string& log_format);
// Applies --log-format; false with an error printed when the value is unknown.
bool apply_log_format(const std::string& f);
// Prints "error: <message>" and returns the exit code for a failed Status.
int fail(const Status& st);

// The objects a command's parsed options are written into live as long as the process
// (CLI11 keeps pointers to them): they are owned here, so leak checkers see them owned.
std::vector<std::shared_ptr<void>>& kept_objects();
template <class T>
T* keep(std::shared_ptr<T> p) {
  kept_objects().push_back(p);
  return p.get();
}

// Registers the function that runs when subcommand `sub` was chosen; returns the exit code.
void on_run(CLI::App* sub, std::function<int()> fn);

// Commands (one file each).
void add_generate(CLI::App& app, Options& o);
void add_tokenize(CLI::App& app, Options& o);
void add_inspect(CLI::App& app, Options& o);
void add_chat(CLI::App& app, Options& o);
void add_bench(CLI::App& app, Options& o);
void add_config(CLI::App& app, Options& o);
void add_serve(CLI::App& app, Options& o);
void add_hidden_tools(CLI::App& app, Options& o);

int run(int argc, char** argv);

}  // namespace ballast::cli
