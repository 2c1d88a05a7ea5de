// Runtime loading: model, tokenizer, --resize-embeddings, audit and its log summary.
#include "runtime/runtime.h"

#include "core/log.h"
#include "backend/cpu/matmul.h"
#include "io/gguf.h"
#include "model/binder.h"
#include "model/random_model.h"

namespace ballast::runtime {

Result<std::unique_ptr<tokenizer::Tokenizer>> load_tokenizer_for(const model::LoadedModel& lm,
                                                                 const std::string& override_path) {
  if (!override_path.empty()) return tokenizer::Tokenizer::load(override_path);
  if (model::is_random_model_path(lm.path))
    return tokenizer::Tokenizer::from_json(model::random_tokenizer_json(lm.model->embedding_rows()), nullptr, lm.path);
  if (lm.is_gguf) return tokenizer::Tokenizer::from_gguf(*lm.gguf);
  return tokenizer::Tokenizer::load(lm.path);
}

Result<std::unique_ptr<Runtime>> load_runtime(const RuntimeOptions& opts) {
  auto rt = std::make_unique<Runtime>();
  rt->opts = opts;
  if (opts.model.empty()) return error(ErrorCode::kInvalidArgument, "option --model is required");
  if (opts.device != "cpu" && opts.device != "cuda")
    return error(ErrorCode::kInvalidArgument, "--device: unknown value '" + opts.device + "' (cpu, cuda)");
  rt->pool = std::make_shared<ThreadPool>(opts.threads);
  backend::BackendOptions bo;
  bo.debug_sync = opts.debug_sync;
  // One backend per binding: --resize-embeddings binds again on a fresh one.
  auto make_backend = [&]() -> Result<std::shared_ptr<backend::Backend>> {
    if (opts.device == "cuda") {
      BALLAST_ASSIGN_OR_RETURN(auto b, backend::create_cuda_backend(bo));
      return std::shared_ptr<backend::Backend>(std::move(b));
    }
    return std::shared_ptr<backend::Backend>(backend::create_cpu_backend(bo, rt->pool));
  };
  const bool random = model::is_random_model_path(opts.model);
  model::RandomPreset preset;
  auto bind = [&]() -> Status {
    BALLAST_ASSIGN_OR_RETURN(auto be, make_backend());
    if (!random) return model::bind_model(rt->lm, std::move(be));
    model::Binder b(*be, 1234, preset.rows);
    BALLAST_RETURN_IF_ERROR(rt->lm.model->bind(b));
    rt->lm.model->set_backend(std::move(be));
    return Status();
  };
  // Default: 8-bit activations and integer dot products / GEMM tiles against the
  // quantized weights (llama.cpp's scheme). --exact: dequantized weights and fp32
  // matmuls (matches transformers to ~1e-4).
  cpu::set_matmul_exact(opts.exact);  // before binding: the CPU backend repacks weights for it
  if (random) {
    BALLAST_ASSIGN_OR_RETURN(preset, model::random_preset(opts.model));
    BALLAST_ASSIGN_OR_RETURN(rt->lm, model::load_random(preset));
  } else {
    BALLAST_ASSIGN_OR_RETURN(rt->lm, model::load_model(opts.model));
  }
  BALLAST_RETURN_IF_ERROR(bind());
  BALLAST_ASSIGN_OR_RETURN(rt->tok, load_tokenizer_for(rt->lm, opts.tokenizer));
  auto& m = *rt->lm.model;
  if (opts.resize_embeddings && rt->tok->size() > m.embedding_rows()) {
    log::warn("vocab.embeddings_resized",
              "--resize-embeddings: growing embedding" + std::string(m.tied() ? "" : " and LM head") + " from " +
                  std::to_string(m.embedding_rows()) + " to " + std::to_string(rt->tok->size()) +
                  " rows; new rows are the mean of the existing rows and carry no trained meaning");
    if (!rt->lm.weights)
      return error(ErrorCode::kUnsupported, "--resize-embeddings needs weights from a file (not a random preset)");
    BALLAST_RETURN_IF_ERROR(m.grow_embeddings(*rt->lm.weights, rt->tok->size()));
    BALLAST_RETURN_IF_ERROR(bind());
  }
  vocab::AuditOptions ao;
  ao.strict = opts.strict_vocab;
  BALLAST_ASSIGN_OR_RETURN(rt->audit, vocab::audit(rt->lm, *rt->tok, ao));
  if (!opts.quiet) {
    const auto& a = rt->audit;
    log::info("model.loaded", opts.model + ": " + m.config().source_arch + ", " + std::to_string(m.config().n_layers) +
                                  " layers, " + std::to_string(a.embedding_rows) + " rows, tokenizer " +
                                  std::to_string(a.tokenizer_size) + " ids, " + std::to_string(a.valid_count) + " valid",
              {{"model", opts.model}, {"rows", a.embedding_rows}, {"tokenizer_size", a.tokenizer_size}});
    for (const auto& f : a.findings)
      log::event(f.severity == vocab::Severity::kInfo ? log::Level::kInfo : log::Level::kWarning, f.id, f.message,
                 {{"hint", f.hint}});
  }
  return rt;
}

engine::SamplingParams default_sampling(const Runtime& rt) {
  engine::SamplingParams p;
  const auto& g = rt.lm.model->config().gen;
  bool sample = g.do_sample.value_or(false);
  p.temperature = sample ? g.temperature.value_or(1.0) : 0.0;
  p.top_k = sample ? g.top_k.value_or(0) : 0;
  p.top_p = sample ? g.top_p.value_or(1.0) : 1.0;
  p.min_p = sample ? g.min_p.value_or(0.0) : 0.0;
  p.repetition_penalty = g.repetition_penalty.value_or(1.0);
  if (rt.lm.is_gguf) {
    const auto& f = *rt.lm.gguf;
    if (auto t = f.get_float("general.sampling.temp")) p.temperature = *t;
    if (auto k = f.get_int("general.sampling.top_k")) p.top_k = *k;
    if (auto v = f.get_float("general.sampling.top_p")) p.top_p = *v;
    if (auto v = f.get_float("general.sampling.min_p")) p.min_p = *v;
  }
  return p;
}

}  // namespace ballast::runtime

