// `ballast inspect`: what a model file holds and the vocabulary audit, for people
// (default) or machines (--json). --scan-weights checks every tensor's values.
#include <cmath>
#include <iostream>
#include <map>

#include "core/quant.h"
#include "cli/options.h"

namespace ballast::cli {

namespace {

struct InspectArgs {
  runtime::RuntimeOptions rt;
  std::string log_format = "human";
  bool json = false, scan_weights = false;
};

struct ScanResult {
  std::string name;
  int64_t nan = 0, inf = 0;
  bool all_zero = true;
};

std::vector<ScanResult> scan(const model::WeightSet& ws, ThreadPool& pool) {
  std::vector<ScanResult> bad;
  for (const auto& [name, w] : ws.all()) {
    ScanResult r{w.stored_as};
    std::vector<float> row(w.cols());
    for (int64_t i = 0; i < w.rows(); ++i) {
      ballast::dequantize_row(w.dtype, w.row(i), row.data(), w.cols());
      for (float x : row) {
        if (std::isnan(x)) r.nan++;
        else if (std::isinf(x)) r.inf++;
        if (x != 0.0f) r.all_zero = false;
      }
    }
    if (r.nan || r.inf || r.all_zero) bad.push_back(r);
  }
  (void)pool;
  return bad;
}

int run_inspect(InspectArgs& a) {
  if (!apply_log_format(a.log_format)) return 2;
  a.rt.quiet = true;
  auto rtr = runtime::load_runtime(a.rt);
  if (!rtr.ok()) return fail(rtr.status());
  auto& rt = *rtr.value();
  const auto& c = rt.model().config();
  std::map<std::string, int64_t> dtypes;
  int64_t bytes = 0;
  const model::WeightSet no_weights;
  const model::WeightSet& weights = rt.lm.weights ? *rt.lm.weights : no_weights;
  for (const auto& [n, w] : weights.all()) {
    dtypes[dtype_name(w.dtype)]++;
    bytes += static_cast<int64_t>(w.row_bytes()) * w.rows();
  }
  std::vector<ScanResult> bad;
  if (a.scan_weights) bad = scan(weights, *rt.pool);
  if (a.json) {
    nlohmann::json j;
    j["model"] = {{"path", rt.lm.path},       {"format", rt.lm.is_gguf ? "gguf" : "hf"},
                  {"architecture", c.source_arch}, {"implementation", c.arch},
                  {"layers", c.n_layers},     {"hidden", c.hidden},
                  {"heads", c.n_heads},       {"kv_heads", c.n_kv_heads},
                  {"head_dim", c.head_dim},   {"ffn", c.ffn},
                  {"context", c.max_pos},     {"tensors", weights.all().size()},
                  {"weight_bytes", bytes},    {"dtypes", dtypes}};
    j["vocab"] = rt.audit.to_json();
    if (a.scan_weights) {
      j["scan"] = nlohmann::json::array();
      for (const auto& r : bad) j["scan"].push_back({{"tensor", r.name}, {"nan", r.nan}, {"inf", r.inf}, {"all_zero", r.all_zero}});
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  std::cout << "model        " << rt.lm.path << " (" << (rt.lm.is_gguf ? "GGUF" : "Hugging Face") << ")\n"
            << "architecture " << c.source_arch << " -> " << c.arch << "\n"
            << "shape        " << c.n_layers << " layers, hidden " << c.hidden << ", " << c.n_heads << " heads ("
            << c.n_kv_heads << " kv) x " << c.head_dim << ", ffn " << c.ffn << ", context " << c.max_pos << "\n"
            << "weights      " << weights.all().size() << " tensors, " << bytes / (1 << 20) << " MiB:";
  for (const auto& [d, n] : dtypes) std::cout << " " << d << " x" << n;
  std::cout << "\n\n" << rt.audit.to_text();
  if (a.scan_weights) {
    std::cout << "weight scan\n";
    if (bad.empty()) std::cout << "  every tensor finite and non-zero\n";
    for (const auto& r : bad)
      std::cout << "  " << r.name << ": " << (r.nan ? std::to_string(r.nan) + " NaN " : "")
                << (r.inf ? std::to_string(r.inf) + " Inf " : "") << (r.all_zero ? "all zeros" : "") << "\n";
  }
  return 0;
}

}  // namespace

void add_inspect(CLI::App& app, Options& o) {
  auto* a = keep(std::make_shared<InspectArgs>());
  auto* c = app.add_subcommand("inspect", "describe a model and audit its vocabulary");
  add_runtime_options(c, o, a->rt, a->log_format);
  c->add_flag("--json", a->json, "machine-readable report");
  c->add_flag("--scan-weights", a->scan_weights, "report tensors with NaN/Inf or all zeros");
  on_run(c, [a] { return run_inspect(*a); });
}

}  // namespace ballast::cli
