// Op conformance cases, all ops but attention (ops_conformance_attention_cases.h): each
// builds synthetic weights and inputs from a fixed seed, runs one op (or a short chain)
// through Backend::run and compares with a float64 reference. Shared by the CPU and the
// GPU suites; see ops_conformance.h.
#pragma once
#include <array>
#include <climits>

#include "ops_conformance.h"

namespace ballast::ops_test {

inline std::string S(int64_t v) { return std::to_string(v); }

// A plan of several sequences (n tokens from position p0 each), tokens 0.. in batch order,
// each sequence on its own blocks.
inline StepPlan multi_plan(const std::vector<std::pair<int32_t, int32_t>>& seqs) {
  StepPlan p;
  p.n_seqs = static_cast<int32_t>(seqs.size());
  for (auto [n, p0] : seqs) p.max_blocks = std::max<int32_t>(p.max_blocks, (p0 + n + 15) / 16);
  p.block_tables.assign(static_cast<size_t>(p.n_seqs) * p.max_blocks, -1);
  int32_t next = 0;
  for (int32_t s = 0; s < p.n_seqs; ++s) {
    auto [n, p0] = seqs[s];
    for (int32_t b = 0; b < (p0 + n + 15) / 16; ++b) p.block_tables[s * p.max_blocks + b] = next++;
    for (int32_t i = 0; i < n; ++i) {
      p.logit_rows.push_back(static_cast<int32_t>(p.tokens.size()));
      p.tokens.push_back(static_cast<int32_t>(p.tokens.size()));
      p.positions.push_back(p0 + i);
      p.seq_row.push_back(s);
    }
  }
  return p;
}

// ---- embed, embed_positions ----
inline void embed_cases(std::vector<OpCase>& v) {
  int k = 0;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0})
    for (int64_t c : {32, 96, 256}) {
      const int32_t n = std::array<int32_t, 3>{1, 5, 17}[k % 3];
      const float scale = k % 3 == 0 ? 1.f : k % 3 == 1 ? 0.125f : std::sqrt(static_cast<float>(c));
      const uint64_t seed = 100 + k++;
      v.push_back({fmt_name("embed_" + dt_name(t) + "_c" + S(c) + "_n" + S(n)), [=](Harness& h) {
                     const int64_t V = 50;
                     HostMatrix tab = random_matrix(t, V, c, seed);
                     const WeightId id = h.matrix(tab, "table");
                     Rng r(seed);
                     std::vector<int32_t> tok(n);
                     for (int32_t i = 0; i < n; ++i) tok[i] = i == 0 ? V - 1 : i == 1 ? 0 : static_cast<int32_t>(r.uniform(0, V - 1));
                     std::vector<double> want(n * c);
                     for (int32_t i = 0; i < n; ++i)
                       for (int64_t j = 0; j < c; ++j) want[i * c + j] = tab.values[tok[i] * c + j] * static_cast<double>(scale);
                     h.check_read(simple_plan(tok, 3), [=](Ops& o) { return o.embed(id, scale); }, want, c, kTolF32);
                   }});
    }
  // A table stacked from two parts of different dtypes: rows on both sides of the seam.
  v.push_back({"embed_two_parts_bf16_f32", [](Harness& h) {
                 const int64_t c = 64;
                 HostMatrix a = random_matrix(DType::kBF16, 30, c, 11), b = random_matrix(DType::kF32, 20, c, 12);
                 const WeightId id = h.matrix({&a, &b}, "table");
                 const std::vector<int32_t> tok = {0, 29, 30, 49, 12, 35, 29};
                 std::vector<double> want;
                 for (int32_t t : tok)
                   for (int64_t j = 0; j < c; ++j) want.push_back(t < 30 ? a.values[t * c + j] : b.values[(t - 30) * c + j]);
                 h.check_read(simple_plan(tok), [=](Ops& o) { return o.embed(id, 1.f); }, want, c, kTolF32);
               }});
  // Out-of-range ids: kInvalidTokenId naming the id and its batch row, nothing read, and
  // the backend still runs the next step.
  v.push_back({"embed_out_of_range_ids", [](Harness& h) {
                 const int64_t V = 50, c = 64;
                 HostMatrix tab = random_matrix(DType::kF32, V, c, 13);
                 const WeightId id = h.matrix(tab, "table");
                 auto fwd = h.reader([=](Ops& o) { return o.embed(id, 1.f); }, c);
                 for (int32_t bad : {50, -1, 1000, INT32_MAX, INT32_MIN}) {
                   std::vector<float> out;
                   Status st = h.run_status(simple_plan({3, 7, bad, 1}, 5), fwd, out);
                   const std::string& m = st.message();
                   h.expect(st.code() == ErrorCode::kInvalidTokenId,
                            "id " + S(bad) + ": want invalid_token_id, got " + error_code_name(st.code()) + " (" + m + ")");
                   h.expect(m.find(S(bad)) != std::string::npos, "the message names the id " + S(bad) + ": " + m);
                   h.expect(m.find("position 2") != std::string::npos, "the message names batch row 2: " + m);
                 }
                 std::vector<double> want;
                 for (int32_t t : {3, 7, 49, 1})
                   for (int64_t j = 0; j < c; ++j) want.push_back(tab.values[t * c + j]);
                 h.check_read(simple_plan({3, 7, 49, 1}, 5), fwd, want, c, kTolF32, "valid step after the rejected ones");
               }});

  k = 0;
  for (DType t : {DType::kF32, DType::kBF16})
    for (int64_t c : {16, 64, 100}) {
      const uint64_t seed = 200 + k++;
      const bool with_tokens = k % 2 == 0;  // GPT-2: embed(tokens) + embed_positions
      v.push_back({fmt_name("embed_positions_" + dt_name(t) + "_c" + S(c) + (with_tokens ? "_plus_tokens" : "")),
                   [=](Harness& h) {
                     const int64_t P = 40;
                     HostMatrix pos = random_matrix(t, P, c, seed), tok = random_matrix(DType::kF32, 64, c, seed + 1);
                     const WeightId pid = h.matrix(pos, "positions"), tid = h.matrix(tok, "tokens");
                     const StepPlan plan = multi_plan({{7, 3}, {5, 0}, {1, 39}});
                     std::vector<double> want;
                     for (size_t i = 0; i < plan.size(); ++i)
                       for (int64_t j = 0; j < c; ++j)
                         want.push_back(pos.values[plan.positions[i] * c + j] +
                                        (with_tokens ? tok.values[plan.tokens[i] * c + j] : 0.0));
                     h.check_read(plan, [=](Ops& o) {
                       Tensor p = o.embed_positions(pid);
                       if (!with_tokens) return p;
                       Tensor x = o.embed(tid, 1.f);
                       o.add(x, p);
                       return x;
                     }, want, c, kTolF32);
                     // A position past the table: kContextLengthExceeded.
                     std::vector<float> out;
                     Status st = h.run_status(multi_plan({{3, 38}}), h.reader([=](Ops& o) { return o.embed_positions(pid); }, c), out);
                     h.expect(st.code() == ErrorCode::kContextLengthExceeded && st.message().find("40") != std::string::npos,
                              std::string("position 40 of 40: want context_length_exceeded naming it, got ") +
                                  error_code_name(st.code()) + " (" + st.message() + ")");
                     // A negative position (a broken plan) fails the step instead of reading nothing.
                     StepPlan neg = multi_plan({{2, 0}});
                     neg.positions[0] = -1;
                     st = h.run_status(neg, h.reader([=](Ops& o) { return o.embed_positions(pid); }, c), out);
                     h.expect(!st.ok(), "position -1: want an error, the step succeeded");
                   }});
    }
}

