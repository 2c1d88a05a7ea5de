// Logger implementation: one mutex-guarded write per line.
#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace ballast::log {

namespace {
Format g_format = Format::kHuman;
Level g_level = Level::kInfo;
std::mutex g_mu;
const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
  }
  return "info";
}
}  // namespace

void set_format(Format f) { g_format = f; }
void set_level(Level l) { g_level = l; }
Format format() { return g_format; }

void event(Level level, const std::string& id, const std::string& message, const nlohmann::json& fields) {
  if (level < g_level) return;
  std::string line;
  if (g_format == Format::kJson) {
    nlohmann::json j = fields.is_object() ? fields : nlohmann::json::object();
    auto now = std::chrono::system_clock::now();
    j["ts"] = std::chrono::duration<double>(now.time_since_epoch()).count();
    j["level"] = level_name(level);
    j["event"] = id;
    j["msg"] = message;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else {
    line = std::string("[") + level_name(level) + "] " + id + ": " + message + "\n";
  }
  std::lock_guard<std::mutex> lk(g_mu);
  std::fputs(line.c_str(), stderr);
}

}  // namespace ballast::log
