// GPU suite (run by tools/test_gpu.sh on a GPU machine; CI only compiles it):
// kernels against CPU references with a per-dtype tolerance, each model on the CUDA
// backend against the same model on the CPU backend (tiny fixture + random smollm2-135m with identical bf16
// weights; the T5 fixtures through encode and decoder steps), greedy + non-finite flags, out-of-range ids
// rejected with the context alive.
#include "backend/cuda/cublas_api.h"
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gpu_check.h"
#include "backend/cuda/kernels.h"
#include "model/loader.h"
#include "model/random_model.h"
#include "model/binder.h"
#include "engine/block_manager.h"
#include "engine/sampler.h"
#include <map>

using namespace ballast;
#define CHECK GPU_CHECK


static double rel_err(const std::vector<float>& a, const std::vector<float>& ref, size_t off = 0, size_t n = 0) {
  if (n == 0) n = ref.size() - off;
  double num = 0, den = 0;
  for (size_t i = off; i < off + n; ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    if (!std::isfinite(a[i])) return INFINITY;
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

static float bf(float x) { return __bfloat162float(__float2bfloat16(x)); }

static void test_gemm() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  cublasHandle_t h;
  ballast::cuda::blas_create(&h);
  for (int n : {1, 3, 8, 9, 64}) {
    const int N = 200, K = 520;
    std::vector<cuda::bf16> W(N * K), X(n * K);
    std::vector<float> Wf(N * K), Xf(n * K);
    for (int i = 0; i < N * K; ++i) Wf[i] = bf(u(rng)), W[i] = __float2bfloat16(Wf[i]);
    for (int i = 0; i < n * K; ++i) Xf[i] = bf(u(rng)), X[i] = __float2bfloat16(Xf[i]);
    std::vector<float> ref(n * N);
    for (int t = 0; t < n; ++t)
      for (int r = 0; r < N; ++r) {
        double s = 0;
        for (int k = 0; k < K; ++k) s += static_cast<double>(Wf[r * K + k]) * Xf[t * K + k];
        ref[t * N + r] = static_cast<float>(s);
      }
    cuda::bf16 *dW, *dX;
    float* dY;
    cudaMalloc(&dW, W.size() * 2);
    cudaMalloc(&dX, X.size() * 2);
    cudaMalloc(&dY, ref.size() * 4);
    cudaMemset(dY, 0xff, ref.size() * 4);  // poison: NaN
    cudaMemcpy(dW, W.data(), W.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dX, X.data(), X.size() * 2, cudaMemcpyHostToDevice);
    cuda::gemm_bf16_f32out(h, dW, N, K, dX, n, dY, 0);
    std::vector<float> out(ref.size());
    cudaMemcpy(out.data(), dY, out.size() * 4, cudaMemcpyDeviceToHost);
    const double e = rel_err(out, ref);
    CHECK(e < 1e-4, "gemm f32 out n=%d rel err %g", n, e);
    cudaFree(dW);
    cudaFree(dX);
    cudaFree(dY);
  }
  ballast::cuda::blas_destroy(h);
}

static void test_greedy_flags() {
  const int V = 1000, m = 3;
  std::vector<float> lg(m * V);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3, 3);
  for (auto& x : lg) x = u(rng);
  std::vector<uint8_t> valid(V, 1);
  valid[10] = 0;
  lg[0 * V + 10] = 100.0f;          // masked: must not win
  lg[1 * V + 500] = NAN;            // valid NaN: row fails
  lg[2 * V + 10] = INFINITY;        // masked Inf: ignored
  float *d;
  uint8_t* dv;
  int32_t* di;
  float* dl;
  cudaMalloc(&d, lg.size() * 4);
  cudaMalloc(&dv, V);
  cudaMalloc(&di, m * 4);
  cudaMalloc(&dl, m * 4);
  cudaMemcpy(d, lg.data(), lg.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, valid.data(), V, cudaMemcpyHostToDevice);
  void* scratch;
  cudaMalloc(&scratch, cuda::greedy_scratch_bytes(m));
  cuda::greedy_rows(d, m, V, dv, di, dl, scratch, 0);
  int32_t ids[3];
  float lps[3];
  cudaMemcpy(ids, di, 12, cudaMemcpyDeviceToHost);
  cudaMemcpy(lps, dl, 12, cudaMemcpyDeviceToHost);
  for (int r : {0, 2}) {
    int best = -1;
    double mx = -1e30, sum = 0;
    for (int i = 0; i < V; ++i)
      if (valid[i] && lg[r * V + i] > mx) mx = lg[r * V + i], best = i;
    for (int i = 0; i < V; ++i)
      if (valid[i]) sum += std::exp(lg[r * V + i] - mx);
    CHECK(ids[r] == best, "greedy row %d: %d vs %d", r, ids[r], best);
    CHECK(std::fabs(lps[r] + std::log(sum)) < 1e-4, "greedy logprob row %d: %g vs %g", r, lps[r], -std::log(sum));
  }
  CHECK(ids[1] == -1, "non-finite row must give -1, got %d", ids[1]);
  cudaFree(d);
  cudaFree(dv);
  cudaFree(di);
  cudaFree(dl);
  cudaFree(scratch);
}