// ---- norm ----
inline void norm_cases(std::vector<OpCase>& v) {
  int k = 0;
  for (int kind = 0; kind < 3; ++kind)  // RMS, LayerNorm + bias, LayerNorm without bias
    for (int64_t c : {1, 7, 64, 96, 577, 2048, 4096}) {
      const int32_t n = c >= 2048 ? 2 : std::array<int32_t, 3>{1, 3, 9}[k % 3];
      const float eps = k % 2 ? 1e-5f : 1e-6f;
      const uint64_t seed = 300 + k++;
      const char* kn = kind == 0 ? "rms" : kind == 1 ? "layer_bias" : "layer";
      v.push_back({fmt_name(std::string("norm_") + kn + "_c" + S(c) + "_n" + S(n)), [=](Harness& h) {
                     Rng r(seed);
                     // LayerNorm inputs sit off zero (the mean must be removed); RMS ones vary in scale.
                     std::vector<double> x = kind == 0 ? r.normals(n * c, seed % 2 ? 30.0 : 1.0) : r.normals(n * c, 0.5, 3.0);
                     if (n == 9) std::fill(x.end() - c, x.end(), 0.0);  // an all-zero row
                     const std::vector<double> w = r.normals(c, 0.5, 1.0), b = r.normals(c, 1.0);
                     const WeightId in = h.input(x, c), wid = h.vec(w), bid = kind == 1 ? h.vec(b) : kNoWeight;
                     const Norm nm{kind == 0 ? NormKind::kRms : NormKind::kLayer, wid, bid, eps};
                     const auto want = ref_norm(x, c, nm.kind, w, kind == 1 ? &b : nullptr, static_cast<double>(eps));
                     h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) { return o.norm(o.embed(in, 1.f), nm); }, want, c,
                                  kTolF32);
                   }});
    }
}

