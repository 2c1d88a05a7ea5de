// Block-accounted KV cache.
#include "engine/kv_cache.h"

namespace ballast::engine {

KvCache::KvCache(KvShape shape, int64_t total_blocks, bool host_storage)
    : shape_(shape), total_blocks_(total_blocks), host_storage_(host_storage) {}

Status KvCache::reserve(int32_t seq, int64_t n_tokens) {
  Seq& s = seqs_[seq];
  const int64_t need = blocks_for(n_tokens);
  if (need <= s.blocks) return Status();
  if (need - s.blocks > free_blocks())
    return error(ErrorCode::kResourceExhausted,
                 "KV cache full: need " + std::to_string(need - s.blocks) + " more blocks, " +
                     std::to_string(free_blocks()) + " free of " + std::to_string(total_blocks_));
  used_blocks_ += need - s.blocks;
  s.blocks = need;
  if (!host_storage_) return Status();
  const size_t floats = static_cast<size_t>(need * kBlockTokens * shape_.row());
  s.k.resize(shape_.n_layers);
  s.v.resize(shape_.n_layers);
  for (int64_t l = 0; l < shape_.n_layers; ++l) {
    s.k[l].resize(floats);
    s.v[l].resize(floats);
  }
  return Status();
}

void KvCache::release(int32_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  used_blocks_ -= it->second.blocks;
  seqs_.erase(it);
}

float* KvCache::k(int32_t seq, int64_t layer) { return seqs_.at(seq).k[layer].data(); }
float* KvCache::v(int32_t seq, int64_t layer) { return seqs_.at(seq).v[layer].data(); }

}  // namespace ballast::engine