// A batch in the old test form (tokens of several sequences), turned into a step plan with
// a block manager per model, as the engine does.
struct TestBatch {
  std::vector<int32_t> tokens, positions, seqs;
  std::vector<uint8_t> want;
  void add(int32_t tok, int32_t pos, int32_t seq, bool logits) {
    tokens.push_back(tok);
    positions.push_back(pos);
    seqs.push_back(seq);
    want.push_back(logits ? 1 : 0);
  }
};

struct Runner {
  model::Model& m;
  engine::BlockManager blocks;
  // Encoder-decoders: decoder sequence -> the length of its encoded input (its encoder K/V
  // live in sequence enc_seq(s) of the block manager, as the engine keeps them).
  std::map<int32_t, int32_t> enc_len;
  static int32_t enc_seq(int32_t s) { return 1000000 + s; }
  explicit Runner(model::Model& model) : m(model) {
    auto n = m.backend().init_kv(m.kv_layout(), 1024);
    CHECK(n.ok(), "init_kv: %s", n.ok() ? "" : n.status().message().c_str());
    blocks = engine::BlockManager(n.ok() ? n.value() : 0);
  }
  // Encoder-decoders: one encode step over every input (decoder sequence s encodes
  // inputs[s]), as Engine::encode issues it: whole inputs from position 0, no logits.
  Status encode(const std::vector<std::vector<int32_t>>& inputs) {
    backend::StepPlan plan;
    plan.encode = true;
    std::vector<int32_t> seqs;
    for (size_t s = 0; s < inputs.size(); ++s) {
      const int32_t row = static_cast<int32_t>(seqs.size()), es = enc_seq(static_cast<int32_t>(s));
      seqs.push_back(es);
      Status st = blocks.reserve(es, static_cast<int64_t>(inputs[s].size()));
      if (!st.ok()) return st;
      for (size_t i = 0; i < inputs[s].size(); ++i) {
        plan.tokens.push_back(inputs[s][i]);
        plan.positions.push_back(static_cast<int32_t>(i));
        plan.seq_row.push_back(row);
      }
      enc_len[static_cast<int32_t>(s)] = static_cast<int32_t>(inputs[s].size());
    }
    blocks.fill_tables(seqs, plan);
    backend::StepResult out;
    return m.step(plan, backend::LogitsRequest{}, {}, out);
  }
  // Raw logits (return_logits) and/or greedy rows (greedy=true: temperature 0 through the chain;
  // logits_too: the raw logits as well).
  Status run(const TestBatch& b, bool greedy, const std::vector<uint8_t>* valid, backend::StepResult& out,
             bool logits_too = false) {
    backend::StepPlan plan;
    std::vector<int32_t> seqs;
    std::map<int32_t, int32_t> row_of;
    for (size_t i = 0; i < b.tokens.size(); ++i) {
      auto [it, fresh] = row_of.emplace(b.seqs[i], static_cast<int32_t>(seqs.size()));
      if (fresh) seqs.push_back(b.seqs[i]);
      Status st = blocks.reserve(b.seqs[i], b.positions[i] + 1);
      if (!st.ok()) return st;
      plan.tokens.push_back(b.tokens[i]);
      plan.positions.push_back(b.positions[i]);
      plan.seq_row.push_back(it->second);
      if (b.want[i]) plan.logit_rows.push_back(static_cast<int32_t>(i));
    }
    blocks.fill_tables(seqs, plan);
    if (!enc_len.empty()) {  // decoder step: cross tables over each sequence's encoder blocks
      std::vector<int32_t> es;
      for (int32_t s : seqs) {
        auto it = enc_len.find(s);
        if (it == enc_len.end()) return error(ErrorCode::kInternal, "test: decoder sequence without an encoded input");
        es.push_back(enc_seq(s));
        plan.cross_len.push_back(it->second);
      }
      backend::StepPlan cross;
      blocks.fill_tables(es, cross);
      plan.cross_tables = std::move(cross.block_tables);
      plan.cross_max_blocks = cross.max_blocks;
    }
    backend::LogitsRequest req;
    req.valid = valid;
    req.return_logits = !greedy || logits_too;
    static const engine::SamplingParams kGreedy = [] {
      engine::SamplingParams p;
      p.temperature = 0;
      return p;
    }();
    if (greedy)
      for (size_t r = 0; r < plan.logit_rows.size(); ++r) {
        backend::SampleRow row;
        row.params = &kGreedy;
        req.rows.push_back(row);
      }
    return m.step(plan, req, {}, out);
  }
};

