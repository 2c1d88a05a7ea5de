// sample_rows: the Sampler chain (see sampling_kernels.h) per logits row in one block,
// without sorting. Candidates carry 64-bit keys (order-preserving bits of the value << 32 |
// V-1-id): larger key = earlier in the CPU's order (value desc, id asc), all keys distinct.
// Thresholds (top-N, top-k, top-p) are found by radix select on those keys, 8 bits a pass
// (256-bin histograms in shared memory); a candidate is kept iff key >= threshold.
// Probabilities are integers: round(exp(y - ytop) * 2^43), so masses sum exactly and in any
// order (a launch is deterministic). The draw finds the drawn mass in index order by
// narrowing the row to 1/32 per level (warp sums), ~1 pass in all.
#include <cfloat>
#include <climits>
#include <cmath>

#include "backend/cuda/sampling_kernels.h"

namespace ballast::cuda {

namespace {

using u64 = unsigned long long;  // atomicAdd's 64-bit type

constexpr int kThreads = 1024, kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;
constexpr float kMassOne = 8796093022208.0f;  // 2^43: the mass of the top candidate
constexpr int kCompact = 512;  // top_k <= this: top-p, min-p and the draw run on the k candidates

struct Smem {
  uint32_t cnt[256];  // histogram: candidates per bin
  u64 mass[256];      // histogram: mass per bin (top-p passes)
  float rf[kWarps];   // block reductions
  int ri[kWarps];
  double rd[kWarps];
  u64 ru[kWarps];
  int sel_bin;        // find_bin result, -1: need not reached
  uint32_t sel_cnt;
  u64 sel_above, sel_mass, sel_need;
  int n_gather;       // top-N gather
  u64 gk[kMaxTopLogprobs];
  int gi[kMaxTopLogprobs];
  int seg, chosen;    // draw: chosen warp segment; the drawn id
  u64 target, total;
  int n_cand;         // top-k compaction: the top_k candidates, then sorted by key
  u64 ckey[kCompact], skey[kCompact];
  float cy[kCompact], sy[kCompact];
  int cid[kCompact], sid[kCompact];
};

// One logits row as the passes see it: at(i) is -inf for an excluded id.
struct Row {
  const float* x;        // (V,) logits, or the transformed copy in work
  const uint8_t* valid;  // (V,) or null (work rows hold -inf for masked ids)
  int V;
  float scale;           // 1, or 1/temperature
  // Both loads issued unconditionally (no load behind a branch: the passes are
  // latency-bound on one SM).
  __device__ float at(int i) const {
    const float v = x[i] * scale;
    const bool ok = !valid || valid[i];
    return ok ? v : -INFINITY;
  }
};

__device__ __forceinline__ u64 key_of(float y, int i, int V) {
  uint32_t u = __float_as_uint(y);
  if (u == 0x80000000u) u = 0;  // -0 ties with +0
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return (static_cast<u64>(u) << 32) | static_cast<uint32_t>(V - 1 - i);
}

// y <= ytop: fixed-point exp(y - ytop), 2^43 for the top (__expf: ~1e-6 relative error,
// the same function in every pass of a launch).
__device__ __forceinline__ u64 mass_of(float y, float ytop) { return __float2ull_rn(__expf(y - ytop) * kMassOne); }

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform integer in [0, total) from (seed, step).
__device__ u64 draw_target(uint64_t seed, uint64_t step, u64 total) {
  const double u = static_cast<double>(mix64(mix64(seed) ^ step) >> 11) * 0x1p-53;
  const u64 t = static_cast<u64>(u * static_cast<double>(total));
  return t < total ? t : total - 1;
}

__device__ __forceinline__ u64 warp_sum(u64 v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ u64 warp_incl_scan(u64 v, int lane) {
  for (int o = 1; o < 32; o <<= 1) {
    const u64 t = __shfl_up_sync(kFull, v, o);
    if (lane >= o) v += t;
  }
  return v;
}

// Block-wide max value with its lowest index; every thread gets the result.
__device__ void block_argmax(float& v, int& i, Smem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int pass = 0; pass < 2; ++pass) {
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFull, v, o);
      const int oi = __shfl_xor_sync(kFull, i, o);
      if (ov > v || (ov == v && oi < i)) v = ov, i = oi;
    }
    if (pass == 1) break;
    if (lane == 0) sm.rf[warp] = v, sm.ri[warp] = i;
    __syncthreads();
    v = sm.rf[lane], i = sm.ri[lane];  // every warp reduces the 32 partials
  }
  __syncthreads();
}

