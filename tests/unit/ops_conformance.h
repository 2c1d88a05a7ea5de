// Op conformance harness (in the spirit of llama.cpp's test-backend-ops): every op of
// backend/ops.h run through Backend::run on synthetic data, against float64 references.
// Shared by the CPU suite (tests/unit/ops_conformance*_test.cpp, GoogleTest) and the GPU
// suite (tests/gpu/ops_gpu.cu): a case talks to a Backend and reports to a Sink, so the
// same cases run on every backend, each runner choosing its tolerances.
//
// Reading an activation out: the only way a step's values leave a backend is the logits
// op (final norm, then x @ head^T). The harness reads a tensor (n, c) through an identity
// head (c, c) and an RMSNorm with weight 2^20 and eps 2^40: x * 2^20 / sqrt(mean(x^2) +
// 2^40) is x itself (bit exact in fp32 while mean(x^2) < 2^16, and the references apply the
// same formula in float64 anyway), so scale errors stay visible, unlike a plain final norm.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cpu_test_util.h"
#include "core/dtype.h"
#include "core/quant.h"

namespace ballast::ops_test {

using backend::Act;
using backend::Backend;
using backend::Norm;
using backend::NormKind;
using backend::Ops;
using backend::StepPlan;
using backend::Tensor;
using backend::WeightId;
using backend::kNoWeight;

// ---- tolerances (CPU; the GPU runner applies its bf16 floor on top) ----
// Elementwise: |got - want| <= tol * (|want| + rms(want's row)).
constexpr double kTolF32 = 1e-5;
// Quantized weights at small batch dot against 8-bit quantized activations (~0.5% per dot).
constexpr double kTolQuant = 4e-2;
inline bool is_float_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }
inline double matmul_tol(DType t) { return is_float_dtype(t) ? kTolF32 : kTolQuant; }

// ---- random data and storage formats (decoded here, independently of core/quant) ----
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed * 0x9E3779B97F4A7C15ull + 12345) {}
  double normal(double sd = 1.0) { return std::normal_distribution<double>(0.0, sd)(g_); }
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(g_); }
  uint32_t bits() { return static_cast<uint32_t>(g_()); }
  std::mt19937_64& engine() { return g_; }
  std::vector<double> normals(size_t n, double sd = 1.0, double mean = 0.0) {
    std::vector<double> v(n);
    for (auto& x : v) x = mean + static_cast<double>(static_cast<float>(normal(sd)));  // fp32-exact
    return v;
  }

 private:
  std::mt19937_64 g_;
};

inline double bf16_value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline double f16_value(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  const double v = e == 0 ? std::ldexp(static_cast<double>(m), -24) : std::ldexp(static_cast<double>(1024 + m), e - 25);
  return (h & 0x8000) ? -v : v;
}
// A random f16 of magnitude in [2^(e_lo-15), 2^(e_hi-14)); exponent field 0 gives subnormals.
inline uint16_t random_f16(Rng& r, int e_lo, int e_hi) {
  const uint32_t e = static_cast<uint32_t>(r.uniform(e_lo, e_hi)), m = r.bits() & 1023, s = r.bits() & 1;
  return static_cast<uint16_t>((s << 15) | (e << 10) | m);
}

// A weight as a file holds it, and its exact values.
struct HostMatrix {
  DType dtype = DType::kF32;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> bytes;
  std::vector<double> values;  // (rows, cols)
};