// Runs the same batches on the CPU model and the CUDA model; compares every logits row.
// tol: worst row; tol_median: median row (bf16 activations compound in high-gain models).
// enc: encoder-decoders: the inputs encoded first (decoder sequence s reads enc[s]).
static void compare_models(model::Model& cpu, model::Model& gpu, const std::vector<TestBatch>& steps, double tol,
                           const char* what, double tol_median = 0,
                           const std::vector<std::vector<int32_t>>* enc = nullptr) {
  Runner rc(cpu), rg(gpu);
  if (enc) {
    Status a = rc.encode(*enc), c = rg.encode(*enc);
    CHECK(a.ok() && c.ok(), "%s encode step: cpu %s / gpu %s", what, a.message().c_str(), c.message().c_str());
    if (!a.ok() || !c.ok()) return;
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    backend::StepResult oc, og;
    Status a = rc.run(steps[s], false, nullptr, oc), c = rg.run(steps[s], false, nullptr, og);
    CHECK(a.ok() && c.ok(), "%s step %zu: cpu %s / gpu %s", what, s, a.message().c_str(), c.message().c_str());
    if (!a.ok() || !c.ok()) return;
    const auto& lc = oc.logits;
    const auto& lg = og.logits;
    const size_t V = cpu.head_rows();
    CHECK(lg.size() == lc.size(), "%s step %zu: %zu vs %zu logits", what, s, lg.size(), lc.size());
    if (lg.size() != lc.size()) return;
    std::vector<double> errs;
    size_t worst_row = 0;
    for (size_t r = 0; r < lc.size() / V; ++r) {
      errs.push_back(rel_err(lg, lc, r * V, V));
      if (errs.back() > errs[worst_row]) worst_row = r;
    }
    std::sort(errs.begin(), errs.end());
    const double worst = errs.back(), median = errs[errs.size() / 2];
    const auto& b = steps[s];  // every row wants logits in these batches: logits row r = token r
    const bool known = worst_row < b.seqs.size();
    CHECK(worst < tol, "%s step %zu: worst row rel err %g (tol %g) at row %zu (sequence %d, position %d)", what, s, worst,
          tol, worst_row, known ? b.seqs[worst_row] : -1, known ? b.positions[worst_row] : -1);
    // A median over fewer than 4 rows is a worst row: only the worst-row bound applies there.
    if (tol_median > 0 && errs.size() >= 4)
      CHECK(median < tol_median, "%s step %zu: median row rel err %g (tol %g)", what, s, median, tol_median);
    std::printf("  %s step %zu: %zu rows, worst rel err %.3g, median %.3g\n", what, s, lc.size() / V, worst, median);
  }
}

