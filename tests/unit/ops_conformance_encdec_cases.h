// Encoder-decoder attention conformance: an encode step (several sequences' whole inputs
// in one step, non-causal attention with a relative-position bias, cross K/V stored with
// store_kv into another layer) followed by decoder steps (causal self-attention with a
// causal bias, cross-attention over the stored encoder K/V), against float64.
// Sequences' encoder and decoder blocks come from one shuffled pool; one input passes
// 256 keys (the CPU's key chunk).
#pragma once
#include <map>
#include <utility>

#include "ops_conformance.h"

namespace ballast::ops_test {

struct EncDecConfig {
  std::string name;
  int nh = 4, nkv = 2, hd = 64, rel_max = 12;
  std::vector<int> enc_len;                             // per sequence
  std::vector<std::vector<int>> dec_steps;              // per step, the sequences that decode one token
  uint64_t seed = 7;
};

struct EncDecRef {
  const EncDecConfig& c;
  std::vector<double> enc_bias, dec_bias;  // (nh, 2 rel_max + 1)
  // Softmax attention of q (nh, hd) over rows K/V (t = 0..len-1), scores + bias(t - pos).
  std::vector<double> attend(const double* q, const std::vector<std::vector<double>>& K,
                             const std::vector<std::vector<double>>& V, int len, int pos,
                             const std::vector<double>* bias) const {
    const int group = c.nh / c.nkv, W = 2 * c.rel_max + 1;
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.hd));
    std::vector<double> out(static_cast<size_t>(c.nh) * c.hd, 0.0), s(len);
    for (int h = 0; h < c.nh; ++h) {
      const int g = h / group;
      double mx = -INFINITY, sum = 0;
      for (int t = 0; t < len; ++t) {
        double d = 0;
        for (int i = 0; i < c.hd; ++i) d += q[h * c.hd + i] * K[t][g * c.hd + i];
        d *= scale;
        if (bias) d += (*bias)[h * W + std::clamp(t - pos, -c.rel_max, c.rel_max) + c.rel_max];
        s[t] = d;
        mx = std::max(mx, d);
      }
      for (auto& e : s) sum += e = std::exp(e - mx);
      for (int t = 0; t < len; ++t)
        for (int i = 0; i < c.hd; ++i) out[h * c.hd + i] += s[t] / sum * V[t][g * c.hd + i];
    }
    return out;
  }
};

