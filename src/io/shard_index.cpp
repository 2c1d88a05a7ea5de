// Reading a sharded checkpoint's index.json.
#include "io/shard_index.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace ballast::io {

Result<ShardIndex> read_shard_index(const std::string& index) {
  std::ifstream in(index);
  if (!in) return error(ErrorCode::kIoError, index + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, index + ": invalid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return error(ErrorCode::kFormatError, index + ": field 'weight_map' missing");
  ShardIndex out;
  for (auto& [k, v] : j["weight_map"].items()) {
    if (!v.is_string())
      return error(ErrorCode::kFormatError, index + ": weight_map." + k + " not a string");
    auto shard = v.get<std::string>();
    if (shard.find("..") != std::string::npos || shard.find('/') != std::string::npos)
      return error(ErrorCode::kFormatError, index + ": weight_map." + k + ": shard name '" + shard +
                                                "' is not a plain file name");
    out.shards.insert(shard);
    out.weight_map[k] = shard;
  }
  return out;
}

}  // namespace ballast::io