template <class T>
__device__ T block_sum(T v, T* buf) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  if (lane == 0) buf[warp] = v;
  __syncthreads();
  v = buf[lane];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  __syncthreads();
  return v;
}

// Calls f(i, r.at(i)) for every id with the 32 lanes of a warp together (ids >= V get
// -inf), so f may use warp collectives; 4 loads in flight per thread.
template <class F>
__device__ __forceinline__ void for_row(const Row& r, F&& f) {
  const int lane = threadIdx.x & 31;
  int base = threadIdx.x - lane;
  for (; base + 3 * kThreads + 32 <= r.V; base += 4 * kThreads) {
    float y[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) y[u] = r.at(base + u * kThreads + lane);
#pragma unroll
    for (int u = 0; u < 4; ++u) f(base + u * kThreads + lane, y[u]);
  }
  for (; base < r.V; base += kThreads) {
    const int i = base + lane;
    f(i, i < r.V ? r.at(i) : -INFINITY);
  }
}

// Adds this lane's candidate (bin < 0: none) to the histogram; lanes sharing a bin are
// combined first (one shared atomic per distinct bin and warp). Masses m <= 2^43: summed
// over a warp as two 32-bit halves (22 bits each).
__device__ __forceinline__ void warp_hist_add(Smem& sm, int bin, u64 m, bool with_mass) {
  const int lane = threadIdx.x & 31;
  if (__ballot_sync(kFull, bin >= 0) == 0) return;
  const unsigned grp = __match_any_sync(kFull, bin);
  const int n = __popc(grp);
  const bool leader = bin >= 0 && lane == __ffs(grp) - 1;
  if (leader) atomicAdd(&sm.cnt[bin], static_cast<uint32_t>(n));
  if (!with_mass) return;
  if (bin >= 0 && n == 1) atomicAdd(&sm.mass[bin], m);
  unsigned shared_bins = __ballot_sync(kFull, leader && n > 1);  // leaders of bins with > 1 lane
  while (shared_bins) {
    const int src = __ffs(shared_bins) - 1;
    shared_bins &= shared_bins - 1;
    const int b = __shfl_sync(kFull, bin, src);
    const bool mine = bin == b;
    const uint32_t hi = __reduce_add_sync(kFull, mine ? static_cast<uint32_t>(m >> 22) : 0u);
    const uint32_t lo = __reduce_add_sync(kFull, mine ? static_cast<uint32_t>(m & 0x3fffffu) : 0u);
    if (lane == src) atomicAdd(&sm.mass[b], (static_cast<u64>(hi) << 22) + lo);
  }
}

// Histogram of the key byte at `shift` over the candidates with key >= lo and
// (key & mask) == prefix; masses too when with_mass.
__device__ void hist_pass(const Row& r, float ytop, u64 lo, u64 prefix, u64 mask, int shift, bool with_mass,
                          Smem& sm) {
  for (int b = threadIdx.x; b < 256; b += kThreads) sm.cnt[b] = 0, sm.mass[b] = 0;
  __syncthreads();
  for_row(r, [&](int i, float y) {
    int bin = -1;
    u64 m = 0;
    if (y != -INFINITY) {
      const u64 k = key_of(y, i, r.V);
      if (k >= lo && (k & mask) == prefix) {
        bin = static_cast<int>((k >> shift) & 0xff);
        if (with_mass) m = mass_of(y, ytop);
      }
    }
    warp_hist_add(sm, bin, m, with_mass);
  });
  __syncthreads();
}

// Warp 0 scans the histogram from the top bin down for the first bin b where
// above + (bins above b) + bin b >= need (counts, or masses when by_mass); sm.sel_* hold
// b (-1 if need is never reached), the total above b, and bin b's count and mass.
// top_p >= 0 (first top-p pass): need = ceil(top_p * total mass) first (sm.sel_need).
__device__ void find_bin(Smem& sm, bool by_mass, u64 need, u64 above, float top_p) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    u64 v[8], local = 0;  // lane owns bins 255 - 8 lane ... 248 - 8 lane, high first
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int b = 255 - 8 * lane - k;
      v[k] = by_mass ? sm.mass[b] : sm.cnt[b];
      local += v[k];
    }
    const u64 incl = warp_incl_scan(local, lane);
    if (top_p >= 0.0f) {
      const double t = ceil(static_cast<double>(top_p) * static_cast<double>(__shfl_sync(kFull, incl, 31)));
      need = t < 1.0 ? 1 : static_cast<u64>(t);
    }
    const unsigned hit = __ballot_sync(kFull, above + incl >= need);
    if (lane == 0) sm.sel_bin = -1, sm.sel_need = need;
    __syncwarp();
    if (hit && lane == __ffs(hit) - 1) {
      u64 acc = above + incl - local;
      for (int k = 0; k < 8; ++k) {
        if (acc + v[k] >= need) {
          const int b = 255 - 8 * lane - k;
          sm.sel_bin = b, sm.sel_above = acc, sm.sel_cnt = sm.cnt[b], sm.sel_mass = sm.mass[b];
          break;
        }
        acc += v[k];
      }
    }
  }
  __syncthreads();
}

