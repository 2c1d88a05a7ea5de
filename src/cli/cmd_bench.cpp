// `ballast bench`: llama-bench style prompt-processing and generation throughput plus
// peak RSS, with random valid token ids; --concurrency C runs C requests through the
// engine (continuous batching) and reports generated tokens per second.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include "cli/options.h"

namespace ballast::cli {

namespace {

struct BenchArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  int64_t p = 512, n = 128;
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
  if (a.p < 0 || a.n < 0 || a.reps < 1) return fail(error(ErrorCode::kInvalidArgument, "-p, -n must be >= 0 and -r >= 1"));
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
  const int64_t want = engine::BlockManager::blocks_for(a.p + a.n + 1) + 1;
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
  double pp_best = 0, tg_best = 0;
  for (int r = 0; r < a.reps + 1; ++r) {  // first round warms up
    blocks.release(0);
    if (a.p > 0) {
      std::vector<int32_t> toks;
      for (int64_t i = 0; i < a.p; ++i) toks.push_back(rand_id());
      double t0 = now_s();
      Status st = fwd(toks, 0);
      if (!st.ok()) return fail(st);
      double tps = a.p / (now_s() - t0);
      if (r > 0) pp_best = std::max(pp_best, tps);
    }
    if (a.n > 0) {
      double t0 = now_s();
      for (int64_t i = 0; i < a.n; ++i) {
        Status st = fwd({rand_id()}, a.p + i);
        if (!st.ok()) return fail(st);
      }
      double tps = a.n / (now_s() - t0);
      if (r > 0) tg_best = std::max(tg_best, tps);
    }
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = ru.ru_maxrss / 1024.0;
  const auto& c = m.config();
  if (a.json) {
    nlohmann::json j{{"model", a.rt.model}, {"arch", c.source_arch}, {"threads", rt.pool->size()},
                     {"pp", a.p}, {"pp_tok_s", pp_best}, {"tg", a.n}, {"tg_tok_s", tg_best}, {"peak_rss_mib", rss_mib}};
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::printf("| model | arch | threads | test | t/s |\n|---|---|---|---|---|\n");
  if (a.p > 0) std::printf("| %s | %s | %d | pp%lld | %.2f |\n", a.rt.model.c_str(), c.source_arch.c_str(), rt.pool->size(), (long long)a.p, pp_best);
  if (a.n > 0) std::printf("| %s | %s | %d | tg%lld | %.2f |\n", a.rt.model.c_str(), c.source_arch.c_str(), rt.pool->size(), (long long)a.n, tg_best);
  std::printf("peak RSS: %.1f MiB\n", rss_mib);
  return 0;
}

}  // namespace

void add_bench(CLI::App& app, Options& o) {
  auto* a = new BenchArgs();
  auto* c = app.add_subcommand("bench", "prompt-processing / generation tokens per second and peak RSS");
  add_runtime_options(c, o, a->rt, a->log_format);
  c->add_option("-p,--n-prompt", a->p, "prompt tokens processed as one batch");
  c->add_option("-n,--n-gen", a->n, "tokens generated one at a time");
  c->add_option("-r,--repetitions", a->reps, "timed repetitions (best is reported), after one warm-up");
  c->add_flag("--json", a->json, "one JSON object");
  c->add_option("-c,--concurrency", a->concurrency, "run this many requests (-p prompt, -n generated tokens) through the engine");
  c->add_option("--token-budget", a->token_budget, "engine tokens per step with --concurrency");
  on_run(c, [a] { return run_bench(*a); });
}

}  // namespace ballast::cli