inline void run_encdec_case(Harness& h, const EncDecConfig& c) {
  const int64_t qw = int64_t(c.nh) * c.hd, kw = int64_t(c.nkv) * c.hd, W = qw + 2 * kw, B = 2 * c.rel_max + 1;
  const int n_seqs = static_cast<int>(c.enc_len.size());
  Rng r(c.seed);
  std::vector<int> dec_len(n_seqs, 0);
  for (const auto& st : c.dec_steps)
    for (int s : st) dec_len[s]++;
  int n_blocks = 5;
  for (int s = 0; s < n_seqs; ++s) n_blocks += (c.enc_len[s] + 15) / 16 + (dec_len[s] + 15) / 16;
  std::vector<int32_t> pool(n_blocks);
  for (int i = 0; i < n_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), r.engine());
  int next = 2;
  std::vector<std::vector<int32_t>> enc_blocks(n_seqs), dec_blocks(n_seqs);
  for (int s = 0; s < n_seqs; ++s) {
    for (int b = 0; b < (c.enc_len[s] + 15) / 16; ++b) enc_blocks[s].push_back(pool[next++]);
    for (int b = 0; b < (dec_len[s] + 15) / 16; ++b) dec_blocks[s].push_back(pool[next++]);
  }
  h.init_kv({2, c.nkv, c.hd}, n_blocks);  // layer 0: self-attention, layer 1: cross K/V

  int total_enc = 0, total_dec = 0;
  for (int s = 0; s < n_seqs; ++s) total_enc += c.enc_len[s], total_dec += dec_len[s];
  // Per token: packed encoder qkv rows, cross [k|v] rows; decoder qkv rows and cross q rows.
  const auto x_enc = r.normals(size_t(total_enc) * W), x_kv = r.normals(size_t(total_enc) * 2 * kw);
  const auto x_dec = r.normals(size_t(total_dec) * W), x_q = r.normals(size_t(total_dec) * qw);
  EncDecRef ref{c, r.normals(size_t(c.nh) * B), r.normals(size_t(c.nh) * B)};
  const WeightId t_enc = h.input(x_enc, W), t_kv = h.input(x_kv, 2 * kw), t_dec = h.input(x_dec, W),
                 t_q = h.input(x_q, qw);
  const WeightId i_w = h.identity(W), i_kv = h.identity(2 * kw), i_q = h.identity(qw);
  backend::AttentionSpec enc;
  enc.layer = 0;
  enc.n_heads = c.nh, enc.n_kv_heads = c.nkv, enc.head_dim = c.hd;
  enc.causal = false;
  enc.rel_bias = h.vec(ref.enc_bias);
  enc.rel_max = c.rel_max;
  backend::AttentionSpec dec = enc;
  dec.causal = true;
  dec.rel_bias = h.vec(ref.dec_bias);
  backend::AttentionSpec cross = enc;
  cross.cross = true;
  cross.layer = 1;
  cross.rel_bias = kNoWeight;
  cross.rel_max = 0;
  if (!h.ok()) return;

  // Encode step: every sequence's whole input, in a shuffled row order.
  std::vector<std::vector<std::vector<double>>> CK(n_seqs), CV(n_seqs);
  {
    StepPlan p;
    p.encode = true;
    p.n_seqs = n_seqs;
    for (int s = 0; s < n_seqs; ++s) p.max_blocks = std::max<int32_t>(p.max_blocks, (c.enc_len[s] + 15) / 16);
    p.block_tables.assign(size_t(n_seqs) * p.max_blocks, -1);
    std::vector<int> order(n_seqs);
    for (int s = 0; s < n_seqs; ++s) order[s] = s;
    std::shuffle(order.begin(), order.end(), r.engine());
    std::vector<double> want;
    int tok = 0;
    std::vector<int> first(n_seqs);
    for (int s = 0; s < n_seqs; ++s) first[s] = tok, tok += c.enc_len[s];
    for (int row = 0; row < n_seqs; ++row) {
      const int s = order[row];
      for (size_t b = 0; b < enc_blocks[s].size(); ++b) p.block_tables[size_t(row) * p.max_blocks + b] = enc_blocks[s][b];
      std::vector<std::vector<double>> K, V;
      for (int i = 0; i < c.enc_len[s]; ++i) {
        const double* x = &x_enc[size_t(first[s] + i) * W];
        K.emplace_back(x + qw, x + qw + kw);
        V.emplace_back(x + qw + kw, x + W);
        const double* kv = &x_kv[size_t(first[s] + i) * 2 * kw];
        CK[s].emplace_back(kv, kv + kw);
        CV[s].emplace_back(kv + kw, kv + 2 * kw);
      }
      for (int i = 0; i < c.enc_len[s]; ++i) {
        p.logit_rows.push_back(static_cast<int32_t>(p.tokens.size()));
        p.tokens.push_back(first[s] + i);
        p.positions.push_back(i);
        p.seq_row.push_back(row);
        const auto o = ref.attend(&x_enc[size_t(first[s] + i) * W], K, V, c.enc_len[s], i, &ref.enc_bias);
        want.insert(want.end(), o.begin(), o.end());
      }
    }
    const auto fwd = h.reader([=](Ops& o) {
      o.store_kv(o.linear(o.embed(t_kv, 1.f), i_kv), 1);
      return o.attention(o.linear(o.embed(t_enc, 1.f), i_w), enc);
    }, qw);
    h.check_read(p, fwd, want, qw, 4 * kTolF32, "encode step");
  }

  // Decoder steps: self-attention with the causal bias plus cross-attention, summed.
  std::vector<std::vector<std::vector<double>>> DK(n_seqs), DV(n_seqs);
  std::vector<int> len(n_seqs, 0);
  int tok = 0;
  const auto fwd = h.reader([=](Ops& o) {
    Tensor self = o.attention(o.linear(o.embed(t_dec, 1.f), i_w), dec);
    o.add(self, o.attention(o.linear(o.embed(t_q, 1.f), i_q), cross));
    return self;
  }, qw);
  for (size_t si = 0; si < c.dec_steps.size(); ++si) {
    const auto& st = c.dec_steps[si];
    StepPlan p;
    p.n_seqs = static_cast<int32_t>(st.size());
    for (int s : st) {
      p.max_blocks = std::max<int32_t>(p.max_blocks, (len[s] + 1 + 15) / 16);
      p.cross_max_blocks = std::max<int32_t>(p.cross_max_blocks, (c.enc_len[s] + 15) / 16 + 1);
    }
    p.block_tables.assign(size_t(p.n_seqs) * p.max_blocks, -1);
    p.cross_tables.assign(size_t(p.n_seqs) * p.cross_max_blocks, -1);
    std::vector<double> want;
    for (int row = 0; row < p.n_seqs; ++row) {
      const int s = st[row];
      for (int b = 0; b < (len[s] + 1 + 15) / 16; ++b) p.block_tables[size_t(row) * p.max_blocks + b] = dec_blocks[s][b];
      for (size_t b = 0; b < enc_blocks[s].size(); ++b) p.cross_tables[size_t(row) * p.cross_max_blocks + b] = enc_blocks[s][b];
      p.cross_len.push_back(c.enc_len[s]);
      const int pos = len[s]++;
      const double* x = &x_dec[size_t(tok) * W];
      DK[s].emplace_back(x + qw, x + qw + kw);
      DV[s].emplace_back(x + qw + kw, x + W);
      p.logit_rows.push_back(static_cast<int32_t>(p.tokens.size()));
      p.tokens.push_back(tok);
      p.positions.push_back(pos);
      p.seq_row.push_back(row);
      auto o = ref.attend(x, DK[s], DV[s], pos + 1, pos, &ref.dec_bias);
      const auto oc = ref.attend(&x_q[size_t(tok) * qw], CK[s], CV[s], c.enc_len[s], pos, nullptr);
      for (size_t j = 0; j < o.size(); ++j) o[j] += oc[j];
      want.insert(want.end(), o.begin(), o.end());
      ++tok;
    }
    h.check_read(p, fwd, want, qw, 4 * kTolF32, "decoder step " + std::to_string(si));
  }
}

inline std::vector<OpCase> encdec_cases() {
  std::vector<EncDecConfig> cs;
  {
    EncDecConfig c;
    c.name = "encdec_gqa2";
    c.enc_len = {37, 5, 300};
    c.dec_steps = {{0, 1, 2}, {2, 0}, {1}, {0, 1, 2}};
    for (int i = 0; i < 14; ++i) c.dec_steps.push_back({1, 2});  // decoder passes a block
    cs.push_back(c);
  }
  {
    EncDecConfig c;
    c.name = "encdec_mha_hd32_rel2";
    c.nh = c.nkv = 6, c.hd = 32, c.rel_max = 2, c.seed = 11;
    c.enc_len = {1, 16, 17};
    c.dec_steps = {{2, 1, 0}, {0}, {1, 2}};
    cs.push_back(c);
  }
  std::vector<OpCase> v;
  for (const EncDecConfig& c : cs) v.push_back({fmt_name("attention_" + c.name), [c](Harness& h) { run_encdec_case(h, c); }});
  return v;
}

}  // namespace ballast::ops_test
