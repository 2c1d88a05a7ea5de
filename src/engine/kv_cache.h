// KV cache: a pool of fixed-size blocks shared by all sequences. Capacity is counted
// in blocks (what admission control and /metrics see); on the CPU each sequence keeps
// its K/V rows contiguous per layer so attention streams them linearly.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace ballast::engine {

struct KvShape {
  int64_t n_layers = 0, n_kv_heads = 0, head_dim = 0;
  int64_t row() const { return n_kv_heads * head_dim; }  // floats per position per layer
};

class KvCache {
 public:
  static constexpr int64_t kBlockTokens = 16;
  // host_storage false: block accounting only (the model keeps K/V on a device).
  KvCache(KvShape shape, int64_t total_blocks, bool host_storage = true);

  // Makes room for positions [0, n_tokens) of seq. kResourceExhausted when the pool is full.
  Status reserve(int32_t seq, int64_t n_tokens);
  void release(int32_t seq);
  bool has(int32_t seq) const { return seqs_.count(seq) != 0; }

  // (capacity, row()) rows for layer l; row t holds position t.
  float* k(int32_t seq, int64_t layer);
  float* v(int32_t seq, int64_t layer);
  int64_t stride() const { return shape_.row(); }

  int64_t total_blocks() const { return total_blocks_; }
  int64_t used_blocks() const { return used_blocks_; }
  int64_t free_blocks() const { return total_blocks_ - used_blocks_; }
  static int64_t blocks_for(int64_t n_tokens) { return (n_tokens + kBlockTokens - 1) / kBlockTokens; }
  const KvShape& shape() const { return shape_; }

 private:
  struct Seq {
    int64_t blocks = 0;
    std::vector<std::vector<float>> k, v;  // per layer: (blocks * kBlockTokens, row)
  };
  KvShape shape_;
  int64_t total_blocks_;
  int64_t used_blocks_ = 0;
  bool host_storage_ = true;
  std::unordered_map<int32_t, Seq> seqs_;
};

}  // namespace ballast::engine