// One checkpoint bound twice: on the CPU backend and on the CUDA backend.
struct Pair {
  model::LoadedModel cpu, gpu;
  bool ok = false;
};
static Pair load_pair(const std::string& path) {
  Pair p;
  auto a = path.rfind("random:", 0) == 0 ? model::load_random(model::random_preset(path).value()) : model::load_model(path);
  auto b = path.rfind("random:", 0) == 0 ? model::load_random(model::random_preset(path).value()) : model::load_model(path);
  CHECK(a.ok() && b.ok(), "load %s: %s", path.c_str(), a.ok() ? "" : a.status().message().c_str());
  if (!a.ok() || !b.ok()) return p;
  p.cpu = std::move(a.value());
  p.gpu = std::move(b.value());
  auto cb = backend::create_cuda_backend({});
  CHECK(cb.ok(), "create cuda backend: %s", cb.ok() ? "" : cb.status().message().c_str());
  if (!cb.ok()) return p;
  std::shared_ptr<backend::Backend> gb(std::move(cb.value()));
  std::shared_ptr<backend::Backend> cpub(backend::create_cpu_backend({}, std::make_shared<ThreadPool>(8)));
  Status s1, s2;
  if (path.rfind("random:", 0) == 0) {
    const int64_t rows = model::random_preset(path).value().rows;
    model::Binder b1(*cpub, 99, rows), b2(*gb, 99, rows);
    s1 = p.cpu.model->bind(b1);
    s2 = p.gpu.model->bind(b2);
    p.cpu.model->set_backend(cpub);
    p.gpu.model->set_backend(gb);
  } else {
    s1 = model::bind_model(p.cpu, cpub);
    s2 = model::bind_model(p.gpu, gb);
  }
  CHECK(s1.ok() && s2.ok(), "bind %s: cpu %s / gpu %s", path.c_str(), s1.message().c_str(), s2.message().c_str());
  p.ok = s1.ok() && s2.ok();
  return p;
}

// Fixture checkpoints (tiny, high-gain random models) on the CPU and the GPU. bf16
// tolerance: HF transformers itself in bf16 differs from its fp32 logits by up to 6.3% per
// row (median 1.5%) on the llama fixture; the GPU keeps the residual in fp32 but rounds
// activations to bf16, so it gets the same class of error.
static void test_fixture(const char* name) {
  auto p = load_pair(std::string(BALLAST_SOURCE_DIR) + "/tests/fixtures/" + name);
  if (!p.ok) return;
  auto& cpu = *p.cpu.model;
  std::mt19937 rng(1);
  const int vocab = static_cast<int>(std::min<int64_t>(1000, cpu.embedding_rows()));
  TestBatch a;  // 37-token prompt (past the gemma3 fixture's window of 8) + a 5-token one
  for (int i = 0; i < 37; ++i) a.add(rng() % vocab, i, 0, true);
  for (int i = 0; i < 5; ++i) a.add(rng() % vocab, i, 1, true);
  TestBatch d;  // decode both (the fused small-batch path)
  d.add(5, 37, 0, true);
  d.add(6, 5, 1, true);
  TestBatch c;  // a 20-token chunk continuing sequence 0 next to a decode of sequence 1
  for (int i = 38; i < 58; ++i) c.add(rng() % vocab, i, 0, true);
  c.add(7, 6, 1, true);
  TestBatch e;  // sequence 0 past position 64 (phi3's original context: long LongRoPE factors)
  for (int i = 58; i < 80; ++i) e.add(rng() % vocab, i, 0, true);  // beside a short-factor decode
  e.add(8, 7, 1, true);
  // gemma3 (post-norm gain 8, the highest-gain fixture): one token of step e (sequence 0,
  // position 77) differs by 0.29 on every CUDA path alike (row and mma attention, GEMV and
  // GEMM routes give the identical value) while the CPU agrees with itself across kernels
  // and prefill chunkings: bf16 sensitivity of that token, so its worst-row bound is 0.35.
  const double worst = std::string(name) == "gemma3" ? 0.35 : 0.15;
  compare_models(cpu, *p.gpu.model, {a, d, c, e}, worst, (std::string("fixture ") + name).c_str(), 0.03);
}