// ---- linear, linear_add, linear_glu ----
struct PartSpec {
  DType t;
  int64_t rows;
};
inline std::string parts_name(const std::vector<PartSpec>& ps) {
  std::string s;
  for (const auto& p : ps) {
    if (!s.empty()) s += '_';
    s += dt_name(p.t);
    s += 'x';
    s += S(p.rows);
  }
  return s;
}
// Row-stacked random parts: the matrices and the stacked values.
struct Stacked {
  std::vector<HostMatrix> parts;
  std::vector<double> values;
  double tol = kTolF32;
  WeightId add(Harness& h, const std::string& what = "w") const {
    std::vector<const HostMatrix*> ps;
    for (const auto& p : parts) ps.push_back(&p);
    return h.matrix(ps, what);
  }
};
inline Stacked stacked(const std::vector<PartSpec>& ps, int64_t K, uint64_t seed) {
  Stacked s;
  for (size_t i = 0; i < ps.size(); ++i) {
    s.parts.push_back(random_matrix(ps[i].t, ps[i].rows, K, seed + 17 * i, 1.0 / std::sqrt(static_cast<double>(K))));
    s.values.insert(s.values.end(), s.parts.back().values.begin(), s.parts.back().values.end());
    s.tol = std::max(s.tol, matmul_tol(ps[i].t));
  }
  return s;
}
inline bool fits(DType t, int64_t K) { return K % dtype_info(t).block_elems == 0; }