// Random (rows, cols) weight of dtype t with element rms about sd (floats, Q8_0) or of
// some O(sd) size (other block formats: random payload, random f16 scales).
inline HostMatrix random_matrix(DType t, int64_t rows, int64_t cols, uint64_t seed, double sd = 1.0) {
  Rng r(seed);
  HostMatrix m{t, rows, cols, {}, std::vector<double>(static_cast<size_t>(rows * cols))};
  const int64_t n = rows * cols;
  const int e_sd = 15 + static_cast<int>(std::floor(std::log2(sd)));  // f16 exponent field of sd
  if (t == DType::kF32) {
    m.bytes.resize(n * 4);
    for (int64_t i = 0; i < n; ++i) {
      const float f = static_cast<float>(r.normal(sd));
      std::memcpy(&m.bytes[i * 4], &f, 4);
      m.values[i] = f;
    }
  } else if (t == DType::kBF16 || t == DType::kF16) {
    m.bytes.resize(n * 2);
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      if (t == DType::kBF16) {
        const float f = static_cast<float>(r.normal(sd));
        uint32_t u;
        std::memcpy(&u, &f, 4);
        h = static_cast<uint16_t>(u >> 16);
        m.values[i] = bf16_value(h);
      } else {
        h = r.uniform(0, 15) == 0 ? random_f16(r, 0, 0) : random_f16(r, std::max(1, e_sd - 6), std::max(1, e_sd));
        m.values[i] = f16_value(h);
      }
      std::memcpy(&m.bytes[i * 2], &h, 2);
    }
  } else if (t == DType::kQ8_0) {
    const int64_t nb = n / 32;
    m.bytes.resize(nb * 34);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* blk = &m.bytes[b * 34];
      const uint16_t d = random_f16(r, std::max(1, e_sd - 7), std::max(1, e_sd - 6));  // ~sd/64 * 127 range
      std::memcpy(blk, &d, 2);
      for (int k = 0; k < 32; ++k) {
        const int8_t q = static_cast<int8_t>(r.uniform(-127, 127));
        blk[2 + k] = static_cast<uint8_t>(q);
        m.values[b * 32 + k] = f16_value(d) * q;
      }
    }
  } else {
    // Other block formats: random payload and random f16 scales, the scales' exponents
    // then shifted so the element rms lands near sd; values from the repository's
    // gguf-py-exact dequantizer.
    const auto& info = dtype_info(t);
    const int64_t nb = n / info.block_elems;
    const auto fields = cpu::testing::f16_field_offsets(t);
    m.bytes.resize(static_cast<size_t>(nb * info.block_bytes));
    for (auto& b : m.bytes) b = static_cast<uint8_t>(r.bits());
    std::vector<uint16_t> base(static_cast<size_t>(nb) * fields.size());
    for (auto& d : base) d = random_f16(r, 10, 12);
    const size_t rb = m.bytes.size() / rows;
    std::vector<float> row(cols);
    for (int shift = 0, pass = 0; pass < 2; ++pass) {
      for (int64_t b = 0; b < nb; ++b)
        for (size_t f = 0; f < fields.size(); ++f) {
          const uint16_t d0 = base[b * fields.size() + f];
          const int e = std::clamp(((d0 >> 10) & 31) + shift, 1, 30);
          const uint16_t d = static_cast<uint16_t>((d0 & 0x83FF) | (e << 10));
          std::memcpy(&m.bytes[b * info.block_bytes + fields[f]], &d, 2);
        }
      double ss = 0;
      for (int64_t i = 0; i < rows; ++i) {
        dequantize_row(t, m.bytes.data() + i * rb, row.data(), cols);
        for (int64_t k = 0; k < cols; ++k) ss += static_cast<double>(row[k]) * row[k], m.values[i * cols + k] = row[k];
      }
      shift = static_cast<int>(std::lround(std::log2(sd / std::sqrt(ss / n + 1e-300))));
    }
  }
  return m;
}

// An fp32 matrix holding exactly `values` (rounded to fp32 first).
inline HostMatrix f32_matrix(std::vector<double> values, int64_t rows, int64_t cols) {
  HostMatrix m{DType::kF32, rows, cols, std::vector<uint8_t>(values.size() * 4), std::move(values)};
  for (size_t i = 0; i < m.values.size(); ++i) {
    const float f = static_cast<float>(m.values[i]);
    m.values[i] = f;
    std::memcpy(&m.bytes[i * 4], &f, 4);
  }
  return m;
}

