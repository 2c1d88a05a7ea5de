// Prometheus text exposition (version 0.0.4) of the server's metrics.
#include "server/metrics.h"

#include <cstdio>

namespace ballast::server {

namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.15g", v);
  return b;
}

std::string escape_label(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\', o += c;
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

void header(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  std::lock_guard<std::mutex> lk(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(const std::string& name, std::string& out) const {
  std::lock_guard<std::mutex> lk(mu_);
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{le=\"" + num(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += counts_.back();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics() = default;

void Metrics::request_done(const std::string& endpoint, int status) {
  std::lock_guard<std::mutex> lk(mu_);
  requests_[{endpoint, status}]++;
}

void Metrics::set_audit_findings(std::vector<std::pair<std::string, std::string>> f) {
  std::lock_guard<std::mutex> lk(mu_);
  findings_ = std::move(f);
}

std::string Metrics::render() const {
  std::string out;
  header(out, "ballast_requests_total", "counter", "HTTP requests by endpoint and status code.");
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [k, v] : requests_)
      out += "ballast_requests_total{endpoint=\"" + escape_label(k.first) + "\",status=\"" + std::to_string(k.second) +
             "\"} " + std::to_string(v) + "\n";
  }
  header(out, "ballast_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.");
  out += "ballast_prompt_tokens_total " + std::to_string(prompt_tokens_.load()) + "\n";
  header(out, "ballast_generation_tokens_total", "counter", "Generated tokens.");
  out += "ballast_generation_tokens_total " + std::to_string(generated_tokens_.load()) + "\n";
  header(out, "ballast_requests_waiting", "gauge", "Sequences waiting for a batch slot.");
  out += "ballast_requests_waiting " + std::to_string(waiting_.load()) + "\n";
  header(out, "ballast_requests_running", "gauge", "Sequences in the running batch.");
  out += "ballast_requests_running " + std::to_string(running_.load()) + "\n";
  header(out, "ballast_kv_cache_blocks_used", "gauge", "KV cache blocks in use.");
  out += "ballast_kv_cache_blocks_used " + std::to_string(kv_used_.load()) + "\n";
  header(out, "ballast_kv_cache_blocks_total", "gauge", "KV cache capacity in blocks.");
  out += "ballast_kv_cache_blocks_total " + std::to_string(kv_total_.load()) + "\n";
  header(out, "ballast_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks in use.");
  int64_t tot = kv_total_.load();
  out += "ballast_kv_cache_usage_ratio " + num(tot > 0 ? static_cast<double>(kv_used_.load()) / tot : 0.0) + "\n";
  header(out, "ballast_prefix_cache_enabled", "gauge", "1 when KV blocks are shared between requests with a common prefix.");
  out += std::string("ballast_prefix_cache_enabled ") + (prefix_on_ ? "1" : "0") + "\n";
  header(out, "ballast_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.");
  out += "ballast_prefix_cache_queries_total " + std::to_string(prefix_queries_.load()) + "\n";
  header(out, "ballast_prefix_cache_hits_total", "counter", "Prompt tokens whose KV came from the prefix cache.");
  out += "ballast_prefix_cache_hits_total " + std::to_string(prefix_hits_.load()) + "\n";
  header(out, "ballast_prefix_cache_hit_rate", "gauge", "prefix_cache_hits_total / prefix_cache_queries_total (0 before any query).");
  const int64_t pq = prefix_queries_.load();
  out += "ballast_prefix_cache_hit_rate " + num(pq > 0 ? static_cast<double>(prefix_hits_.load()) / pq : 0.0) + "\n";
  header(out, "ballast_http_connections", "gauge", "Open HTTP connections within the connection limits.");
  out += "ballast_http_connections " + std::to_string(connections_.load()) + "\n";
  header(out, "ballast_http_connections_evicted_total", "counter",
         "Idle keep-alive connections closed to make room for new ones (connection limits).");
  out += "ballast_http_connections_evicted_total " + std::to_string(evicted_.load()) + "\n";
  header(out, "ballast_ready", "gauge", "1 when the model is loaded and requests are accepted.");
  out += std::string("ballast_ready ") + (ready_ ? "1" : "0") + "\n";
  header(out, "ballast_time_to_first_token_seconds", "histogram", "Time from request arrival to its first token.");
  ttft.render("ballast_time_to_first_token_seconds", out);
  header(out, "ballast_inter_token_latency_seconds", "histogram", "Time between consecutive tokens of a sequence.");
  inter_token.render("ballast_inter_token_latency_seconds", out);
  header(out, "ballast_request_duration_seconds", "histogram", "Time from arrival to the last byte of a generation request.");
  request_duration.render("ballast_request_duration_seconds", out);
  header(out, "ballast_audit_findings", "gauge", "Vocabulary audit findings of the loaded model, by id.");
  {
    std::lock_guard<std::mutex> lk(mu_);
    std::map<std::pair<std::string, std::string>, int> agg;
    for (const auto& f : findings_) agg[f]++;
    for (const auto& [k, v] : agg)
      out += "ballast_audit_findings{id=\"" + escape_label(k.first) + "\",severity=\"" + escape_label(k.second) +
             "\"} " + std::to_string(v) + "\n";
  }
  return out;
}

}  // namespace ballast::server