inline void linear_cases(std::vector<OpCase>& v) {
  struct Shape {
    int64_t rows, K;
    int32_t n;
  };
  // n crosses the CPU's per-dtype switch from dot kernels to tiled sgemm (2, 3, 24 tokens).
  const Shape shapes[] = {{1, 256, 1},   {33, 256, 2},   {96, 512, 3}, {64, 256, 7}, {48, 1024, 24},
                          {130, 512, 32}, {17, 40, 1},   {7, 100, 5},  {5, 72, 64}};
  int k = 0;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,
                  DType::kQ8_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K})
    for (const Shape& s : shapes) {
      if (!fits(t, s.K)) continue;
      const bool bias = k % 2 == 1;
      const uint64_t seed = 400 + k++;
      v.push_back({fmt_name("linear_" + dt_name(t) + "_" + S(s.rows) + "x" + S(s.K) + "_n" + S(s.n) + (bias ? "_bias" : "")),
                   [=](Harness& h) {
                     const Stacked w = stacked({{t, s.rows}}, s.K, seed);
                     Rng r(seed);
                     const auto x = r.normals(s.n * s.K), b = r.normals(s.rows, 2.0);
                     const WeightId in = h.input(x, s.K), wid = w.add(h), bid = bias ? h.vec(b) : kNoWeight;
                     auto want = ref_matmul(x, s.K, w.values, s.rows);
                     if (bias)
                       for (size_t i = 0; i < want.size(); ++i) want[i] += b[i % s.rows];
                     h.check_read(simple_plan(iota_tokens(s.n)), [=](Ops& o) { return o.linear(o.embed(in, 1.f), wid, bid); },
                                  want, s.rows, w.tol);
                   }});
    }
  // Row-stacked parts (fused q|k|v as a loader leaves it), mixed dtypes, one row and many.
  struct Fused {
    std::vector<PartSpec> parts;
    int64_t K;
    std::vector<int32_t> ns;
    bool bias;
  };
  const Fused fused[] = {{{{DType::kF32, 64}, {DType::kF32, 16}, {DType::kF32, 16}}, 128, {1, 5}, false},
                         {{{DType::kBF16, 128}, {DType::kBF16, 32}, {DType::kBF16, 32}}, 256, {1, 6}, true},
                         {{{DType::kQ4_K, 64}, {DType::kQ4_K, 32}, {DType::kQ6_K, 32}}, 256, {1, 30}, true},
                         {{{DType::kQ8_0, 96}, {DType::kF16, 40}}, 96, {2, 3}, false}};
  for (const Fused& f : fused)
    for (int32_t n : f.ns) {
      const uint64_t seed = 500 + k++;
      v.push_back({fmt_name("linear_parts_" + parts_name(f.parts) + "_n" + S(n) + (f.bias ? "_bias" : "")), [=](Harness& h) {
                     const Stacked w = stacked(f.parts, f.K, seed);
                     const int64_t R = static_cast<int64_t>(w.values.size()) / f.K;
                     Rng r(seed);
                     const auto x = r.normals(n * f.K), b = r.normals(R, 2.0);
                     const WeightId in = h.input(x, f.K), wid = w.add(h), bid = f.bias ? h.vec(b) : kNoWeight;
                     auto want = ref_matmul(x, f.K, w.values, R);
                     if (f.bias)
                       for (size_t i = 0; i < want.size(); ++i) want[i] += b[i % R];
                     h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) { return o.linear(o.embed(in, 1.f), wid, bid); },
                                  want, R, w.tol);
                   }});
    }

  // linear_add: residual += x @ w^T (+ b).
  struct AddShape {
    std::vector<PartSpec> parts;
    int64_t K;
    int32_t n;
    bool bias;
  };
  std::vector<AddShape> adds;
  for (DType t : {DType::kF32, DType::kBF16, DType::kQ8_0, DType::kQ4_K}) {
    adds.push_back({{{t, 64}}, 256, 1, true});
    adds.push_back({{{t, 256}}, 512, 3, false});
    adds.push_back({{{t, 96}}, 256, 25, true});
  }
  adds.push_back({{{DType::kBF16, 32}, {DType::kF32, 32}}, 128, 4, true});
  for (const AddShape& a : adds) {
    const uint64_t seed = 600 + k++;
    v.push_back({fmt_name("linear_add_" + parts_name(a.parts) + "_K" + S(a.K) + "_n" + S(a.n) + (a.bias ? "_bias" : "")),
                 [=](Harness& h) {
                   const Stacked w = stacked(a.parts, a.K, seed);
                   const int64_t R = static_cast<int64_t>(w.values.size()) / a.K;
                   Rng r(seed);
                   const auto x = r.normals(a.n * a.K), res = r.normals(a.n * R, 2.0), b = r.normals(R);
                   const WeightId in = h.input(x, a.K), rin = h.input(res, R), wid = w.add(h), bid = a.bias ? h.vec(b) : kNoWeight;
                   auto want = ref_matmul(x, a.K, w.values, R);
                   for (size_t i = 0; i < want.size(); ++i) want[i] += res[i] + (a.bias ? b[i % R] : 0.0);
                   h.check_read(simple_plan(iota_tokens(a.n)), [=](Ops& o) {
                     Tensor resid = o.embed(rin, 1.f);
                     o.linear_add(o.embed(in, 1.f), wid, resid, bid);
                     return resid;
                   }, want, R, w.tol);
                 }});
  }

  // linear_glu: [gate; up] packed as one matrix or as two parts.
  struct Glu {
    DType t;
    int64_t F, K;
    int32_t n;
    bool two_parts;
  };
  const Glu glus[] = {{DType::kF32, 32, 256, 1, false},
                      {DType::kBF16, 96, 256, 4, true},
                      {DType::kQ8_0, 64, 512, 29, false},
                      {DType::kQ4_K, 32, 256, 3, true}};
  for (Act act : {Act::kSilu, Act::kGeluTanh, Act::kGeluErf, Act::kRelu})
    for (const Glu& g : glus) {
      const uint64_t seed = 700 + k++;
      v.push_back({fmt_name(std::string("linear_glu_") + act_name(act) + "_" + dt_name(g.t) + "_F" + S(g.F) + "_K" + S(g.K) +
                            "_n" + S(g.n) + (g.two_parts ? "_parts" : "")),
                   [=](Harness& h) {
                     const Stacked w = g.two_parts ? stacked({{g.t, g.F}, {g.t, g.F}}, g.K, seed) : stacked({{g.t, 2 * g.F}}, g.K, seed);
                     Rng r(seed);
                     const auto x = r.normals(g.n * g.K, 1.5);
                     const WeightId in = h.input(x, g.K), wid = w.add(h);
                     const auto gu = ref_matmul(x, g.K, w.values, 2 * g.F);
                     std::vector<double> want(g.n * g.F);
                     for (int32_t t = 0; t < g.n; ++t)
                       for (int64_t i = 0; i < g.F; ++i)
                         want[t * g.F + i] = ref_act(gu[t * 2 * g.F + i], act) * gu[t * 2 * g.F + g.F + i];
                     h.check_read(simple_plan(iota_tokens(g.n)), [=](Ops& o) { return o.linear_glu(o.embed(in, 1.f), wid, act); },
                                  want, g.F, w.tol);
                   }});
    }
}