// ---- float64 references ----
inline std::vector<double> ref_norm(const std::vector<double>& x, int64_t cols, NormKind kind, const std::vector<double>& w,
                                    const std::vector<double>* b, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / cols; ++r) {
    const double* in = &x[r * cols];
    double mean = 0, ms = 0;
    if (kind == NormKind::kLayer) {
      for (int64_t i = 0; i < cols; ++i) mean += in[i];
      mean /= cols;
    }
    for (int64_t i = 0; i < cols; ++i) ms += (in[i] - mean) * (in[i] - mean);
    const double inv = 1.0 / std::sqrt(ms / cols + eps);
    for (int64_t i = 0; i < cols; ++i) y[r * cols + i] = (in[i] - mean) * inv * w[i] + (b ? (*b)[i] : 0.0);
  }
  return y;
}
// (n, rows) = x (n, K) @ w^T
inline std::vector<double> ref_matmul(const std::vector<double>& x, int64_t K, const std::vector<double>& w, int64_t rows) {
  const int64_t n = static_cast<int64_t>(x.size()) / K;
  std::vector<double> y(static_cast<size_t>(n * rows));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += x[t * K + k] * w[r * K + k];
      y[t * rows + r] = s;
    }
  return y;
}
inline double ref_act(double x, Act a) {
  switch (a) {
    case Act::kSilu: return x / (1.0 + std::exp(-x));
    case Act::kGeluTanh: return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case Act::kGeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case Act::kRelu: return x > 0 ? x : 0.0;
  }
  return 0;
}
inline const char* act_name(Act a) {
  switch (a) {
    case Act::kSilu: return "silu";
    case Act::kGeluTanh: return "gelu_tanh";
    case Act::kGeluErf: return "gelu_erf";
    case Act::kRelu: return "relu";
  }
  return "?";
}
inline std::string dt_name(DType t) { return dtype_name(t); }

// ---- comparison ----
struct Mismatch {
  double elem = 0;    // worst |got - want| / (|want| + rms(row))
  double row_l2 = 0;  // worst row ||got - want|| / ||want||
  int64_t at = -1;    // index of the worst element
  bool size_ok = true;
};
inline Mismatch measure(const std::vector<float>& got, const std::vector<double>& want, int64_t row) {
  Mismatch m;
  if (got.size() != want.size() || row <= 0) {
    m.size_ok = false;
    return m;
  }
  for (size_t r0 = 0; r0 < want.size(); r0 += row) {
    double ss = 0, num = 0;
    for (int64_t i = 0; i < row; ++i) ss += want[r0 + i] * want[r0 + i];
    const double rms = std::sqrt(ss / row);
    for (int64_t i = 0; i < row; ++i) {
      const double g = got[r0 + i], w = want[r0 + i], d = std::fabs(g - w);
      const double e = std::isfinite(g) ? (d == 0 ? 0 : d / (std::fabs(w) + rms + 1e-300)) : INFINITY;
      num += std::isfinite(g) ? d * d : INFINITY;
      if (e > m.elem || (m.at < 0 && e != 0)) m.elem = e, m.at = static_cast<int64_t>(r0 + i);
    }
    m.row_l2 = std::max(m.row_l2, num == 0 ? 0 : std::sqrt(num / std::max(ss, 1e-300)));
  }
  return m;
}

// Where a case reports: the gtest runner EXPECTs, the GPU runner records.
class Sink {
 public:
  virtual ~Sink() = default;
  // got vs want, rows of `row` elements; `tol`: the CPU's elementwise tolerance.
  virtual void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                       int64_t row, double tol) = 0;
  virtual void expect(bool ok, const std::string& what) = 0;
};