// Radix select over the keys of the candidates with key >= lo, 8 bits a pass from the top.
// by_mass false: returns T with exactly `need` of them having key >= T.
// by_mass true (top-p; need unused): with masses exp(y - ytop) and Z their sum, returns the T
// that keeps the shortest key-descending prefix whose mass reaches top_p * Z (lo when none
// shorter than all). Value ties at the threshold have equal masses, so the index bytes are
// selected by count.
__device__ u64 radix_select(const Row& r, float ytop, u64 lo, u64 need, bool by_mass, float top_p, Smem& sm) {
  const int idx_bits = 32 - __clz(r.V > 1 ? r.V - 1 : 1);  // index bytes above it are all 0
  const int idx_top = (idx_bits - 1) / 8 * 8;
  u64 prefix = 0, mask = 0, above = 0;
  bool mass_mode = by_mass;
  for (int shift = 56; shift >= 0; shift -= 8) {
    if (shift < 32 && shift > idx_top) continue;
    hist_pass(r, ytop, lo, prefix, mask, shift, mass_mode, sm);
    find_bin(sm, mass_mode, need, above, by_mass && shift == 56 ? top_p : -1.0f);
    const int b = sm.sel_bin;
    if (b < 0) return lo;  // top-p mass never reached (rounding): keep all
    const uint32_t c = sm.sel_cnt;
    need = sm.sel_need, above = sm.sel_above;
    prefix |= static_cast<u64>(b) << shift;
    mask |= 0xffull << shift;
    if (mass_mode) {
      if (c == 1) return prefix > lo ? prefix : lo;
      if (shift == 32) {  // c candidates of one value: take the first j in key order
        const u64 m0 = sm.sel_mass / c;
        u64 j = m0 ? (need - above + m0 - 1) / m0 : c;
        if (j < 1) j = 1;
        if (j >= c) return prefix > lo ? prefix : lo;
        mass_mode = false, need = j, above = 0;
      }
    } else if (above + c == need) {
      return prefix > lo ? prefix : lo;
    }
  }
  return prefix > lo ? prefix : lo;
}

// Max of r.at over the row, its lowest id, and the number of candidates (not -inf).
__device__ void max_pass(const Row& r, float& best, int& idx, int& n, Smem& sm) {
  best = -INFINITY, idx = INT_MAX;
  int c = 0;
#pragma unroll 8
  for (int i = threadIdx.x; i < r.V; i += kThreads) {
    const float y = r.at(i);
    if (y == -INFINITY) continue;
    ++c;
    if (y > best) best = y, idx = i;
  }
  block_argmax(best, idx, sm);
  n = block_sum(c, sm.ri);
}

