// `ballast bench`: llama-bench style prompt-processing and generation throughput plus
// peak RSS, with random valid token ids; --concurrency C runs C requests through the
// engine (continuous batching) and reports generated tokens per second.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "cli/options.h"

namespace ballast::cli {

namespace {

struct BenchArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  int64_t p = 512, n = 128;
  std::vector<int64_t> ps, ns, depths;  // -p/-n/-d lists (llama-bench style); p/n: their first values
  int reps = 2;
  bool json = false;
  int64_t concurrency = 0;       // > 0: engine throughput with this many requests
  int64_t token_budget = 8192;   // engine tokens per step (prefill chunking)
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// C requests of p prompt tokens and n generated tokens (greedy, ignore_eos) through the
// engine; best of reps after one warm-up round.
template <class RandId>
int run_engine_bench(BenchArgs& a, runtime::Runtime& rt, RandId& rand_id) {
  auto& m = rt.model();
  double best_gen = 0, best_total = 0, best_s = 0;
  for (int r = 0; r < a.reps + 1; ++r) {
    engine::EngineOptions eo;
    eo.ctx_size = a.p + a.n + 1;
    eo.limits.max_batch = a.concurrency;
    eo.limits.max_queue = a.concurrency;
    eo.limits.token_budget = a.token_budget;
    engine::Engine eng(m, rt.audit.valid, eo);
    int64_t generated = 0, done = 0;
    Status failure;
    for (int64_t i = 0; i < a.concurrency; ++i) {
      engine::GenerationRequest req;
      for (int64_t k = 0; k < a.p; ++k) req.prompt.push_back(rand_id());
      req.sampling.temperature = 0.0;
      req.max_tokens = a.n;
      req.ignore_eos = true;
      auto sub = eng.submit(std::move(req), [&](const engine::TokenEvent& ev) {
        if (ev.id >= 0) generated++;
        if (ev.finish != engine::FinishReason::kNone) {
          done++;
          if (!ev.status.ok()) failure = ev.status;
        }
      });
      if (!sub.ok()) return fail(sub.status());
    }
    const double t0 = now_s();
    while (eng.step()) {
    }
    const double dt = now_s() - t0;
    if (!failure.ok()) return fail(failure);
    if (r > 0 && generated / dt > best_gen) {
      best_gen = generated / dt;
      best_total = (generated + a.concurrency * a.p) / dt;
      best_s = dt;
    }
  }
  const auto& c = m.config();
  if (a.json) {
    nlohmann::json j{{"model", a.rt.model}, {"arch", c.source_arch}, {"device", a.rt.device}, {"concurrency", a.concurrency},
                     {"pp", a.p}, {"tg", a.n}, {"gen_tok_s", best_gen}, {"total_tok_s", best_total}, {"seconds", best_s}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("| model | device | requests | prompt | gen | generated t/s | total t/s | s |\n|---|---|---|---|---|---|---|---|\n");
  std::printf("| %s | %s | %lld | %lld | %lld | %.1f | %.1f | %.3f |\n", a.rt.model.c_str(), a.rt.device.c_str(),
              (long long)a.concurrency, (long long)a.p, (long long)a.n, best_gen, best_total, best_s);
  return 0;
}

int run_bench(BenchArgs& a) {
  if (!apply_log_format(a.log_format)) return 2;
  if (a.ps.empty()) a.ps = {512};
  if (a.ns.empty()) a.ns = {128};
  if (a.depths.empty()) a.depths = {0};
  a.p = a.ps[0];
  a.n = a.ns[0];
  for (auto* v : {&a.ps, &a.ns, &a.depths})
    for (int64_t x : *v)
      if (x < 0) return fail(error(ErrorCode::kInvalidArgument, "-p, -n, -d must be >= 0"));
  if (a.reps < 1) return fail(error(ErrorCode::kInvalidArgument, "-r must be >= 1"));
  a.rt.quiet = true;
  auto rtr = runtime::load_runtime(a.rt);
  if (!rtr.ok()) return fail(rtr.status());
  auto& rt = *rtr.value();
  auto& m = rt.model();
  std::vector<int32_t> valid_ids;
  for (int64_t i = 0; i < static_cast<int64_t>(rt.audit.valid->size()); ++i)
    if ((*rt.audit.valid)[i]) valid_ids.push_back(static_cast<int32_t>(i));
  std::mt19937 rng(42);
  auto rand_id = [&] { return valid_ids[rng() % valid_ids.size()]; };
  if (a.concurrency > 0) return run_engine_bench(a, rt, rand_id);
  // One sequence driven step by step through the model, as the engine would (greedy rows:
  // ids are chosen where the logits are).
  int64_t longest = 0;
  for (int64_t d : a.depths)
    for (int64_t x : a.ps) longest = std::max(longest, d + x);
  for (int64_t d : a.depths)
    for (int64_t x : a.ns) longest = std::max(longest, d + x);
  const int64_t want = engine::BlockManager::blocks_for(longest + 1) + 1;
  auto pool_blocks = m.backend().init_kv(m.kv_layout(), want);
  if (!pool_blocks.ok()) return fail(pool_blocks.status());
  engine::BlockManager blocks(std::min(pool_blocks.value(), want));
  engine::SamplingParams greedy;
  greedy.temperature = 0;
  backend::StepResult res;
  auto fwd = [&](const std::vector<int32_t>& toks, int64_t pos0) -> Status {
    BALLAST_RETURN_IF_ERROR(blocks.reserve(0, pos0 + static_cast<int64_t>(toks.size())));
    backend::StepPlan plan;
    plan.tokens = toks;
    for (size_t i = 0; i < toks.size(); ++i) {
      plan.positions.push_back(static_cast<int32_t>(pos0 + static_cast<int64_t>(i)));
      plan.seq_row.push_back(0);
    }
    plan.logit_rows = {static_cast<int32_t>(toks.size() - 1)};
    blocks.fill_tables({0}, plan);
    backend::LogitsRequest req;
    req.valid = rt.audit.valid.get();
    backend::SampleRow row;
    row.params = &greedy;
    req.rows = {row};
    BALLAST_RETURN_IF_ERROR(m.step(plan, req, {}, res));
    return res.rows[0].status;
  };
  // Tests in llama-bench's order: every pp, then every tg, each at every depth; a test
  // at depth d first fills the cache with d tokens (not timed).
  struct Test {
    bool pp;
    int64_t tokens, depth;
    std::vector<double> tps;
  };
  std::vector<Test> tests;
  for (int64_t d : a.depths) {
    for (int64_t p : a.ps)
      if (p > 0) tests.push_back({true, p, d, {}});
    for (int64_t n : a.ns)
      if (n > 0) tests.push_back({false, n, d, {}});
  }
  auto random_tokens = [&](int64_t k) {
    std::vector<int32_t> toks;
    for (int64_t i = 0; i < k; ++i) toks.push_back(rand_id());
    return toks;
  };
  for (auto& t : tests) {
    for (int r = 0; r < a.reps + 1; ++r) {  // first round warms up
      blocks.release(0);
      if (t.depth > 0) {
        Status st = fwd(random_tokens(t.depth), 0);
        if (!st.ok()) return fail(st);
      }
      double t0 = now_s();
      if (t.pp) {
        Status st = fwd(random_tokens(t.tokens), t.depth);
        if (!st.ok()) return fail(st);
      } else {
        for (int64_t i = 0; i < t.tokens; ++i) {
          Status st = fwd({rand_id()}, t.depth + i);
          if (!st.ok()) return fail(st);
        }
      }
      if (r > 0) t.tps.push_back(t.tokens / (now_s() - t0));
    }
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = ru.ru_maxrss / 1024.0;
  const auto& c = m.config();
  auto name = [](const Test& t) {
    std::string s = (t.pp ? "pp" : "tg") + std::to_string(t.tokens);
    if (t.depth > 0) s += " @ d" + std::to_string(t.depth);
    return s;
  };
  auto stats = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    double mean = 0, var = 0;
    for (double x : v) mean += x;
    mean /= v.size();
    for (double x : v) var += (x - mean) * (x - mean);
    return std::array<double, 4>{mean, v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0, v[v.size() / 2], v.back()};
  };
  const std::string mode = a.rt.exact ? "exact" : "default";
  if (a.json) {
    for (const auto& t : tests) {
      auto st = stats(t.tps);
      nlohmann::json j{{"model", a.rt.model}, {"arch", c.source_arch}, {"threads", rt.pool->size()}, {"mode", mode},
                       {"test", name(t)}, {t.pp ? "pp" : "tg", t.tokens}, {"depth", t.depth},
                       {"avg_tok_s", st[0]}, {"stddev_tok_s", st[1]}, {"median_tok_s", st[2]}, {"best_tok_s", st[3]},
                       {t.pp ? "pp_tok_s" : "tg_tok_s", st[3]}, {"peak_rss_mib", rss_mib}};
      std::cout << j.dump() << "\n";
    }
    return 0;
  }
  // llama-bench's columns (t/s = mean ± sd over the repetitions) plus best.
  std::printf("| model | mode | threads | test | t/s | best t/s |\n|---|---|---|---|---|---|\n");
  for (const auto& t : tests) {
    auto st = stats(t.tps);
    std::printf("| %s | %s | %d | %s | %.2f ± %.2f | %.2f |\n", a.rt.model.c_str(), mode.c_str(), rt.pool->size(),
                name(t).c_str(), st[0], st[1], st[3]);
  }
  std::printf("peak RSS: %.1f MiB\n", rss_mib);
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<BenchArgs>());
  auto* c = app.add_subcommand("bench", "prompt-processing / generation tokens per second and peak RSS");
  add_runtime_options(c, o, a->rt, a->log_format);
  c->add_option("-p,--n-prompt", a->ps, "prompt tokens processed as one batch (comma list, default 512)")->delimiter(',');
  c->add_option("-n,--n-gen", a->ns, "tokens generated one at a time (comma list, default 128)")->delimiter(',');
  c->add_option("-d,--n-depth", a->depths, "run each test after this many tokens already in the context (comma list, default 0)")->delimiter(',');
  c->add_option("-r,--repetitions", a->reps, "timed repetitions (best is reported), after one warm-up");
  c->add_flag("--json", a->json, "one JSON object");
  c->add_option("-c,--concurrency", a->concurrency, "run this many requests (-p prompt, -n generated tokens) through the engine");
  c->add_option("--token-budget", a->token_budget, "engine tokens per step with --concurrency");
  on_run(c, [a] { return run_bench(*a); });
}

}  // namespace ballast::cli
