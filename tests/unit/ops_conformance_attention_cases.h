// Attention conformance cases: multi-step scenarios over the paged KV cache (several
// sequences per step on shuffled, non-contiguous blocks; decode steps; prefill chunks
// after decode steps), GQA ratios 1-8, head dims 64-256, sliding windows, per-head q/k
// RMSNorm, RoPE in both layouts (full and partial), LongRoPE's two tables, softcap and custom
// scales, and layers other than 0. The float64 reference keeps its own cache per (layer, sequence, position).
#pragma once
#include <map>
#include <utility>

#include "ops_conformance.h"

namespace ballast::ops_test {

struct AttnConfig {
  std::string name;
  int nh = 8, nkv = 2, hd = 64;
  int window = 0;
  int rope = 1;  // 0: none, 1: rotate-half (neox), 2: interleaved pairs
  int rot = 0;   // rotary dims (0: head_dim)
  int long_after = -1;     // >= 0: LongRoPE, a second table for sequences longer than this
  bool known_len = false;  // the plan gives each sequence's final length (seq_len), as for a chunked prompt
  bool qk_norm = false;
  float scale = 0, softcap = 0;
  int layer = 0, n_layers = 1;
  bool two_layers = false;  // also attention on layer (layer + 1) % n_layers in the same step, summed
  bool qkv_linear = false;  // qkv = linear(x, w, bias) in the step (Qwen2's biased projection)
  std::vector<std::vector<std::pair<int, int>>> steps;  // per step, (sequence, new tokens) in batch order
  uint64_t seed = 1;
};

// K/V of a token as the cache holds it and its query, after q/k norm and RoPE (float64).
struct AttnRef {
  const AttnConfig& c;
  std::vector<double> qn, kn;
  std::vector<float> inv, inv_long;  // inv_long: LongRoPE (c.long_after >= 0)
  static constexpr double kLongScale = 1.25;  // LongRoPE's cos/sin multiplier in these cases
  std::map<std::pair<int, int>, std::vector<std::vector<double>>> k, v;  // (layer, seq) -> position rows

  // len: the token's sequence length that LongRoPE picks its table by.
  void rope(double* x, int heads, int pos, int len) const {
    const int rot = static_cast<int>(inv.size()) * 2, half = rot / 2;
    const bool lng = c.long_after >= 0 && len > c.long_after;
    const double sc = c.long_after >= 0 ? kLongScale : 1.0;
    for (int h = 0; h < heads; ++h) {
      double* y = x + h * c.hd;
      for (int i = 0; i < half; ++i) {
        const double ang = pos * static_cast<double>(lng ? inv_long[i] : inv[i]);
        const double cs = sc * std::cos(ang), sn = sc * std::sin(ang);
        double& a = c.rope == 1 ? y[i] : y[2 * i];
        double& b = c.rope == 1 ? y[i + half] : y[2 * i + 1];
        const double a0 = a, b0 = b;
        a = a0 * cs - b0 * sn;
        b = a0 * sn + b0 * cs;
      }
    }
  }
  void head_norm(double* x, int heads, const std::vector<double>& w) const {
    for (int h = 0; h < heads; ++h) {
      double ms = 0;
      for (int i = 0; i < c.hd; ++i) ms += x[h * c.hd + i] * x[h * c.hd + i];
      const double inv_rms = 1.0 / std::sqrt(ms / c.hd + 1e-6);
      for (int i = 0; i < c.hd; ++i) x[h * c.hd + i] *= inv_rms * w[i];
    }
  }
  // Processes one packed qkv row: writes K/V at (layer, seq, pos), returns q.
  std::vector<double> write(const double* row, int layer, int seq, int pos, int len) {
    const int qw = c.nh * c.hd, kw = c.nkv * c.hd;
    std::vector<double> q(row, row + qw), kk(row + qw, row + qw + kw), vv(row + qw + kw, row + qw + 2 * kw);
    if (c.qk_norm) head_norm(q.data(), c.nh, qn), head_norm(kk.data(), c.nkv, kn);
    if (c.rope) rope(q.data(), c.nh, pos, len), rope(kk.data(), c.nkv, pos, len);
    auto& K = k[{layer, seq}];
    auto& V = v[{layer, seq}];
    if (static_cast<int>(K.size()) <= pos) K.resize(pos + 1), V.resize(pos + 1);
    K[pos] = std::move(kk);
    V[pos] = std::move(vv);
    return q;
  }
  // Causal softmax attention of q at pos over the cache rows [max(0, pos - window + 1), pos].
  std::vector<double> attend(const std::vector<double>& q, int layer, int seq, int pos) {
    const auto& K = k[{layer, seq}];
    const auto& V = v[{layer, seq}];
    const int lo = c.window > 0 ? std::max(0, pos - c.window + 1) : 0, group = c.nh / c.nkv;
    const double scale = c.scale > 0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.hd));
    std::vector<double> out(static_cast<size_t>(c.nh) * c.hd, 0.0), s(pos - lo + 1);
    for (int h = 0; h < c.nh; ++h) {
      const int g = h / group;
      double mx = -INFINITY, sum = 0;
      for (int t = lo; t <= pos; ++t) {
        double d = 0;
        for (int i = 0; i < c.hd; ++i) d += q[h * c.hd + i] * K[t][g * c.hd + i];
        d *= scale;
        if (c.softcap > 0) d = c.softcap * std::tanh(d / c.softcap);
        s[t - lo] = d;
        mx = std::max(mx, d);
      }
      for (auto& e : s) sum += e = std::exp(e - mx);
      for (int t = lo; t <= pos; ++t)
        for (int i = 0; i < c.hd; ++i) out[h * c.hd + i] += s[t - lo] / sum * V[t][g * c.hd + i];
    }
    return out;
  }
};

