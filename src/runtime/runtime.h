// A loaded model ready to serve: model + tokenizer + vocabulary audit + thread pool.
// Shared by every CLI command and the server.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "model/loader.h"
#include "tokenizer/tokenizer.h"
#include "vocab/audit.h"

namespace ballast::runtime {

struct RuntimeOptions {
  std::string model;
  std::string tokenizer;        // optional override of the model's own tokenizer
  int threads = 0;              // 0: physical cores
  bool strict_vocab = false;
  bool resize_embeddings = false;
  bool check_numerics = false;
  bool exact = false;           // CPU: dequantized weights and fp32 matmuls (slower; matches transformers)
  bool quiet = false;           // no audit summary in the log
  std::string device = "cpu";   // "cpu" | "cuda"
  bool debug_sync = false;      // CUDA: synchronize and check after every kernel
};

struct Runtime {
  model::LoadedModel lm;
  std::unique_ptr<tokenizer::Tokenizer> tok;
  vocab::VocabAudit audit;
  std::shared_ptr<ThreadPool> pool;
  RuntimeOptions opts;
  model::Model& model() { return *lm.model; }
};

Result<std::unique_ptr<tokenizer::Tokenizer>> load_tokenizer_for(const model::LoadedModel& lm,
                                                                 const std::string& override_path);
Result<std::unique_ptr<Runtime>> load_runtime(const RuntimeOptions& opts);

// Engine sampling defaults from generation_config.json / GGUF metadata.
engine::SamplingParams default_sampling(const Runtime& rt);

// A request's input ids: a decoder-only model's prompt, or an encoder-decoder's encoder
// input (its decoder then starts from decoder_start_token_id, which is not reported as
// generated).
inline void set_input(model::Model& m, engine::GenerationRequest& req, std::vector<int32_t> ids) {
  if (m.encoder_decoder()) {
    req.encoder = std::move(ids);
    req.prompt = {static_cast<int32_t>(m.decoder_start())};
  } else {
    req.prompt = std::move(ids);
  }
}

}  // namespace ballast::runtime

namespace ballast::runtime {

struct GenerationOutput {
  std::vector<int32_t> ids;                   // generated ids (a final stop id included)
  std::vector<engine::SampleResult> samples;  // one per generated id
  engine::FinishReason finish = engine::FinishReason::kNone;
};

// Runs one request to completion on a private engine (CLI use). on_token, when set,
// sees each id as it is produced; token_budget > 0 sets the prefill chunk size.
Result<GenerationOutput> generate_sync(Runtime& rt, engine::GenerationRequest req, int64_t ctx_size,
                                       const std::function<void(int32_t)>& on_token = {}, int64_t token_budget = 0);

}  // namespace ballast::runtime