// Draws an id with probability mass(i) / sum: narrows [lo, hi) to one of 32 warp segments
// per level until <= 32 ids are left. -1 when nothing has mass.
template <class Mass>
__device__ int draw(int V, Mass mass, uint64_t seed, uint64_t step, Smem& sm) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int lo = 0, hi = V;
  u64 target = 0;
  bool first = true;
  while (hi - lo > 32) {
    const int seg = (hi - lo + kWarps - 1) / kWarps;
    const int s0 = min(lo + warp * seg, hi), s1 = min(s0 + seg, hi);
    u64 acc = 0;
#pragma unroll 8
    for (int i = s0 + lane; i < s1; i += 32) acc += mass(i);
    acc = warp_sum(acc);
    if (lane == 0) sm.ru[warp] = acc;
    __syncthreads();
    if (warp == 0) {
      const u64 v = sm.ru[lane], incl = warp_incl_scan(v, lane);
      if (first) {
        const u64 total = __shfl_sync(kFull, incl, 31);
        target = total ? draw_target(seed, step, total) : 0;
        if (lane == 0) sm.total = total;
      }
      const unsigned hit = __ballot_sync(kFull, target < incl);
      const int w = hit ? __ffs(hit) - 1 : 31;
      if (lane == w) sm.seg = w, sm.target = target - (incl - v);
    }
    __syncthreads();
    if (sm.total == 0) return -1;
    target = sm.target;
    lo = min(lo + sm.seg * seg, hi);
    hi = min(lo + seg, hi);
    first = false;
  }
  if (warp == 0) {  // <= 32 ids left: one lane each
    const int i = lo + lane;
    const u64 incl = warp_incl_scan(i < hi ? mass(i) : 0, lane);
    if (first) {
      const u64 total = __shfl_sync(kFull, incl, 31);
      target = total ? draw_target(seed, step, total) : 0;
    }
    const unsigned hit = __ballot_sync(kFull, target < incl);
    if (lane == 0) sm.chosen = hit ? lo + __ffs(hit) - 1 : -1;
  }
  __syncthreads();
  return sm.chosen;
}

struct SampleArgs {
  const float* logits;  // (m, V)
  int V;
  const uint8_t* valid;  // (V,) or null
  const SampleRowParams* params;  // (m,)
  const int32_t* pen_ids;
  const int32_t* pen_counts;
  const int32_t* bias_ids;
  const float* bias_vals;
  float* work;      // (m, V) or null
  SampleRowOut* out;  // (m,)
  int32_t* top_ids;   // (m, kMaxTopLogprobs) or null
  float* top_lps;
};