inline void run_attention_case(Harness& h, const AttnConfig& c) {
  const int64_t qw = int64_t(c.nh) * c.hd, kw = int64_t(c.nkv) * c.hd, W = qw + 2 * kw;
  Rng r(c.seed);
  // Final lengths; each sequence's blocks drawn from a shuffled pool (non-contiguous,
  // interleaved with the other sequences'), a few spare blocks never used.
  std::map<int, int> final_len;
  int total = 0;
  for (const auto& st : c.steps)
    for (auto [s, n] : st) final_len[s] += n, total += n;
  int n_blocks = 7;
  for (auto [s, len] : final_len) n_blocks += (len + 15) / 16;
  std::vector<int32_t> pool(n_blocks);
  for (int i = 0; i < n_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), r.engine());
  std::map<int, std::vector<int32_t>> blocks;
  int next = 3;  // the first shuffled blocks stay unused
  for (auto [s, len] : final_len)
    for (int b = 0; b < (len + 15) / 16; ++b) blocks[s].push_back(pool[next++ % n_blocks]);
  h.init_kv({c.n_layers, c.nkv, c.hd}, n_blocks);

  const int layer2 = (c.layer + 1) % c.n_layers;
  // Packed qkv rows of every token of the case: the input table itself, or a biased
  // projection of a narrower one computed in the step.
  const int64_t K = 96;  // model width of the qkv_linear cases
  const std::vector<double> xin = r.normals(size_t(total) * (c.qkv_linear ? K : W));
  const auto x2 = c.two_layers ? r.normals(size_t(total) * W) : std::vector<double>();
  HostMatrix wqkv;
  std::vector<double> bqkv, x = xin;
  if (c.qkv_linear) {
    wqkv = random_matrix(DType::kF32, W, K, c.seed + 1, 1.0 / std::sqrt(double(K)));
    bqkv = r.normals(W, 0.5);
    x = ref_matmul(xin, K, wqkv.values, W);
    for (size_t i = 0; i < x.size(); ++i) x[i] += bqkv[i % W];
  }
  AttnRef ref{c, r.normals(c.hd, 0.3, 1.0), r.normals(c.hd, 0.3, 1.0), {}, {}, {}, {}};
  const int rot = c.rot > 0 ? c.rot : c.hd;
  for (int i = 0; i < rot / 2; ++i) ref.inv.push_back(static_cast<float>(std::pow(10000.0, -2.0 * i / rot)));
  for (int i = 0; i < rot / 2 && c.long_after >= 0; ++i) ref.inv_long.push_back(ref.inv[i] / (1.0f + 0.7f * i));
  const WeightId tab = h.input(xin, c.qkv_linear ? K : W), tab2 = c.two_layers ? h.input(x2, W) : kNoWeight;
  // qkv always comes out of a linear (a backend may insist): the biased projection, or an
  // identity that keeps the inputs exact.
  const WeightId wid = c.qkv_linear ? h.matrix(wqkv, "wqkv") : h.identity(W), bid = c.qkv_linear ? h.vec(bqkv) : kNoWeight;
  backend::AttentionSpec a;
  a.layer = c.layer;
  a.n_heads = c.nh;
  a.n_kv_heads = c.nkv;
  a.head_dim = c.hd;
  a.scale = c.scale;
  a.softcap = c.softcap;
  a.window = c.window;
  if (c.qk_norm) a.q_norm = h.vec(ref.qn), a.k_norm = h.vec(ref.kn), a.qk_eps = 1e-6f;
  a.rope = !c.rope ? -1
           : c.long_after < 0 ? h.rope(ref.inv)
                              : h.rope(backend::RopeTable{ref.inv, ref.inv_long, c.long_after, float(AttnRef::kLongScale)});
  a.rope_interleaved = c.rope == 2;
  backend::AttentionSpec a2 = a;
  a2.layer = layer2;
  // The same forward every step (a backend may capture and replay it).
  const auto fwd = h.reader([=](Ops& o) {
    Tensor in = o.embed(tab, 1.f);
    Tensor out = o.attention(o.linear(in, wid, bid), a);
    if (tab2 != kNoWeight) o.add(out, o.attention(o.linear(o.embed(tab2, 1.f), wid), a2));
    return out;
  }, qw);
  if (!h.ok()) return;

  std::map<int, int> len;
  int32_t tok = 0;
  for (size_t si = 0; si < c.steps.size(); ++si) {
    const auto& st = c.steps[si];
    StepPlan p;
    // Block-table rows in a shuffled order of the step's sequences; each row holds the
    // blocks written so far, -1 padded one past the longest.
    std::vector<int> seqs;
    for (auto [s, n] : st) seqs.push_back(s);
    std::shuffle(seqs.begin(), seqs.end(), r.engine());
    std::map<int, int32_t> row_of;
    for (size_t i = 0; i < seqs.size(); ++i) row_of[seqs[i]] = static_cast<int32_t>(i);
    p.n_seqs = static_cast<int32_t>(seqs.size());
    for (auto [s, n] : st) p.max_blocks = std::max(p.max_blocks, (len[s] + n + 15) / 16 + 1);
    p.block_tables.assign(size_t(p.n_seqs) * p.max_blocks, -1);
    for (auto [s, n] : st)
      for (int b = 0; b < (len[s] + n + 15) / 16; ++b) p.block_tables[row_of[s] * p.max_blocks + b] = blocks[s][b];
    std::vector<std::vector<double>> qs, qs2;
    std::vector<std::pair<int, int>> where;  // (seq, pos) of each row
    if (c.known_len) {
      p.seq_len.assign(size_t(p.n_seqs), 0);
      for (auto [s, n] : st) p.seq_len[row_of[s]] = final_len[s];
    }
    for (auto [s, n] : st)
      for (int i = 0, rlen = c.known_len ? final_len[s] : len[s] + n; i < n; ++i) {
        const int pos = len[s]++;
        p.logit_rows.push_back(static_cast<int32_t>(p.tokens.size()));
        p.tokens.push_back(tok);
        p.positions.push_back(pos);
        p.seq_row.push_back(row_of[s]);
        qs.push_back(ref.write(&x[size_t(tok) * W], c.layer, s, pos, rlen));
        if (c.two_layers) qs2.push_back(ref.write(&x2[size_t(tok) * W], layer2, s, pos, rlen));
        where.push_back({s, pos});
        ++tok;
      }
    std::vector<double> want;
    for (size_t i = 0; i < qs.size(); ++i) {
      auto o = ref.attend(qs[i], c.layer, where[i].first, where[i].second);
      if (c.two_layers) {
        const auto o2 = ref.attend(qs2[i], layer2, where[i].first, where[i].second);
        for (size_t j = 0; j < o.size(); ++j) o[j] += o2[j];
      }
      want.insert(want.end(), o.begin(), o.end());
    }
    h.check_read(p, fwd, want, qw, 4 * kTolF32, "step " + std::to_string(si) + " (" + std::to_string(p.size()) + " tokens)");
  }
}