// Encoder-decoder fixtures (T5) on the CPU and the GPU: an encode step over two inputs
// (37 tokens: whole-span attention with the relative bias past its max distance; 5
// tokens), then decoder steps reading the encoder K/V through cross tables: a short
// decoder prompt beside a start token, two decode steps of one shape (CUDA graph capture,
// then replay with new tables), a 20-token chunk beside a decode. Then the fixture's
// first reference case, fed the reference ids (teacher forcing): every step's logits vs
// the CPU, and the GPU's greedy id vs the CPU's and the reference's where their top-2
// margin is clear of bf16 noise.
static void test_fixture_encdec(const char* name) {
  const std::string dir = std::string(BALLAST_SOURCE_DIR) + "/tests/fixtures/" + name;
  auto p = load_pair(dir);
  if (!p.ok) return;
  auto& cpu = *p.cpu.model;
  auto& gpu = *p.gpu.model;
  std::mt19937 rng(1);
  const int vocab = static_cast<int>(std::min<int64_t>(1000, cpu.embedding_rows()));
  std::vector<std::vector<int32_t>> enc(2);
  for (int i = 0; i < 37; ++i) enc[0].push_back(static_cast<int32_t>(rng() % vocab));
  for (int i = 0; i < 5; ++i) enc[1].push_back(static_cast<int32_t>(rng() % vocab));
  const int32_t start = static_cast<int32_t>(cpu.decoder_start());
  TestBatch a;  // a 3-token decoder prompt of sequence 0 beside sequence 1's start token
  a.add(start, 0, 0, true);
  a.add(static_cast<int32_t>(rng() % vocab), 1, 0, true);
  a.add(static_cast<int32_t>(rng() % vocab), 2, 0, true);
  a.add(start, 0, 1, true);
  TestBatch d;  // decode both (captured as a graph)
  d.add(5, 3, 0, true);
  d.add(6, 1, 1, true);
  TestBatch d2;  // the same shape (replayed)
  d2.add(7, 4, 0, true);
  d2.add(8, 2, 1, true);
  TestBatch c;  // a 20-token chunk of sequence 0 (past the bias's max distance) beside a decode
  for (int i = 5; i < 25; ++i) c.add(static_cast<int32_t>(rng() % vocab), i, 0, true);
  c.add(9, 3, 1, true);
  compare_models(cpu, gpu, {a, d, d2, c}, 0.15, (std::string("fixture ") + name).c_str(), 0.03, &enc);

  std::ifstream f(dir + "/expected.json");
  const auto ref = nlohmann::json::parse(f)["cases"][0];
  const auto prompt = ref["prompt_ids"].get<std::vector<int32_t>>();
  const auto ids = ref["ids"].get<std::vector<int32_t>>();
  Runner rc(cpu), rg(gpu);
  Status sa = rc.encode({prompt}), sb = rg.encode({prompt});
  CHECK(sa.ok() && sb.ok(), "%s reference case: encode: cpu %s / gpu %s", name, sa.message().c_str(),
        sb.message().c_str());
  if (!sa.ok() || !sb.ok()) return;
  const size_t V = static_cast<size_t>(cpu.head_rows());
  std::vector<uint8_t> valid(V, 1);
  double worst = 0;
  for (size_t k = 0; k < ids.size(); ++k) {
    TestBatch b;
    b.add(k == 0 ? start : ids[k - 1], static_cast<int32_t>(k), 0, true);
    backend::StepResult oc, og;
    sa = rc.run(b, true, &valid, oc, true);
    sb = rg.run(b, true, &valid, og, true);
    const bool ok = sa.ok() && sb.ok() && oc.rows.size() == 1 && og.rows.size() == 1 && oc.rows[0].status.ok() &&
                    og.rows[0].status.ok() && og.logits.size() == V && oc.logits.size() == V;
    CHECK(ok, "%s reference case step %zu: cpu %s / gpu %s", name, k, sa.message().c_str(), sb.message().c_str());
    if (!ok) return;
    const double e = rel_err(og.logits, oc.logits);
    worst = std::max(worst, e);
    CHECK(e < 0.15, "%s reference case step %zu: logits rel err %g vs the CPU", name, k, e);
    // The CPU's top-2 margin (logits; the greedy id's logprob gap is the same).
    std::vector<float> sorted(oc.logits);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    const double margin = sorted[0] - sorted[1];
    const int32_t gid = og.rows[0].sample.id, cid = oc.rows[0].sample.id;
    if (margin > 0.25) CHECK(gid == cid, "%s reference case step %zu: gpu greedy %d, cpu %d (margin %.3f)", name, k, gid, cid, margin);
    if (ref["steps"][k]["margin"].get<double>() > 0.25)
      CHECK(gid == ids[k], "%s reference case step %zu: gpu greedy %d, reference %d", name, k, gid, ids[k]);
    const double lp = og.rows[0].sample.logprob, lpc = oc.rows[0].sample.logprob;
    if (gid == cid) CHECK(std::fabs(lp - lpc) < 0.25, "%s reference case step %zu: greedy logprob gpu %g cpu %g", name, k, lp, lpc);
  }
  std::printf("  %s reference case: %zu greedy steps, worst logits rel err %.3g\n", name, ids.size(), worst);
}