// ---- activation, add, a scoped residual stream ----
inline void elementwise_cases(std::vector<OpCase>& v) {
  int k = 0;
  for (Act act : {Act::kSilu, Act::kGeluTanh, Act::kGeluErf, Act::kRelu})
    for (int64_t c : {1, 7, 64, 1000}) {
      const uint64_t seed = 800 + k++;
      v.push_back({fmt_name(std::string("activation_") + act_name(act) + "_c" + S(c)), [=](Harness& h) {
                     const int32_t n = 3;
                     Rng r(seed);
                     auto x = r.normals(n * c, 3.0);
                     const double special[] = {0.0, -0.0, 1e-30, -1e-30, 20, -20, 100, -100, 7.5, -7.5, 0.5, -0.5};
                     for (size_t i = 0; i < std::size(special) && i < x.size(); ++i) x[i] = special[i];
                     std::vector<double> want(x.size());
                     for (size_t i = 0; i < x.size(); ++i) want[i] = ref_act(x[i], act);
                     const WeightId in = h.input(x, c);
                     h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) { return o.activation(o.embed(in, 1.f), act); }, want,
                                  c, kTolF32);
                   }});
    }
  for (int64_t c : {1, 7, 64, 1000})
    for (int32_t n : {1, 5}) {
      const uint64_t seed = 900 + k++;
      v.push_back({fmt_name("add_c" + S(c) + "_n" + S(n)), [=](Harness& h) {
                     Rng r(seed);
                     const auto a = r.normals(n * c, 2.0), b = r.normals(n * c);
                     const WeightId ia = h.input(a, c), ib = h.input(b, c);
                     std::vector<double> want(a.size());
                     for (size_t i = 0; i < a.size(); ++i) want[i] = a[i] + b[i];
                     h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) {
                       Tensor x = o.embed(ia, 1.f);
                       o.add(x, o.embed(ib, 1.f));
                       return x;
                     }, want, c, kTolF32);
                   }});
    }
  v.push_back({"add_to_itself", [](Harness& h) {
                 const int64_t c = 96;
                 Rng r(901);
                 const auto a = r.normals(4 * c);
                 const WeightId ia = h.input(a, c);
                 std::vector<double> want(a.size());
                 for (size_t i = 0; i < a.size(); ++i) want[i] = 2 * a[i];
                 h.check_read(simple_plan(iota_tokens(4)), [=](Ops& o) {
                   Tensor x = o.embed(ia, 1.f);
                   o.add(x, x);
                   return x;
                 }, want, c, kTolF32);
               }});
  // Ops leave their inputs alone (a lazy backend's pending work included), and a norm of a
  // tensor that is then modified in place still holds the norm of the old values. One
  // forward per case: a backend may replay a captured decode step by its shape.
  const std::vector<std::string> variants = {"norm", "linear", "linear_glu", "activation", "linear_add_into_another",
                                             "linear_of_norm", "norm_then_add_to_input", "norm_then_linear_add_to_input"};
  for (int32_t n : {1, 6})
    for (size_t vi = 0; vi < variants.size(); ++vi) {
      const std::string var = variants[vi];
      v.push_back({fmt_name((vi < 6 ? "input_preserved_by_" : "") + var + "_n" + S(n)), [=](Harness& h) {
                     const int64_t c = 64, F = 32;
                     Rng r(990 + n);
                     const auto x = r.normals(n * c), z = r.normals(n * c), nw = r.normals(c, 0.2, 1.0);
                     const Stacked w = stacked({{DType::kBF16, c}}, c, 991), g = stacked({{DType::kF32, 2 * F}}, c, 992);
                     const WeightId ix = h.input(x, c), iz = h.input(z, c), nid = h.vec(nw), wid = w.add(h), gid = g.add(h);
                     const Norm nm{NormKind::kRms, nid, kNoWeight, 1e-6f};
                     const auto want = vi < 6 ? x : ref_norm(x, c, NormKind::kRms, nw, nullptr, 1e-6);
                     h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) {
                       Tensor t = o.embed(ix, 1.f), y = t;
                       switch (vi) {
                         case 0: o.norm(t, nm); break;
                         case 1: o.linear(t, wid); break;
                         case 2: o.linear_glu(t, gid, Act::kSilu); break;
                         case 3: o.activation(t, Act::kGeluTanh); break;
                         case 4: o.linear_add(t, wid, o.embed(iz, 1.f)); break;
                         case 5: o.linear(o.norm(t, nm), wid); break;
                         case 6: y = o.norm(t, nm), o.add(t, o.embed(iz, 1.f)); break;
                         default: y = o.norm(t, nm), o.linear_add(o.embed(iz, 1.f), wid, t); break;
                       }
                       return y;
                     }, want, c, kTolF32);
                   }});
    }
  // Gemma-style post-norm: residual += norm(linear(x)).
  for (int32_t n : {1, 7})
    v.push_back({fmt_name("post_norm_add_n" + S(n)), [=](Harness& h) {
                   const int64_t c = 96, K = 128;
                   Rng r(995 + n);
                   const auto res = r.normals(n * c, 2.0), x = r.normals(n * K), nw = r.normals(c, 0.2, 1.0);
                   const Stacked w = stacked({{DType::kBF16, c}}, K, 996);
                   const WeightId ir = h.input(res, c), ix = h.input(x, K), nid = h.vec(nw), wid = w.add(h);
                   auto want = ref_norm(ref_matmul(x, K, w.values, c), c, NormKind::kRms, nw, nullptr, 1e-6);
                   for (size_t i = 0; i < want.size(); ++i) want[i] += res[i];
                   h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) {
                     Tensor resid = o.embed(ir, 1.f);
                     o.add(resid, o.norm(o.linear(o.embed(ix, 1.f), wid), Norm{NormKind::kRms, nid, kNoWeight, 1e-6f}));
                     return resid;
                   }, want, c, 4 * kTolF32);
                 }});
  // A residual stream kept outside per-layer Scopes while each layer's temporaries are
  // released and their storage reused: norm -> linear -> activation -> linear_add, twice.
  for (DType t : {DType::kF32, DType::kBF16})
    v.push_back({fmt_name("scoped_two_layer_residual_" + dt_name(t)), [=](Harness& h) {
                   const int64_t c = 64, F = 128;
                   const int32_t n = 5;
                   Rng r(950);
                   const auto x = r.normals(n * c);
                   const WeightId in = h.input(x, c);
                   std::vector<double> res = x;
                   struct Layer {
                     std::vector<double> nw;
                     Stacked up, down;
                     WeightId nid, uid, did;
                   };
                   std::vector<Layer> ls(2);
                   for (int l = 0; l < 2; ++l) {
                     ls[l].nw = r.normals(c, 0.2, 1.0);
                     ls[l].up = stacked({{t, F}}, c, 960 + l);
                     ls[l].down = stacked({{t, c}}, F, 970 + l);
                     ls[l].nid = h.vec(ls[l].nw);
                     ls[l].uid = ls[l].up.add(h, "up");
                     ls[l].did = ls[l].down.add(h, "down");
                     auto hn = ref_norm(res, c, NormKind::kRms, ls[l].nw, nullptr, 1e-6);
                     auto u = ref_matmul(hn, c, ls[l].up.values, F);
                     for (auto& e : u) e = ref_act(e, Act::kSilu);
                     const auto d = ref_matmul(u, F, ls[l].down.values, c);
                     for (size_t i = 0; i < res.size(); ++i) res[i] += d[i];
                   }
                   std::vector<std::array<WeightId, 3>> ids;
                   for (const auto& l : ls) ids.push_back({l.nid, l.uid, l.did});
                   h.check_read(simple_plan(iota_tokens(n)), [=](Ops& o) {
                     Tensor resid = o.embed(in, 1.f);
                     for (const auto& l : ids) {
                       Ops::Scope s(o);
                       Tensor hn = o.norm(resid, Norm{NormKind::kRms, l[0], kNoWeight, 1e-6f});
                       Tensor a = o.activation(o.linear(hn, l[1]), Act::kSilu);
                       o.linear_add(a, l[2], resid);
                       o.check(resid, 0);
                     }
                     return resid;
                   }, res, c, 4 * kTolF32);
                 }});
}