namespace ballast::runtime {

Result<GenerationOutput> generate_sync(Runtime& rt, engine::GenerationRequest req, int64_t ctx_size,
                                       const std::function<void(int32_t)>& on_token, int64_t token_budget) {
  const int64_t need = static_cast<int64_t>(req.prompt.size()) + 1;
  if (need > ctx_size)
    return error(ErrorCode::kContextLengthExceeded, "prompt of " + std::to_string(req.prompt.size()) +
                                                        " tokens does not fit the context of " + std::to_string(ctx_size));
  engine::EngineOptions eo;
  eo.ctx_size = ctx_size;
  eo.limits.max_batch = 1;
  if (token_budget > 0) eo.limits.token_budget = token_budget;
  eo.forward.check_numerics = rt.opts.check_numerics;
  engine::Engine eng(rt.model(), rt.audit.valid, eo);
  BALLAST_RETURN_IF_ERROR(eng.init_status());
  GenerationOutput out;
  Status failure;
  bool done = false;
  auto sub = eng.submit(std::move(req), [&](const engine::TokenEvent& ev) {
    if (ev.id >= 0) {
      out.ids.push_back(ev.id);
      out.samples.push_back(ev.sample);
      if (on_token) on_token(ev.id);
    }
    if (ev.finish != engine::FinishReason::kNone) {
      out.finish = ev.finish;
      failure = ev.status;
      done = true;
    }
  });
  if (!sub.ok()) return sub.status();
  while (!done && eng.step()) {
  }
  if (!failure.ok()) return failure;
  return out;
}

}  // namespace ballast::runtime