// Vocabulary safety on the GPU, at the model level (the audit's mask is what the runtime
// passes): padding rows (the raw argmax in this fixture) are never selected; a NaN weight
// gives a non-finite error for the affected rows, and the next step still runs.
static void test_vocab_safety() {
  {
    auto p = load_pair(std::string(BALLAST_SOURCE_DIR) + "/tests/fixtures/vocab_gemma3_padding_rows");
    if (p.ok) {
      auto& g = *p.gpu.model;
      const int64_t rows = g.head_rows(), tok = 262145;  // tokenizer ids 0..262144
      CHECK(rows == 262208, "padding fixture rows %lld", (long long)rows);
      std::vector<uint8_t> valid(rows, 1);
      for (int64_t i = tok; i < rows; ++i) valid[i] = 0;
      std::ifstream f(std::string(BALLAST_SOURCE_DIR) + "/tests/fixtures/vocab_gemma3_padding_rows/expected.json");
      const auto ids0 = nlohmann::json::parse(f)["cases"][0]["prompt_ids"].get<std::vector<int32_t>>();
      const int np = static_cast<int>(ids0.size());
      TestBatch b;
      for (int i = 0; i < np; ++i) b.add(ids0[i], i, 0, i + 1 == np);
      {
        Runner r(g);
        backend::StepResult out;
        Status st = r.run(b, false, nullptr, out);
        CHECK(st.ok(), "padding fixture forward: %s", st.message().c_str());
        if (st.ok()) {
          int raw = 0;
          for (int64_t i = 1; i < rows; ++i)
            if (out.logits[i] > out.logits[raw]) raw = static_cast<int>(i);
          CHECK(raw >= tok, "the fixture's raw argmax should be a padding row, got %d", raw);
        }
      }
      Runner r(g);
      int32_t last = -1;
      for (int step = 0; step < 8; ++step) {
        TestBatch s1;
        if (step == 0) s1 = b;
        else s1.add(last, np - 1 + step, 0, true);
        backend::StepResult out;
        Status st = r.run(s1, true, &valid, out);
        const bool ok = st.ok() && out.rows.size() == 1 && out.rows[0].status.ok();
        last = ok ? out.rows[0].sample.id : -1;
        CHECK(ok && last >= 0 && last < tok, "step %d: greedy id %d must be < %lld (%s)", step, last, (long long)tok,
              st.message().c_str());
        if (!ok) break;
      }
    }
  }
  {
    auto p = load_pair(std::string(BALLAST_SOURCE_DIR) + "/tests/fixtures/vocab_nan_weight");
    if (p.ok) {
      auto& g = *p.gpu.model;
      std::vector<uint8_t> valid(g.head_rows(), 1);
      Runner r(g);
      TestBatch b;
      for (int i = 0; i < 4; ++i) b.add(1 + i, i, 0, i == 3);
      backend::StepResult out;
      Status st = r.run(b, true, &valid, out);
      CHECK(st.ok() && out.rows.size() == 1 && out.rows[0].status.code() == ErrorCode::kNumericalError,
            "NaN weight: row must fail as non-finite (%s / %s)", st.message().c_str(),
            out.rows.empty() ? "no row" : out.rows[0].status.message().c_str());
      r.blocks.release(0);
      st = r.run(b, true, &valid, out);
      CHECK(st.ok(), "context alive after a non-finite step: %s", st.message().c_str());
    }
  }
}