// ---- logits: row selection, final norm, head, softcap ----
inline void logits_cases(std::vector<OpCase>& v) {
  struct Head {
    DType t;
    int64_t V, H;
  };
  const Head heads[] = {{DType::kF32, 1, 64},     {DType::kF32, 1000, 64},  {DType::kF32, 1003, 256},
                        {DType::kBF16, 1, 64},    {DType::kBF16, 1000, 64}, {DType::kBF16, 1003, 256},
                        {DType::kQ8_0, 1000, 64}, {DType::kQ8_0, 517, 256}, {DType::kQ6_K, 1000, 256},
                        {DType::kQ4_K, 300, 256}};
  const std::vector<std::vector<int32_t>> row_sets = {{0, 1, 2, 3, 4, 5, 6, 7, 8}, {8}, {0, 3, 8}, {2, 4}, {}};
  int k = 0;
  for (const Head& hd : heads) {
    const int kind = k % 3;  // RMS, LayerNorm + bias, LayerNorm
    const float cap = std::array<float, 3>{0.f, 30.f, 2.f}[(k / 3) % 3];
    const auto rows = row_sets[k % row_sets.size()];
    const uint64_t seed = 1000 + k++;
    v.push_back({fmt_name("logits_" + dt_name(hd.t) + "_V" + S(hd.V) + "_H" + S(hd.H) + "_norm" + S(kind) + "_cap" +
                          S(static_cast<int64_t>(cap)) + "_m" + S(static_cast<int64_t>(rows.size()))),
                 [=](Harness& h) {
                   const int32_t n = 9;
                   Rng r(seed);
                   const auto x = r.normals(n * hd.H, 2.0, kind == 0 ? 0.0 : 1.0), w = r.normals(hd.H, 0.3, 1.0),
                              b = r.normals(hd.H, 0.5);
                   const Stacked head = stacked({{hd.t, hd.V}}, hd.H, seed);
                   const WeightId in = h.input(x, hd.H), wid = h.vec(w), bid = kind == 1 ? h.vec(b) : kNoWeight,
                                  hid = head.add(h, "head");
                   const Norm nm{kind == 0 ? NormKind::kRms : NormKind::kLayer, wid, bid, 1e-5f};
                   std::vector<double> sel;
                   for (int32_t row : rows) sel.insert(sel.end(), x.begin() + row * hd.H, x.begin() + (row + 1) * hd.H);
                   auto want = ref_matmul(ref_norm(sel, hd.H, nm.kind, w, kind == 1 ? &b : nullptr, 1e-5), hd.H, head.values, hd.V);
                   if (cap > 0)
                     for (auto& e : want) e = cap * std::tanh(e / cap);
                   StepPlan plan = simple_plan(iota_tokens(n), 4);
                   plan.logit_rows = rows;
                   std::vector<float> got;
                   if (!h.run(plan, [=](Ops& o) -> Status {
                         o.logits(o.embed(in, 1.f), nm, hid, cap);
                         return Status();
                       }, got, "step"))
                     return;
                   if (rows.empty()) h.expect(got.empty(), "no logit rows: want no logits, got " + S(got.size()));
                   else h.compare("", got, want, hd.V, head.tol);
                 }});
  }
}

inline std::vector<OpCase> op_cases() {
  std::vector<OpCase> v;
  embed_cases(v);
  norm_cases(v);
  linear_cases(v);
  elementwise_cases(v);
  logits_cases(v);
  return v;
}

}  // namespace ballast::ops_test
