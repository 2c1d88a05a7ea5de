// GoogleTest side of the op conformance suite: a Sink that EXPECTs, and a runner that
// gives each case a fresh CPU backend (one thread pool for all).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <ostream>

#include "backend/backend.h"
#include "core/thread_pool.h"
#include "ops_conformance.h"

namespace ballast::ops_test {

inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

inline bool ops_verbose() {
  static const bool v = [] {
    const char* e = std::getenv("BALLAST_OPS_VERBOSE");
    return e && *e && *e != '0';
  }();
  return v;
}

class GtestSink : public Sink {
 public:
  // Lower bound on every tolerance: the storage precision of a mode under test (e.g. the
  // default mode's half-float KV cache).
  double floor = 0;
  void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, int64_t row,
               double tol) override {
    const Mismatch m = measure(got, want, row);
    EXPECT_TRUE(m.size_ok) << what << ": got " << got.size() << " values, want " << want.size();
    if (!m.size_ok) return;
    tol = std::max(tol, floor);
    if (ops_verbose()) std::printf("  %-70s worst elem %.3g (tol %.3g), worst row L2 %.3g\n", what.c_str(), m.elem, tol, m.row_l2);
    if (m.at < 0) return;
    EXPECT_LE(m.elem, tol) << what << ": worst element " << m.at << " (row " << m.at / row << ", col " << m.at % row
                           << ") got " << got[m.at] << " want " << want[m.at] << "; worst row relative L2 " << m.row_l2;
  }
  void expect(bool ok, const std::string& what) override { EXPECT_TRUE(ok) << what; }
};

inline std::shared_ptr<ThreadPool> cpu_pool() {
  static auto p = std::make_shared<ThreadPool>(0);
  return p;
}

inline void run_on_cpu(const OpCase& c, double floor = 0) {
  auto be = backend::create_cpu_backend({}, cpu_pool());
  GtestSink sink;
  sink.floor = floor;
  Harness h(*be, sink, c.name);
  c.run(h);
}

}  // namespace ballast::ops_test