// grid: m rows; block kThreads.
__global__ void __launch_bounds__(kThreads) k_sample(SampleArgs a) {
  __shared__ Smem sm;
  const int row = blockIdx.x, tid = threadIdx.x, V = a.V;
  const SampleRowParams p = a.params[row];
  const float* x = a.logits + static_cast<int64_t>(row) * V;
  SampleRowOut o{-1, 0.0f, 0, kSampleOk};
  int32_t* top_ids = a.top_ids ? a.top_ids + static_cast<int64_t>(row) * kMaxTopLogprobs : nullptr;
  float* top_lps = a.top_lps ? a.top_lps + static_cast<int64_t>(row) * kMaxTopLogprobs : nullptr;
  if (top_ids && tid < kMaxTopLogprobs) top_ids[tid] = -1, top_lps[tid] = 0.0f;

  // 1. One pass: mask, non-finite check, max (lowest id), online sum of exp(x - max).
  float tm = -INFINITY, ts = 0.0f;
  int ti = INT_MAX, tn = 0, tbad = 0;
  constexpr int kU = 8;  // loads in flight per thread
  for (int i0 = tid; i0 < V; i0 += kU * kThreads) {
    float xv[kU];
    bool ok[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int i = i0 + u * kThreads;
      xv[u] = i < V ? x[i] : 0.0f;
      ok[u] = i < V && (!a.valid || a.valid[i]);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (!ok[u]) continue;
      const float v = xv[u];
      if (!isfinite(v)) {
        tbad = 1;
        continue;
      }
      ++tn;
      if (v > tm) {
        ts = ts * __expf(tm - v) + 1.0f, tm = v, ti = i0 + u * kThreads;
      } else {
        ts += __expf(v - tm);
      }
    }
  }
  float mx = tm;
  int amax = ti;
  block_argmax(mx, amax, sm);
  const int bad = block_sum(tbad, sm.ri), nvalid = block_sum(tn, sm.ri);
  if (bad || nvalid == 0) {
    if (tid == 0) o.status = bad ? kSampleNonFinite : kSampleNoToken, a.out[row] = o;
    return;
  }
  const double sum = block_sum(tm == -INFINITY ? 0.0 : ts * exp(static_cast<double>(tm) - mx), sm.rd);
  const float lse = mx + static_cast<float>(log(sum));
  const Row raw{x, a.valid, V, 1.0f};

  // 2. Top-N of the raw distribution: select the N-th key, gather, sort N <= 20 keys.
  const int n_top = top_ids ? min(min(p.top_logprobs, kMaxTopLogprobs), nvalid) : 0;
  if (n_top > 0) {
    const u64 t = n_top < nvalid ? radix_select(raw, 0.0f, 0, n_top, false, -1.0f, sm) : 0;
    if (tid == 0) sm.n_gather = 0;
    __syncthreads();
    for (int i = tid; i < V; i += kThreads) {
      const float y = raw.at(i);
      if (y == -INFINITY) continue;
      const u64 k = key_of(y, i, V);
      if (k < t) continue;
      const int slot = atomicAdd(&sm.n_gather, 1);
      if (slot < kMaxTopLogprobs) sm.gk[slot] = k, sm.gi[slot] = i;
    }
    __syncthreads();
    if (tid == 0) {
      const int n = min(sm.n_gather, n_top);
      for (int j = 1; j < n; ++j)  // insertion sort, key descending
        for (int q = j; q > 0 && sm.gk[q] > sm.gk[q - 1]; --q) {
          const u64 k = sm.gk[q];
          const int id = sm.gi[q];
          sm.gk[q] = sm.gk[q - 1], sm.gi[q] = sm.gi[q - 1];
          sm.gk[q - 1] = k, sm.gi[q - 1] = id;
        }
      for (int j = 0; j < n; ++j) top_ids[j] = sm.gi[j], top_lps[j] = x[sm.gi[j]] - lse;
      o.n_top = n;
    }
  }

  // 3. logit_bias, then penalties, on a masked copy of the row in work.
  const bool pen = p.pen_count > 0 && a.pen_ids &&
                   (p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f);
  const bool bias = p.bias_count > 0 && a.bias_ids && a.bias_vals;
  Row cur = raw;
  if (pen || bias) {
    if (!a.work) {
      if (tid == 0) o.status = kSampleNoWork, a.out[row] = o;
      return;
    }
    float* w = a.work + static_cast<int64_t>(row) * V;
    for (int i = tid; i < V; i += kThreads) w[i] = raw.at(i);
    __syncthreads();
    if (bias)
      for (int j = tid; j < p.bias_count; j += kThreads) {
        const int id = a.bias_ids[p.bias_begin + j];
        if (id < 0 || id >= V || w[id] == -INFINITY) continue;
        w[id] += a.bias_vals[p.bias_begin + j];
      }
    __syncthreads();
    if (pen)
      for (int j = tid; j < p.pen_count; j += kThreads) {
        const int id = a.pen_ids[p.pen_begin + j];
        if (id < 0 || id >= V) continue;
        float v = w[id];
        if (v == -INFINITY) continue;
        const float rp = p.repetition_penalty;
        if (rp != 1.0f) v = v > 0.0f ? v / rp : v * rp;
        const int c = a.pen_counts ? a.pen_counts[p.pen_begin + j] : 0;
        if (c > 0 && (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f))
          v -= static_cast<float>(static_cast<double>(p.frequency_penalty) * c + p.presence_penalty);
        w[id] = v;
      }
    __syncthreads();
    cur = Row{w, nullptr, V, 1.0f};
  }

  if (p.temperature <= 0.0f) {
    // 4. Greedy: argmax of the transformed row (pass 1's when there was no transform).
    o.id = amax;
    if (pen || bias) {
      float best;
      int n;
      max_pass(cur, best, o.id, n, sm);
      if (n == 0) o.id = -1;
    }
  } else {
    // 5. Temperature, top-k, top-p, min-p, draw.
    cur.scale = static_cast<float>(1.0 / static_cast<double>(p.temperature));
    float ytop = mx * cur.scale;
    int ncand = nvalid;
    if (pen || bias) {
      int idx;
      max_pass(cur, ytop, idx, ncand, sm);
    }
    // Compaction: the top kk candidates go to shared memory, sorted by key (the CPU's
    // order), and top-p, min-p and the draw run there with no more passes over the row.
    //  - top_k <= kCompact: kk = top_k;
    //  - top-p alone: kk = kCompact, used when those candidates already hold top_p of the
    //    whole distribution's mass (peaked distributions); otherwise the radix path below.
    const bool topk_compact = p.top_k > 0 && p.top_k < ncand && p.top_k <= kCompact;
    const bool topp_compact = !topk_compact && (p.top_k <= 0 || p.top_k >= ncand) && p.top_p < 1.0f;
    bool done = false;
    if (ncand > 0 && (topk_compact || topp_compact)) {
      const int kk = topk_compact ? p.top_k : min(kCompact, ncand);
      const u64 t = kk < ncand ? radix_select(cur, ytop, 0, kk, false, -1.0f, sm) : 0;
      u64 z_all = 0;  // top-p alone: the mass of every candidate
      if (topp_compact) {
        u64 zl = 0;
#pragma unroll 8
        for (int i = tid; i < V; i += kThreads) {
          const float y = cur.at(i);
          if (y != -INFINITY) zl += mass_of(y, ytop);
        }
        z_all = block_sum(zl, sm.ru);
      }
      if (tid == 0) sm.n_cand = 0, sm.seg = 0;  // seg: 1 = fall back to the radix path
      __syncthreads();
      for (int i = tid; i < V; i += kThreads) {
        const float y = cur.at(i);
        if (y == -INFINITY) continue;
        const u64 k = key_of(y, i, V);
        if (k < t) continue;
        const int slot = atomicAdd(&sm.n_cand, 1);
        if (slot < kCompact) sm.ckey[slot] = k, sm.cy[slot] = y, sm.cid[slot] = i;
      }
      __syncthreads();
      const int n = min(sm.n_cand, kCompact);
      for (int j = tid; j < n; j += kThreads) {  // rank sort (keys are unique)
        int r = 0;
        for (int q = 0; q < n; ++q) r += sm.ckey[q] > sm.ckey[j];
        sm.skey[r] = sm.ckey[j], sm.sy[r] = sm.cy[j], sm.sid[r] = sm.cid[j];
      }
      __syncthreads();
      if (tid == 0) {
        // Masses relative to the top (the row's max is among the k), top-p prefix, min-p.
        u64 z = 0;
        if (topp_compact) {
          z = z_all;
        } else {
          for (int j = 0; j < n; ++j) z += mass_of(sm.sy[j], ytop);
        }
        int keep = n;
        if (p.top_p < 1.0f) {
          const double need_d = ceil(static_cast<double>(fmaxf(p.top_p, 0.0f)) * static_cast<double>(z));
          const u64 need = need_d < 1.0 ? 1 : static_cast<u64>(need_d);
          u64 acc = 0;
          bool reached = false;
          for (int j = 0; j < n; ++j) {
            acc += mass_of(sm.sy[j], ytop);
            if (acc >= need) {
              keep = j + 1;
              reached = true;
              break;
            }
          }
          if (topp_compact && !reached && kk < ncand) sm.seg = 1;  // nucleus larger than kk
        }
        const float min_p = fminf(p.min_p, 1.0f);
        u64 total = 0;
        for (int j = 0; j < keep; ++j) {
          if (min_p > 0.0f && __expf(sm.sy[j] - ytop) < min_p) break;
          total += mass_of(sm.sy[j], ytop);
        }
        o.id = -1;
        if (total > 0 && sm.seg == 0) {
          const u64 target = draw_target(p.seed, p.step, total);
          u64 acc = 0;
          for (int j = 0; j < keep; ++j) {
            acc += mass_of(sm.sy[j], ytop);
            if (target < acc) {
              o.id = sm.sid[j];
              break;
            }
          }
        }
      }
      __syncthreads();
      done = sm.seg == 0;
    }
    if (!done && ncand > 0) {
      u64 t = 0;
      if (p.top_k > 0 && p.top_k < ncand) t = radix_select(cur, ytop, 0, p.top_k, false, -1.0f, sm);
      if (p.top_p < 1.0f) t = radix_select(cur, ytop, t, 0, true, fmaxf(p.top_p, 0.0f), sm);
      const float min_p = fminf(p.min_p, 1.0f);
      o.id = draw(
          V,
          [&](int i) -> u64 {
            const float y = cur.at(i);
            if (y == -INFINITY || key_of(y, i, V) < t) return 0;
            const float e = __expf(y - ytop);
            return min_p > 0.0f && e < min_p ? 0 : __float2ull_rn(e * kMassOne);
          },
          p.seed, p.step, sm);
    }
  }
  if (tid == 0) {
    if (o.id < 0) {
      o.status = kSampleNoToken;
    } else {
      o.logprob = x[o.id] - lse;
    }
    a.out[row] = o;
  }
}

}  // namespace

void sample_rows(const float* logits, int m, int V, const uint8_t* valid, const SampleRowParams* params,
                 const int32_t* pen_ids, const int32_t* pen_counts, const int32_t* bias_ids,
                 const float* bias_vals, float* work, SampleRowOut* out, int32_t* top_ids, float* top_lps,
                 cudaStream_t s) {
  if (m <= 0) return;
  const SampleArgs a{logits, V, valid, params, pen_ids, pen_counts, bias_ids, bias_vals, work, out, top_ids, top_lps};
  k_sample<<<m, kThreads, 0, s>>>(a);
}

}  // namespace ballast::cuda
