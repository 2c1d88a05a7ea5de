// Sharded checkpoints (model.safetensors.index.json, pytorch_model.bin.index.json): the
// index's weight_map, tensor name -> shard file, with shard names checked to be plain files.
#pragma once
#include <map>
#include <set>
#include <string>

#include "core/status.h"

namespace ballast::io {

struct ShardIndex {
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::set<std::string> shards;                   // distinct shard file names
};

Result<ShardIndex> read_shard_index(const std::string& index_path);

}  // namespace ballast::io
