// Logging: human-readable lines by default, JSON lines with --log-format json.
// Operational events carry a stable id (e.g. "vocab.padding_rows", "request.failed").
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace ballast::log {

enum class Level { kDebug, kInfo, kWarning, kError };
enum class Format { kHuman, kJson };

void set_format(Format f);
void set_level(Level l);
Format format();
// Writes one line to stderr. fields are extra key/values for JSON output.
void event(Level level, const std::string& id, const std::string& message,
           const nlohmann::json& fields = nlohmann::json::object());
inline void info(const std::string& id, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { event(Level::kInfo, id, m, f); }
inline void warn(const std::string& id, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { event(Level::kWarning, id, m, f); }
inline void err(const std::string& id, const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { event(Level::kError, id, m, f); }

}  // namespace ballast::log