static void test_random_smollm() {
  auto p = load_pair("random:smollm2-135m");
  if (!p.ok) return;
  auto& gm = *p.gpu.model;
  std::mt19937 rng(2);
  // step 1: long prompt (4 prefill tiles) + short prompt (row kernel)
  TestBatch a;
  for (int i = 0; i < 200; ++i) a.add(rng() % 49152, i, 0, true);
  for (int i = 0; i < 7; ++i) a.add(rng() % 49152, i, 1, true);
  // step 2: chunk continuation (tiles starting at 200) mixed with a decode row
  TestBatch b;
  for (int i = 200; i < 270; ++i) b.add(rng() % 49152, i, 0, true);
  b.add(rng() % 49152, 7, 1, true);
  // step 3: decode both
  TestBatch c;
  c.add(11, 270, 0, true);
  c.add(12, 8, 1, true);
  compare_models(*p.cpu.model, gm, {a, b, c}, 2e-2, "random smollm2-135m");

  // Out-of-range id: rejected before any kernel; the context keeps working.
  Runner r(gm);
  TestBatch bad;
  bad.add(49152, 0, 5, true);
  backend::StepResult out;
  Status st = r.run(bad, false, nullptr, out);
  CHECK(!st.ok() && st.code() == ErrorCode::kInvalidTokenId, "oob id must fail with invalid_token_id: %s", st.message().c_str());
  TestBatch ok;
  ok.add(3, 0, 5, true);
  std::vector<uint8_t> valid(gm.head_rows(), 1);
  st = r.run(ok, true, &valid, out);
  CHECK(st.ok() && out.rows.size() == 1 && out.rows[0].status.ok(), "context alive after oob id: %s", st.message().c_str());
  const int32_t greedy = st.ok() && !out.rows.empty() ? out.rows[0].sample.id : -2;
  r.blocks.release(5);
  // Greedy agrees with the logits' argmax.
  st = r.run(ok, false, nullptr, out);
  int best = 0;
  for (int i = 1; i < gm.head_rows() && st.ok(); ++i)
    if (out.logits[i] > out.logits[best]) best = i;
  CHECK(st.ok() && greedy == best, "greedy id %d vs argmax %d", greedy, best);
  // The same bad id once a decode step of its shape has been replayed (its dry pass cached):
  // still rejected before anything launches.
  r.blocks.release(5);
  st = r.run(ok, true, &valid, out);
  r.blocks.release(5);
  st = r.run(bad, true, &valid, out);
  CHECK(!st.ok() && st.code() == ErrorCode::kInvalidTokenId, "oob id after a replayed step: %s", st.message().c_str());
  r.blocks.release(5);
  st = r.run(ok, true, &valid, out);
  CHECK(st.ok() && !out.rows.empty() && out.rows[0].sample.id == best, "replay after a rejected id: %s",
        st.message().c_str());
}

void run_kernel_gpu_tests();
void run_qkv_post_gpu_tests();
void run_sampler_gpu_tests();
void run_ops_gpu_tests(bool quick);
void run_kernel_bench();

int main(int argc, char** argv) {
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
    std::printf("FAIL: no usable CUDA device (the GPU suite needs one)\n");
    return 1;
  }
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;  // compute-sanitizer
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) {
    run_kernel_bench();
    return 0;
  }
  std::printf("[gemm]\n");
  test_gemm();
  std::printf("[greedy + non-finite flags]\n");
  test_greedy_flags();
  run_kernel_gpu_tests();
  run_qkv_post_gpu_tests();
  run_sampler_gpu_tests();
  std::printf("[op conformance: CUDA vs float64 and CPU]\n");
  run_ops_gpu_tests(quick);
  std::printf("[vocabulary safety on the GPU]\n");
  test_vocab_safety();
  for (const char* f : {"llama", "mistral", "qwen2", "qwen3", "gemma3", "gpt2", "phi3"}) {
    std::printf("[fixture %s vs CPU]\n", f);
    test_fixture(f);
  }
  for (const char* f : {"t5", "t5_relu_tied"}) {
    std::printf("[encoder-decoder fixture %s vs CPU]\n", f);
    test_fixture_encdec(f);
  }
  if (!quick) {
    std::printf("[random smollm2-135m vs CPU]\n");
    test_random_smollm();
  }
  const auto& n = gpu_test::counts();
  std::printf("%d passed, %d failed\n", n.pass, n.fail);
  return n.fail == 0 ? 0 : 1;
}