// ---- plans ----
// One sequence of tokens at consecutive positions from p0, blocks 0.. of the pool; every
// row wants logits.
inline StepPlan simple_plan(const std::vector<int32_t>& tokens, int32_t p0 = 0) {
  StepPlan p;
  p.tokens = tokens;
  const int32_t n = static_cast<int32_t>(tokens.size());
  for (int32_t i = 0; i < n; ++i) {
    p.positions.push_back(p0 + i);
    p.seq_row.push_back(0);
    p.logit_rows.push_back(i);
  }
  p.n_seqs = 1;
  p.max_blocks = (p0 + n + backend::kKvBlockTokens - 1) / backend::kKvBlockTokens;
  for (int32_t b = 0; b < p.max_blocks; ++b) p.block_tables.push_back(b);
  return p;
}
inline std::vector<int32_t> iota_tokens(int32_t n, int32_t from = 0) {
  std::vector<int32_t> t(n);
  for (int32_t i = 0; i < n; ++i) t[i] = from + i;
  return t;
}

// ---- the harness: one case on one backend ----
class Harness {
 public:
  static constexpr float kReadW = 1048576.f;         // 2^20
  static constexpr float kReadEps = 1099511627776.f;  // 2^40

  Harness(Backend& be, Sink& sink, std::string name) : be_(be), sink_(sink), name_(std::move(name)) {}
  Backend& backend() { return be_; }
  const std::string& name() const { return name_; }
  bool ok() const { return ok_; }

  void expect(bool ok, const std::string& what) { sink_.expect(ok, name_ + ": " + what); }
  void compare(const std::string& what, const std::vector<float>& got, const std::vector<double>& want, int64_t row,
               double tol) {
    sink_.compare(name_ + (what.empty() ? "" : ": " + what), got, want, row, tol);
  }

  // Row-stacked parts (the backend may view the bytes: they live as long as the harness).
  WeightId matrix(const std::vector<const HostMatrix*>& parts, const std::string& what = "w") {
    backend::MatrixSource src;
    src.name = name_ + "/" + what;
    src.cols = parts[0]->cols;
    for (const HostMatrix* p : parts) {
      store_.push_back(p->bytes);
      src.parts.push_back({p->dtype, store_.back().data(), p->rows});
      src.rows += p->rows;
    }
    return check(be_.add_matrix(src), "add_matrix " + what);
  }
  WeightId matrix(const HostMatrix& m, const std::string& what = "w") { return matrix({&m}, what); }
  // An fp32 table whose rows are step inputs (embed with the step's tokens).
  WeightId input(const std::vector<double>& values, int64_t cols) {
    return matrix(f32_matrix(values, static_cast<int64_t>(values.size()) / cols, cols), "input");
  }
  WeightId vec(const std::vector<double>& v) {
    std::vector<float> f(v.begin(), v.end());
    return check(be_.add_vector(f), "add_vector");
  }
  backend::RopeId rope(const std::vector<float>& inv_freq) { return check(be_.add_rope(inv_freq), "add_rope"); }
  backend::RopeId rope(const backend::RopeTable& t) { return check(be_.add_rope(t), "add_rope"); }

  void init_kv(const backend::KvLayout& l, int64_t blocks) {
    auto r = be_.init_kv(l, blocks);
    expect(r.ok() && r.value() >= blocks, "init_kv(" + std::to_string(blocks) + " blocks): " + r.status().message());
    ok_ = ok_ && r.ok();
    kv_ = true;
  }