inline std::vector<OpCase> attention_cases() {
  using Steps = std::vector<std::vector<std::pair<int, int>>>;
  // Three sequences: odd prefills, decodes, a new sequence's prefill beside a decode and a
  // prefill chunk of a sequence that has decoded, then a long chunk after decodes.
  const Steps mixed = {{{0, 13}, {1, 1}}, {{1, 1}, {0, 1}}, {{2, 21}, {0, 1}, {1, 17}}, {{0, 1}, {1, 1}, {2, 1}}, {{0, 35}}};
  // Spans past 256 keys (the CPU splits them into chunks): chunked prefill then decodes.
  const Steps longs = {{{0, 300}}, {{0, 290}, {1, 5}}, {{1, 1}, {0, 1}}, {{0, 40}, {1, 1}}};
  // A decode batch over very different lengths.
  const Steps batch = {{{0, 1}, {1, 40}, {2, 17}, {3, 290}}, {{3, 1}, {2, 1}, {1, 1}, {0, 1}}, {{0, 1}, {1, 1}, {2, 1}, {3, 1}}};
  std::vector<AttnConfig> cs;
  uint64_t seed = 2000;
  auto add = [&](AttnConfig c, const Steps& steps) {
    c.steps = steps;
    c.seed = seed++;
    cs.push_back(std::move(c));
  };
  for (auto [nh, nkv] : {std::pair{4, 4}, {8, 4}, {8, 2}, {8, 1}})
    for (int hd : {64, 128, 256}) {
      AttnConfig c;
      c.name = "gqa" + std::to_string(nh / nkv) + "_h" + std::to_string(nh) + "_kv" + std::to_string(nkv) + "_hd" + std::to_string(hd);
      c.nh = nh, c.nkv = nkv, c.hd = hd;
      add(c, mixed);
    }
  {
    AttnConfig c;
    c.nh = 16, c.nkv = 2, c.hd = 64, c.name = "gqa8_h16_kv2_hd64";
    add(c, mixed);
  }
  {
    AttnConfig c;
    c.hd = 128, c.rope = 2, c.name = "rope_interleaved_hd128";
    add(c, mixed);
    c.hd = 64, c.rope = 0, c.name = "no_rope_hd64";
    add(c, mixed);
    c.hd = 128, c.rope = 1, c.rot = 64, c.name = "rope_partial_neox_rot64_hd128";
    add(c, mixed);
    c.hd = 64, c.rope = 2, c.rot = 32, c.name = "rope_partial_interleaved_rot32_hd64";
    add(c, mixed);
    // LongRoPE: in `mixed`, sequence 2's prefill (21 tokens) and later steps use the long
    // table beside short-table sequences; sequence 0 switches at its 35-token chunk (its
    // cached K stays short: the engine recomputes a sequence that crosses, see engine.cpp).
    c.hd = 64, c.rope = 1, c.rot = 0, c.long_after = 20, c.name = "longrope_after20_hd64";
    add(c, mixed);
    c.hd = 128, c.rot = 96, c.name = "longrope_partial_rot96_hd128";
    add(c, mixed);
    // The plan's seq_len (final lengths 51, 20, 22): every chunk of sequences 0 and 2 is long.
    c.hd = 64, c.rot = 0, c.known_len = true, c.name = "longrope_seq_len_hd64";
    add(c, mixed);
  }
  {
    AttnConfig c;
    c.hd = 128, c.qk_norm = true, c.name = "qk_norm_neox_hd128";
    add(c, mixed);
    c.hd = 64, c.nh = 8, c.nkv = 2, c.rope = 2, c.name = "qk_norm_interleaved_hd64";
    add(c, mixed);
    c.hd = 256, c.nh = 4, c.nkv = 1, c.rope = 1, c.window = 16, c.name = "qk_norm_window16_hd256_gqa4";
    add(c, mixed);
  }
  for (int w : {1, 5, 16, 33, 4096}) {
    AttnConfig c;
    c.window = w, c.name = "window" + std::to_string(w);
    add(c, mixed);
  }
  {
    AttnConfig c;
    c.hd = 128, c.softcap = 50.f, c.scale = 1.f / 16, c.window = 20, c.name = "softcap50_scale16_window20_hd128";
    add(c, mixed);
    c.hd = 64, c.softcap = 0, c.scale = 0.3f, c.window = 0, c.name = "scale0p3";
    add(c, mixed);
    c.scale = 0, c.softcap = 5.f, c.name = "softcap5";
    add(c, mixed);
  }
  {
    AttnConfig c;
    c.qkv_linear = true, c.name = "qkv_linear_bias_gqa4";
    add(c, mixed);
    c.qk_norm = true, c.hd = 128, c.nh = 4, c.nkv = 4, c.name = "qkv_linear_bias_qk_norm_hd128";
    add(c, mixed);
  }
  {
    AttnConfig c;
    c.n_layers = 3, c.layer = 2, c.name = "layer2_of_3";
    add(c, mixed);
    c.n_layers = 2, c.layer = 0, c.two_layers = true, c.name = "two_layers_one_step";
    add(c, mixed);
  }
  for (int w : {0, 256, 257, 300}) {
    AttnConfig c;
    c.nh = 4, c.nkv = 2, c.window = w, c.name = "long_window" + std::to_string(w);
    add(c, longs);
  }
  {
    AttnConfig c;
    c.nh = 8, c.nkv = 1, c.hd = 128, c.name = "decode_batch_gqa8_hd128";
    add(c, batch);
    c.window = 32, c.name = "decode_batch_window32";
    add(c, batch);
  }
  std::vector<OpCase> v;
  for (const AttnConfig& c : cs) v.push_back({fmt_name("attention_" + c.name), [c](Harness& h) { run_attention_case(h, c); }});
  return v;
}

}  // namespace ballast::ops_test
