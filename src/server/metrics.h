// Prometheus metrics: counters, gauges and histograms kept in-process and rendered in
// the text exposition format at /metrics. Labels carry no request content.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ballast::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Appends the _bucket/_sum/_count lines for `name`.
  void render(const std::string& name, std::string& out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (non-cumulative), last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  void request_done(const std::string& endpoint, int status);
  void add_prompt_tokens(int64_t n) { prompt_tokens_ += n; }
  void add_generated_tokens(int64_t n) { generated_tokens_ += n; }
  void set_engine(int64_t waiting, int64_t running, int64_t kv_used, int64_t kv_total) {
    waiting_ = waiting, running_ = running, kv_used_ = kv_used, kv_total_ = kv_total;
  }
  // Prefix-cache lookups since start, in prompt tokens (engine counters).
  void set_prefix_cache(bool on, int64_t queries, int64_t hits) {
    prefix_on_ = on, prefix_queries_ = queries, prefix_hits_ = hits;
  }
  void set_audit_findings(std::vector<std::pair<std::string, std::string>> id_severity);
  void set_ready(bool r) { ready_ = r; }
  void set_connections(int64_t open, int64_t evicted) { connections_ = open, evicted_ = evicted; }

  Histogram ttft{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  Histogram inter_token{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  Histogram request_duration{{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}};

  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::vector<std::pair<std::string, std::string>> findings_;
  std::atomic<int64_t> prompt_tokens_{0}, generated_tokens_{0};
  std::atomic<int64_t> waiting_{0}, running_{0}, kv_used_{0}, kv_total_{0};
  std::atomic<bool> ready_{false};
  std::atomic<bool> prefix_on_{false};
  std::atomic<int64_t> prefix_queries_{0}, prefix_hits_{0};
  std::atomic<int64_t> connections_{0}, evicted_{0};
};

}  // namespace ballast::server