  // The exact readout of a tensor (n, cols): identity head and the 2^20 / 2^40 RMSNorm.
  WeightId identity(int64_t c) {
    auto it = ident_.find(c);
    if (it != ident_.end()) return it->second;
    std::vector<double> v(static_cast<size_t>(c * c), 0.0);
    for (int64_t i = 0; i < c; ++i) v[i * c + i] = 1.0;
    const WeightId id = matrix(f32_matrix(std::move(v), c, c), "identity");
    return ident_[c] = id;
  }
  Norm readout_norm(int64_t c) {
    auto it = read_w_.find(c);
    if (it == read_w_.end()) it = read_w_.emplace(c, vec(std::vector<double>(c, kReadW))).first;
    return Norm{NormKind::kRms, it->second, kNoWeight, kReadEps};
  }
  static std::vector<double> readout_ref(std::vector<double> v, int64_t c) {
    for (size_t r = 0; r < v.size() / c; ++r) {
      double ms = 0;
      for (int64_t i = 0; i < c; ++i) ms += v[r * c + i] * v[r * c + i];
      const double s = static_cast<double>(kReadW) / std::sqrt(ms / c + static_cast<double>(kReadEps));
      for (int64_t i = 0; i < c; ++i) v[r * c + i] *= s;
    }
    return v;
  }

  // Runs a step; out: the (m, head rows) logits. False (reported) when the step failed.
  bool run(const StepPlan& plan, const Backend::Forward& fwd, std::vector<float>& out, const std::string& what) {
    Status st = run_status(plan, fwd, out);
    expect(st.ok(), what + ": step failed: " + st.message());
    return st.ok();
  }
  Status run_status(const StepPlan& plan, const Backend::Forward& fwd, std::vector<float>& out) {
    if (!ok_) return error(ErrorCode::kInternal, "setup failed");
    if (!kv_) init_kv({1, 1, 8}, 64);
    backend::LogitsRequest req;
    req.return_logits = true;
    backend::StepResult res;
    Status st = be_.run(plan, fwd, req, backend::StepOptions{}, res);
    out = std::move(res.logits);
    return st;
  }
  // A step whose forward yields one tensor (n, cols), read out exactly and compared with
  // want (n, cols) (the readout formula applied here).
  using Body = std::function<Tensor(Ops&)>;
  Backend::Forward reader(Body body, int64_t cols) {
    const WeightId head = identity(cols);
    const Norm nm = readout_norm(cols);
    return [body, cols, head, nm](Ops& o) -> Status {
      Tensor y = body(o);
      if (!o.status().ok()) return o.status();  // an op failed: the step fails with its error
      if (y.rows <= 0 || y.cols != cols)
        return error(ErrorCode::kInternal, "op output has " + std::to_string(y.cols) + " columns, want " + std::to_string(cols));
      o.logits(y, nm, head, 0.f);
      return Status();
    };
  }
  void check_read(const StepPlan& plan, const Backend::Forward& fwd, const std::vector<double>& want, int64_t cols,
                  double tol, const std::string& what = "") {
    std::vector<float> got;
    if (!run(plan, fwd, got, what.empty() ? "step" : what)) return;
    compare(what, got, readout_ref(want, cols), cols, tol);
  }
  void check_read(const StepPlan& plan, Body body, const std::vector<double>& want, int64_t cols, double tol,
                  const std::string& what = "") {
    check_read(plan, reader(std::move(body), cols), want, cols, tol, what);
  }

 private:
  template <class T>
  T check(const Result<T>& r, const std::string& what) {
    if (!r.ok()) {
      expect(false, what + ": " + r.status().message());
      ok_ = false;
      return static_cast<T>(-1);
    }
    return r.value();
  }

  Backend& be_;
  Sink& sink_;
  std::string name_;
  bool ok_ = true, kv_ = false;
  std::deque<std::vector<uint8_t>> store_;
  std::map<int64_t, WeightId> ident_, read_w_;
};

// A case: a name (gtest-safe) and what it does on a fresh backend. A backend may capture a
// step's forward and replay it for a later step of the same shape (CUDA decode graphs), so
// a case issues one forward per step shape (the same lambda for every step of a scenario).
struct OpCase {
  std::string name;
  std::function<void(Harness&)> run;
};

inline std::string fmt_name(std::string s) {
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

}  // namespace ballast::ops_test
