// The op interface on the GPU (see cuda_ops.h for the modes and the fusions).
#if BALLAST_HAVE_CUDA
#include "backend/cuda/cuda_ops.h"

#include <climits>
#include <cmath>
#include <cstring>

#include "backend/cuda/ops_kernels.h"
#include "backend/logits_chain.h"
#include "backend/cuda/qkv_post.h"

namespace ballast::cuda {

using backend::Act;
using backend::AttentionSpec;
using backend::kNoWeight;
using backend::NormKind;
using backend::Tensor;
using backend::WeightId;

namespace {
constexpr size_t kAlign = 256;               // arena offsets: aligned for 16-byte vector loads
constexpr int64_t kMaxNormSmem = 200 << 10;  // the fused GEMV prologue holds n * K bf16 in shared memory

ActCode act_code(Act a) {
  switch (a) {
    case Act::kSilu: return ActCode::kSilu;
    case Act::kGeluTanh: return ActCode::kGeluTanh;
    case Act::kGeluErf: return ActCode::kGeluErf;
    case Act::kRelu: return ActCode::kRelu;
  }
  return ActCode::kSilu;
}

Status refused(const char* op) {
  return error(ErrorCode::kInternal, std::string(op) + ": gemv_small refused a call the host checked");
}

std::string shape(int64_t r, int64_t c) {
  std::string s = "(";
  s += std::to_string(r);
  s += ", ";
  s += std::to_string(c);
  s += ")";
  return s;
}
}  // namespace

// Dry mode launches nothing. Real mode: launch, then check (a synchronize per kernel
// under --debug-sync / CUDA_LAUNCH_BLOCKING=1), with per-kernel profiling when on.
#define OP_LAUNCH(name, expr)                                                       \
  do {                                                                              \
    if (!dry_) {                                                                    \
      if (profiling()) prof_begin(d_.stream);                                       \
      expr;                                                                         \
      if (profiling()) prof_end(name, d_.stream);                                   \
      const char* m_ = check_launch(name);                                          \
      if (*m_) return error(ErrorCode::kInternal, std::string("CUDA ") + m_);       \
    }                                                                               \
  } while (0)

namespace {
// Host checks of the step's ids, before anything launches.
Status check_tokens(const backend::StepPlan& p, int64_t rows) {
  for (size_t i = 0; i < p.tokens.size(); ++i)
    if (p.tokens[i] < 0 || p.tokens[i] >= rows)
      return error(ErrorCode::kInvalidTokenId, "token id " + std::to_string(p.tokens[i]) + " at position " +
                                                   std::to_string(i) + " is outside the embedding rows [0, " +
                                                   std::to_string(rows) + ")");
  return Status();
}

Status check_positions(const backend::StepPlan& p, int64_t rows) {
  for (size_t i = 0; i < p.positions.size(); ++i)
    if (p.positions[i] < 0 || p.positions[i] >= rows)
      return error(ErrorCode::kContextLengthExceeded, "position " + std::to_string(p.positions[i]) +
                                                          " is beyond the model's " + std::to_string(rows) +
                                                          " learned positions");
  return Status();
}
}  // namespace

// ---- public ops: skip after the first error, record errors ----

Tensor CudaOps::done(Result<Tensor> r) {
  if (r.ok()) return r.value();
  if (status_.ok()) status_ = r.status();
  return Tensor{};
}
void CudaOps::done(const Status& s) {
  if (!s.ok() && status_.ok()) status_ = s;
}

// Every op and its arguments go into the step's fingerprint: a captured graph is replayed
// only for a forward that issues the same op sequence (see OpsRecord::fingerprint).
namespace {
uint64_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
uint64_t bits(const Tensor& t) { return static_cast<uint64_t>(static_cast<uint32_t>(t.id)) << 32 ^ static_cast<uint64_t>(t.cols); }
}  // namespace

template <class... A>
void CudaOps::fp(A... a) {
  ((rec_.fingerprint = backend::chain_mix64(rec_.fingerprint ^ static_cast<uint64_t>(a))), ...);
}

Tensor CudaOps::embed(WeightId t, float scale) {
  fp(1, t, bits(scale));
  return status_.ok() ? done(embed_(t, scale)) : Tensor{};
}
Tensor CudaOps::embed_positions(WeightId t) {
  fp(2, t);
  return status_.ok() ? done(embed_positions_(t)) : Tensor{};
}
Tensor CudaOps::norm(Tensor x, const backend::Norm& n) {
  fp(3, bits(x), static_cast<int>(n.kind), n.w, n.b, bits(n.eps));
  return status_.ok() ? done(norm_(x, n)) : Tensor{};
}
Tensor CudaOps::linear(Tensor x, WeightId w, WeightId b) {
  fp(4, bits(x), w, b);
  return status_.ok() ? done(linear_(x, w, b)) : Tensor{};
}
void CudaOps::linear_add(Tensor x, WeightId w, Tensor r, WeightId b) {
  fp(5, bits(x), w, bits(r), b);
  if (status_.ok()) done(linear_add_(x, w, r, b));
}
Tensor CudaOps::linear_glu(Tensor x, WeightId w, Act a) {
  fp(6, bits(x), w, static_cast<int>(a));
  return status_.ok() ? done(linear_glu_(x, w, a)) : Tensor{};
}
Tensor CudaOps::activation(Tensor x, Act a) {
  fp(7, bits(x), static_cast<int>(a));
  return status_.ok() ? done(activation_(x, a)) : Tensor{};
}
void CudaOps::add(Tensor r, Tensor y) {
  fp(8, bits(r), bits(y));
  if (status_.ok()) done(add_(r, y));
}
Tensor CudaOps::attention(Tensor qkv, const AttentionSpec& a) {
  fp(9, bits(qkv), a.layer, a.n_heads, a.n_kv_heads, a.head_dim, bits(a.scale), bits(a.softcap), a.window, a.causal,
     a.q_norm, a.k_norm, bits(a.qk_eps), a.rope, a.rope_interleaved, a.rel_bias, a.rel_max, a.cross);
  return status_.ok() ? done(attention_(qkv, a)) : Tensor{};
}
void CudaOps::store_kv(Tensor kv, int layer) {
  fp(12, bits(kv), layer);
  if (status_.ok()) done(store_kv_(kv, layer));
}
void CudaOps::logits(Tensor x, const backend::Norm& fn, WeightId head, float softcap) {
  fp(10, bits(x), static_cast<int>(fn.kind), fn.w, fn.b, bits(fn.eps), head, bits(softcap));
  if (status_.ok()) done(logits_(x, fn, head, softcap));
}

void CudaOps::release(int64_t mark) {
  fp(11, mark);
  if (mark < 0 || mark >= static_cast<int64_t>(ts_.size())) return;
  top_ = ts_[static_cast<size_t>(mark)].arena_before;
  ts_.resize(static_cast<size_t>(mark));
}

// ---- arena, tensors, weights ----

Result<void*> CudaOps::alloc(size_t bytes) {
  const size_t off = (top_ + kAlign - 1) / kAlign * kAlign;
  top_ = off + std::max<size_t>(bytes, 1);
  rec_.arena_peak = std::max(rec_.arena_peak, top_);
  if (dry_) return static_cast<void*>(nullptr);
  if (top_ > d_.arena_bytes)
    return error(ErrorCode::kInternal, "CUDA activation arena overflow (" + std::to_string(top_) + " > " +
                                           std::to_string(d_.arena_bytes) + " bytes sized by the dry run)");
  return static_cast<void*>(d_.arena + off);
}

Result<int> CudaOps::new_tensor(int64_t rows, int64_t cols, DT dt) {
  if (rows <= 0 || cols <= 0 || cols > INT_MAX || rows > INT_MAX)
    return error(ErrorCode::kUnsupported, "--device cuda: tensor shape " + shape(rows, cols) + " not supported");
  TInfo t;
  t.rows = rows;
  t.cols = cols;
  t.dt = dt;
  t.arena_before = top_;
  BALLAST_ASSIGN_OR_RETURN(t.p, alloc(static_cast<size_t>(rows * cols) * (dt == DT::kF32 ? 4 : 2)));
  ts_.push_back(t);
  return static_cast<int>(ts_.size() - 1);
}

Result<int> CudaOps::get(Tensor t, const char* op) const {
  if (t.id < 0 || t.id >= static_cast<int>(ts_.size()) || ts_[t.id].rows != t.rows || ts_[t.id].cols != t.cols)
    return error(ErrorCode::kInternal, std::string(op) + ": tensor " + std::to_string(t.id) +
                                           " is not live (released by its Scope, or invalid)");
  if (ts_[t.id].clobbered)
    return error(ErrorCode::kInternal, std::string(op) + ": the qkv input of an attention op cannot be reused "
                                                         "(the CUDA backend rewrites it in place)");
  return t.id;
}

Result<const WeightRec*> CudaOps::matrix(WeightId w, const char* op) const {
  if (w < 0 || w >= static_cast<WeightId>(d_.weights.size()) || !d_.weights[w].matrix)
    return error(ErrorCode::kInternal, std::string(op) + ": weight " + std::to_string(w) + " is not a matrix of this backend");
  return &d_.weights[w];
}

Result<const float*> CudaOps::vec(WeightId w, int64_t n, const char* op) const {
  if (w == kNoWeight) return static_cast<const float*>(nullptr);
  if (w < 0 || w >= static_cast<WeightId>(d_.weights.size()) || d_.weights[w].matrix || d_.weights[w].rows != n)
    return error(ErrorCode::kInternal, std::string(op) + ": weight " + std::to_string(w) + " is not a vector of " +
                                           std::to_string(n) + " values");
  return static_cast<const float*>(d_.weights[w].p);
}

// ---- lazy states ----

Status CudaOps::materialize(int id) {
  TInfo& t = ts_[id];
  if (t.delta_pending) {
    OP_LAUNCH("add", add_rows(t.p, true, t.delta, false, nullptr, static_cast<int>(t.rows), static_cast<int>(t.cols),
                              d_.stream));
    t.delta_pending = false;
  }
  if (!t.ready) {
    const TInfo& s = ts_[t.norm_src];
    NormRowsArgs a{};
    a.x = s.p;
    a.x_f32 = s.dt == DT::kF32;
    a.rows = static_cast<int>(t.rows);
    a.cols = static_cast<int>(t.cols);
    a.w = t.norm_w;
    a.eps = t.eps;
    a.out = static_cast<bf16*>(t.p);
    OP_LAUNCH("rmsnorm", norm_rows(a, d_.stream));
    t.ready = true;
  }
  if (t.bias) {
    OP_LAUNCH("bias_add", bias_add_bf16(static_cast<bf16*>(t.p), t.bias, t.rows, static_cast<int>(t.cols), d_.stream));
    t.bias = nullptr;
  }
  return Status();
}

// Tensor `id` is about to change in place: pending norms that read it are computed from
// its current values first (only tensors created after it can read it).
Status CudaOps::before_write(int id) {
  for (size_t i = static_cast<size_t>(id) + 1; i < ts_.size(); ++i)
    if (!ts_[i].ready && ts_[i].norm_src == id) BALLAST_RETURN_IF_ERROR(materialize(static_cast<int>(i)));
  return materialize(id);
}

bool CudaOps::small(int64_t n, int64_t K) const {
  return n >= 1 && n <= gemv_route_max_tokens() && K % 8 == 0 && !d_.no_fused_gemv;
}

// The caller holds a Temps: an f32 operand is converted into a temporary.
Result<CudaOps::MatIn> CudaOps::mat_in(int id, int64_t K, bool may_fuse) {
  MatIn in;
  {
    const TInfo& t = ts_[id];
    if (may_fuse && !t.ready && t.norm_w && ts_[t.norm_src].dt == DT::kF32 && t.rows * K * 2 <= kMaxNormSmem) {
      in.xf = static_cast<const float*>(ts_[t.norm_src].p);
      in.norm_w = t.norm_w;
      in.eps = t.eps;
      in.xs_out = static_cast<bf16*>(t.p);
      in.fused = id;
      return in;
    }
  }
  BALLAST_RETURN_IF_ERROR(materialize(id));
  const TInfo& t = ts_[id];
  if (t.dt == DT::kBf16) {
    in.x = static_cast<const bf16*>(t.p);
    return in;
  }
  BALLAST_ASSIGN_OR_RETURN(void* tmp, alloc(static_cast<size_t>(t.rows * K) * 2));
  OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(t.p), t.rows * K, static_cast<bf16*>(tmp), d_.stream));
  in.x = static_cast<const bf16*>(tmp);
  return in;
}

namespace {
GemvArgs gemv_args(const WeightRec& w, int N, const bf16* x, const float* xf, const float* nw, float eps,
                   bf16* xs_out, int n, void* y) {
  GemvArgs a{};
  a.W = static_cast<const bf16*>(w.p);
  a.N = N;
  a.K = static_cast<int>(w.cols);
  a.X = x;
  a.xf = xf;
  a.norm_w = nw;
  a.eps = eps;
  a.offset = 0.0f;  // norm weights arrive with any offset applied
  a.n = n;
  a.Y = y;
  a.xs_out = xs_out;
  return a;
}
}  // namespace

// y (n, rows(w)) bf16 = X @ w^T, X plain or through the fused norm prologue.
Status CudaOps::gemm_into(const MatIn& in, const WeightRec& w, int n, bf16* y) {
  if (in.xf) {
    const GemvArgs a = gemv_args(w, static_cast<int>(w.rows), nullptr, in.xf, in.norm_w, in.eps, in.xs_out, n, y);
    OP_LAUNCH("gemv_norm", if (!gemv_small(a, GemvEpi::kStoreBf16, d_.stream)) return refused("linear"));
    ts_[in.fused].ready = true;
    return Status();
  }
  OP_LAUNCH("gemm", gemm_bf16(d_.blas, static_cast<const bf16*>(w.p), static_cast<int>(w.rows),
                              static_cast<int>(w.cols), in.x, n, y, d_.stream));
  return Status();
}

// ---- ops ----

Result<Tensor> CudaOps::embed_(WeightId table, float scale) {
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* w, matrix(table, "embed"));
  BALLAST_RETURN_IF_ERROR(check_tokens(*st_.plan, w->rows));
  rec_.embed_rows = w->rows;
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(st_.n, w->cols, DT::kF32));
  if (st_.n > gemv_route_max_tokens()) {
    // The residual's delta buffer for the whole step: linear_add leaves its product here
    // and the next norm adds and normalizes in one pass.
    BALLAST_ASSIGN_OR_RETURN(ts_[id].delta, alloc(static_cast<size_t>(st_.n * w->cols) * 2));
  }
  OP_LAUNCH("embed", cuda::embed(static_cast<const bf16*>(w->p), w->rows, static_cast<int>(w->cols), st_.tokens, st_.n,
                                 scale, static_cast<float*>(ts_[id].p), d_.flags, d_.stream));
  return Tensor{id, st_.n, w->cols};
}

Result<Tensor> CudaOps::embed_positions_(WeightId table) {
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* w, matrix(table, "embed_positions"));
  BALLAST_RETURN_IF_ERROR(check_positions(*st_.plan, w->rows));
  rec_.position_rows = w->rows;
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(st_.n, w->cols, DT::kF32));
  OP_LAUNCH("embed_positions", cuda::embed_positions(static_cast<const bf16*>(w->p), w->rows, static_cast<int>(w->cols),
                                               st_.pos, st_.n, static_cast<float*>(ts_[id].p), d_.flags, d_.stream));
  return Tensor{id, st_.n, w->cols};
}

Result<Tensor> CudaOps::norm_(Tensor x, const backend::Norm& n) {
  BALLAST_ASSIGN_OR_RETURN(int src, get(x, "norm"));
  BALLAST_ASSIGN_OR_RETURN(const float* w, vec(n.w, x.cols, "norm"));
  BALLAST_ASSIGN_OR_RETURN(const float* b, vec(n.b, x.cols, "norm"));
  if (ts_[src].delta_pending && n.kind == NormKind::kRms && w && !b) {
    // x += delta and the norm in one pass (the large-batch residual path).
    BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(x.rows, x.cols, DT::kBf16));
    TInfo& s = ts_[src];
    OP_LAUNCH("add_rmsnorm", add_rmsnorm(static_cast<float*>(s.p), static_cast<const bf16*>(s.delta), w,
                                         static_cast<int>(x.rows), static_cast<int>(x.cols), n.eps, 0.0f,
                                         static_cast<bf16*>(ts_[id].p), d_.stream));
    ts_[src].delta_pending = false;
    return Tensor{id, x.rows, x.cols};
  }
  BALLAST_RETURN_IF_ERROR(materialize(src));  // a lazy norm reads plain values
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(x.rows, x.cols, DT::kBf16));
  TInfo& t = ts_[id];
  if (n.kind == NormKind::kRms && w && !b) {
    t.ready = false;
    t.norm_src = src;
    t.norm_w = w;
    t.eps = n.eps;
    return Tensor{id, x.rows, x.cols};
  }
  const TInfo& s = ts_[src];
  NormRowsArgs a{};
  a.x = s.p;
  a.x_f32 = s.dt == DT::kF32;
  a.rows = static_cast<int>(x.rows);
  a.cols = static_cast<int>(x.cols);
  a.w = w;
  a.b = b;
  a.eps = n.eps;
  a.layer = n.kind == NormKind::kLayer;
  a.out = static_cast<bf16*>(t.p);
  OP_LAUNCH(a.layer ? "layernorm" : "rmsnorm", norm_rows(a, d_.stream));
  return Tensor{id, x.rows, x.cols};
}

Result<Tensor> CudaOps::linear_(Tensor x, WeightId wid, WeightId bias) {
  BALLAST_ASSIGN_OR_RETURN(int xi, get(x, "linear"));
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* w, matrix(wid, "linear"));
  if (x.cols != w->cols)
    return error(ErrorCode::kInternal, "linear: x " + shape(x.rows, x.cols) + " times weight " + shape(w->rows, w->cols));
  BALLAST_ASSIGN_OR_RETURN(const float* b, vec(bias, w->rows, "linear"));
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(x.rows, w->rows, DT::kBf16));
  Temps tmp(*this);
  BALLAST_ASSIGN_OR_RETURN(MatIn in, mat_in(xi, w->cols, small(x.rows, w->cols)));
  BALLAST_RETURN_IF_ERROR(gemm_into(in, *w, static_cast<int>(x.rows), static_cast<bf16*>(ts_[id].p)));
  ts_[id].bias = b;  // pending: attention fuses it, other consumers add it first
  return Tensor{id, x.rows, w->rows};
}

Status CudaOps::linear_add_(Tensor x, WeightId wid, Tensor residual, WeightId bias) {
  BALLAST_ASSIGN_OR_RETURN(int xi, get(x, "linear_add"));
  BALLAST_ASSIGN_OR_RETURN(int ri, get(residual, "linear_add"));
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* w, matrix(wid, "linear_add"));
  if (x.cols != w->cols || residual.rows != x.rows || residual.cols != w->rows)
    return error(ErrorCode::kInternal, "linear_add: x " + shape(x.rows, x.cols) + " times weight " +
                                           shape(w->rows, w->cols) + " into residual " + shape(residual.rows, residual.cols));
  BALLAST_ASSIGN_OR_RETURN(const float* b, vec(bias, w->rows, "linear_add"));
  BALLAST_RETURN_IF_ERROR(before_write(ri));  // x may be a pending norm of the residual
  Temps tmp(*this);
  const int n = static_cast<int>(x.rows), N = static_cast<int>(w->rows);
  const bool sm = small(n, w->cols);
  BALLAST_ASSIGN_OR_RETURN(MatIn in, mat_in(xi, w->cols, sm));
  if (sm && ts_[ri].dt == DT::kF32 && !b) {  // the residual add as the GEMV epilogue
    const GemvArgs a = gemv_args(*w, N, in.x, in.xf, in.norm_w, in.eps, in.xs_out, n, ts_[ri].p);
    OP_LAUNCH("gemv_residual", if (!gemv_small(a, GemvEpi::kAddF32, d_.stream)) return refused("linear_add"));
    if (in.fused >= 0) ts_[in.fused].ready = true;
    return Status();
  }
  TInfo& r = ts_[ri];
  if (r.delta && !r.delta_pending && r.dt == DT::kF32 && !b && r.rows == n && r.cols == N) {
    BALLAST_RETURN_IF_ERROR(gemm_into(in, *w, n, static_cast<bf16*>(r.delta)));
    ts_[ri].delta_pending = true;  // added by the next reader (fused into the next RMSNorm)
    return Status();
  }
  BALLAST_ASSIGN_OR_RETURN(void* y, alloc(static_cast<size_t>(n) * N * 2));
  BALLAST_RETURN_IF_ERROR(gemm_into(in, *w, n, static_cast<bf16*>(y)));
  OP_LAUNCH("add", add_rows(ts_[ri].p, ts_[ri].dt == DT::kF32, y, false, b, n, N, d_.stream));
  return Status();
}

Result<Tensor> CudaOps::linear_glu_(Tensor x, WeightId wid, Act act) {
  BALLAST_ASSIGN_OR_RETURN(int xi, get(x, "linear_glu"));
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* w, matrix(wid, "linear_glu"));
  if (x.cols != w->cols || w->rows % 2 != 0)
    return error(ErrorCode::kInternal, "linear_glu: x " + shape(x.rows, x.cols) + " times gate|up " + shape(w->rows, w->cols));
  const int n = static_cast<int>(x.rows), F = static_cast<int>(w->rows / 2);
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(n, F, DT::kBf16));
  Temps tmp(*this);
  const bool sm = small(n, w->cols);
  BALLAST_ASSIGN_OR_RETURN(MatIn in, mat_in(xi, w->cols, sm));
  if (sm && (act == Act::kSilu || act == Act::kGeluTanh)) {  // the GLU as the GEMV epilogue
    const GemvArgs a = gemv_args(*w, F, in.x, in.xf, in.norm_w, in.eps, in.xs_out, n, ts_[id].p);
    const GemvEpi epi = act == Act::kSilu ? GemvEpi::kSwiGlu : GemvEpi::kGeGlu;
    OP_LAUNCH("gemv_glu", if (!gemv_small(a, epi, d_.stream)) return refused("linear_glu"));
    if (in.fused >= 0) ts_[in.fused].ready = true;
    return Tensor{id, n, F};
  }
  BALLAST_ASSIGN_OR_RETURN(void* gu, alloc(static_cast<size_t>(n) * 2 * F * 2));
  BALLAST_RETURN_IF_ERROR(gemm_into(in, *w, n, static_cast<bf16*>(gu)));
  OP_LAUNCH("glu", glu(static_cast<const bf16*>(gu), n, F, act_code(act), static_cast<bf16*>(ts_[id].p), d_.stream));
  return Tensor{id, n, F};
}

Result<Tensor> CudaOps::activation_(Tensor x, Act act) {
  BALLAST_ASSIGN_OR_RETURN(int xi, get(x, "activation"));
  BALLAST_RETURN_IF_ERROR(materialize(xi));
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(x.rows, x.cols, DT::kBf16));
  const TInfo& t = ts_[xi];
  OP_LAUNCH("activation", cuda::activation(t.p, t.dt == DT::kF32, x.rows * x.cols, act_code(act),
                                           static_cast<bf16*>(ts_[id].p), d_.stream));
  return Tensor{id, x.rows, x.cols};
}

Status CudaOps::add_(Tensor residual, Tensor y) {
  BALLAST_ASSIGN_OR_RETURN(int ri, get(residual, "add"));
  BALLAST_ASSIGN_OR_RETURN(int yi, get(y, "add"));
  if (residual.rows != y.rows || residual.cols != y.cols)
    return error(ErrorCode::kInternal, "add: residual " + shape(residual.rows, residual.cols) + " += " + shape(y.rows, y.cols));
  BALLAST_RETURN_IF_ERROR(before_write(ri));
  const int n = static_cast<int>(y.rows), H = static_cast<int>(y.cols);
  const TInfo& t = ts_[yi];
  if (!t.ready && ts_[t.norm_src].dt == DT::kBf16 && ts_[ri].dt == DT::kF32) {  // residual += rmsnorm(delta) * w
    OP_LAUNCH("add_rmsnorm_delta", add_rmsnorm_delta(static_cast<float*>(ts_[ri].p),
                                                     static_cast<const bf16*>(ts_[t.norm_src].p), t.norm_w, n, H,
                                                     t.eps, d_.stream));
    return Status();
  }
  if (!t.ready) BALLAST_RETURN_IF_ERROR(materialize(yi));
  // A pending bias of y is added here, in the same pass (y itself keeps it pending).
  const TInfo& u = ts_[yi];
  OP_LAUNCH("add", add_rows(ts_[ri].p, ts_[ri].dt == DT::kF32, u.p, u.dt == DT::kF32, u.bias, n, H, d_.stream));
  return Status();
}

Result<Tensor> CudaOps::attention_(Tensor qkv, const AttentionSpec& a) {
  auto unsupported = [](const std::string& what) {
    return error(ErrorCode::kUnsupported, "--device cuda: " + what + " is not implemented on the GPU yet");
  };
  if (a.softcap > 0) return unsupported("attention logit soft-capping");
  BALLAST_ASSIGN_OR_RETURN(int qi, get(qkv, "attention"));
  const auto& kv = d_.kv;
  if (a.layer < 0 || a.layer >= kv.n_layers || a.n_kv_heads != kv.n_kv_heads || a.head_dim != kv.head_dim)
    return error(ErrorCode::kInternal, "attention: layer " + std::to_string(a.layer) + " with " +
                                           std::to_string(a.n_kv_heads) + " kv heads of " + std::to_string(a.head_dim) +
                                           " does not match the KV pool");
  const int nh = a.n_heads, nkv = a.n_kv_heads, hd = a.head_dim;
  if (nh <= 0 || nkv <= 0 || nh % nkv != 0 || hd % 2 != 0 || hd > 256)
    return error(ErrorCode::kUnsupported, "--device cuda: attention with " + std::to_string(nh) + " heads, " +
                                              std::to_string(nkv) + " kv heads, head_dim " + std::to_string(hd) +
                                              " not supported (head_dim even and <= 256)");
  const int64_t want_cols = static_cast<int64_t>(a.cross ? nh : nh + 2 * nkv) * hd;
  if (qkv.cols != want_cols)
    return error(ErrorCode::kInternal, "attention: input has " + std::to_string(qkv.cols) + " columns, expected " +
                                           std::to_string(want_cols));
  const float* rel = nullptr;
  if (a.rel_bias != kNoWeight) {
    if (a.rel_max < 0 || a.rel_max > (1 << 20))
      return error(ErrorCode::kInternal, "attention: relative bias distance " + std::to_string(a.rel_max) + " out of range");
    BALLAST_ASSIGN_OR_RETURN(rel, vec(a.rel_bias, static_cast<int64_t>(nh) * (2 * a.rel_max + 1), "attention relative bias"));
  }
  if (a.cross) return cross_attention_(qi, a, rel);
  BALLAST_ASSIGN_OR_RETURN(const float* qn, vec(a.q_norm, hd, "attention q_norm"));
  BALLAST_ASSIGN_OR_RETURN(const float* kn, vec(a.k_norm, hd, "attention k_norm"));
  const RopeRec* rope = nullptr;
  if (a.rope >= 0) {
    if (a.rope >= static_cast<int>(d_.ropes.size()))
      return error(ErrorCode::kInternal, "attention: rope table " + std::to_string(a.rope) + " unknown");
    rope = &d_.ropes[a.rope];
    if (2 * rope->n_half > hd)
      return error(ErrorCode::kInvalidArgument, "attention: rope table of " + std::to_string(rope->n_half) +
                                                    " frequencies for head_dim " + std::to_string(hd));
  }
  // qkv_post rewrites a bf16 qkv in place (pending norms reading it go first; its own
  // pending bias is fused into qkv_post); an f32 qkv is processed in a bf16 copy.
  const bool in_place = ts_[qi].dt == DT::kBf16;
  if (in_place)
    for (size_t i = static_cast<size_t>(qi) + 1; i < ts_.size(); ++i)
      if (!ts_[i].ready && ts_[i].norm_src == qi) BALLAST_RETURN_IF_ERROR(materialize(static_cast<int>(i)));
  if (!ts_[qi].ready) BALLAST_RETURN_IF_ERROR(materialize(qi));
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(st_.n, static_cast<int64_t>(nh) * hd, DT::kBf16));
  Temps tmp(*this);
  bf16* q = static_cast<bf16*>(ts_[qi].p);
  if (!in_place) {
    BALLAST_ASSIGN_OR_RETURN(void* c, alloc(static_cast<size_t>(st_.n * qkv.cols) * 2));
    OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(ts_[qi].p), st_.n * qkv.cols, static_cast<bf16*>(c), d_.stream));
    q = static_cast<bf16*>(c);
  }
  QkvPostArgs qa{};
  qa.qkv = q;
  qa.n = st_.n;
  qa.n_heads = nh;
  qa.n_kv = nkv;
  qa.hd = hd;
  qa.bias = in_place ? ts_[qi].bias : nullptr;
  qa.q_norm = qn;
  qa.k_norm = kn;
  qa.eps = a.qk_eps;
  qa.norm_offset = 0.0f;
  qa.pos = st_.pos;
  qa.inv_freq = rope ? rope->inv_freq : nullptr;
  qa.rot_dims = rope ? 2 * rope->n_half : 0;
  qa.interleaved = a.rope_interleaved;
  if (rope) {
    qa.inv_freq_long = rope->inv_freq_long;
    qa.rope_len = st_.rope_len;
    qa.long_after = rope->long_after;
    qa.rope_scale = rope->scale;
  }
  qa.slot = st_.slot;
  qa.n_slots = d_.n_blocks * backend::kKvBlockTokens;
  qa.k_cache = d_.k_cache[a.layer];
  qa.v_cache = d_.v_cache[a.layer];
  qa.flags = d_.flags;
  OP_LAUNCH("qkv_post", qkv_post(qa, d_.stream));
  if (in_place) {
    ts_[qi].bias = nullptr;
    ts_[qi].clobbered = true;
  }
  BALLAST_RETURN_IF_ERROR(attend_(a, q, static_cast<bf16*>(ts_[id].p), d_.k_cache[a.layer], d_.v_cache[a.layer], rel));
  return Tensor{id, st_.n, static_cast<int64_t>(nh) * hd};
}

// Cross-attention: queries only (n, n_heads * hd), no rope or norm, nothing written; every
// query of a sequence row sees its cross_len[row] encoder keys through the cross tables.
Result<Tensor> CudaOps::cross_attention_(int qi, const AttentionSpec& a, const float* rel) {
  if (st_.cross_max_blocks <= 0 || !st_.cross_len || !st_.cross_bt)
    return error(ErrorCode::kInternal, "attention: cross-attention in a step without cross tables");
  const int nh = a.n_heads, hd = a.head_dim, qd = nh * hd;
  BALLAST_RETURN_IF_ERROR(materialize(qi));  // a pending norm, residual delta or bias
  BALLAST_ASSIGN_OR_RETURN(int id, new_tensor(st_.n, qd, DT::kBf16));
  Temps tmp(*this);
  const bf16* q = static_cast<const bf16*>(ts_[qi].p);
  if (ts_[qi].dt == DT::kF32) {
    BALLAST_ASSIGN_OR_RETURN(void* c, alloc(static_cast<size_t>(st_.n) * qd * 2));
    OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(ts_[qi].p), static_cast<int64_t>(st_.n) * qd,
                                 static_cast<bf16*>(c), d_.stream));
    q = static_cast<const bf16*>(c);
  }
  AttnArgs aa{};
  aa.qkv = q;
  aa.q_ld = qd;
  aa.k_cache = d_.k_cache[a.layer];
  aa.v_cache = d_.v_cache[a.layer];
  aa.pos = st_.pos;
  aa.seq_slot = st_.seq;
  aa.block_table = st_.cross_bt;
  aa.max_blocks = st_.cross_max_blocks;
  aa.kv_len = st_.cross_len;
  aa.n_blocks = d_.n_blocks;
  aa.n = st_.n;
  aa.n_heads = nh;
  aa.n_kv = a.n_kv_heads;
  aa.hd = hd;
  aa.scale = static_cast<float>(a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(hd)));
  aa.rel_bias = rel;
  aa.rel_max = rel ? a.rel_max : 0;
  aa.max_ctx = st_.cross_max_blocks * static_cast<int>(backend::kKvBlockTokens);  // scores buffer >= any cross length
  aa.out = static_cast<bf16*>(ts_[id].p);
  aa.flags = d_.flags;
  OP_LAUNCH("attention_rows", attention_rows(aa, d_.stream));
  return Tensor{id, st_.n, static_cast<int64_t>(qd)};
}

// store_kv: kv (n, 2 kd) [k heads | v heads] into `layer`'s cache at the step's slots.
Status CudaOps::store_kv_(Tensor kv, int layer) {
  BALLAST_ASSIGN_OR_RETURN(int ki, get(kv, "store_kv"));
  const int64_t kd = d_.kv.row();
  if (layer < 0 || layer >= d_.kv.n_layers || kv.cols != 2 * kd || kv.rows != st_.n)
    return error(ErrorCode::kInternal, "store_kv: layer " + std::to_string(layer) + " / " + shape(kv.rows, kv.cols) +
                                           " does not match the KV pool");
  BALLAST_RETURN_IF_ERROR(materialize(ki));  // a pending norm, residual delta or bias
  Temps tmp(*this);
  const bf16* x = static_cast<const bf16*>(ts_[ki].p);
  if (ts_[ki].dt == DT::kF32) {
    BALLAST_ASSIGN_OR_RETURN(void* c, alloc(static_cast<size_t>(st_.n) * 2 * kd * 2));
    OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(ts_[ki].p), static_cast<int64_t>(st_.n) * 2 * kd,
                                 static_cast<bf16*>(c), d_.stream));
    x = static_cast<const bf16*>(c);
  }
  OP_LAUNCH("store_kv", store_kv_rows(x, st_.n, static_cast<int>(d_.kv.n_kv_heads), static_cast<int>(d_.kv.head_dim),
                                      st_.slot, d_.n_blocks * backend::kKvBlockTokens, d_.k_cache[layer],
                                      d_.v_cache[layer], d_.flags, d_.stream));
  return Status();
}

// Attention over the cache: runs of >= 16 consecutive positions
// of a sequence to the tensor-core prefill kernel (64-row tiles), the remaining rows to
// flash-decoding (<= 32 rows: splits over keys for latency) or the row kernel. Non-causal
// attention and a relative-position bias: every row to the row kernel (the only one that
// implements them).
Status CudaOps::attend_(const AttentionSpec& a, const bf16* qkv, bf16* out, const bf16* k, const bf16* v,
                        const float* rel) {
  const int nh = a.n_heads, nkv = a.n_kv_heads, hd = a.head_dim;
  AttnArgs aa{};
  aa.qkv = qkv;
  aa.k_cache = k;
  aa.v_cache = v;
  aa.pos = st_.pos;
  aa.seq_slot = st_.seq;
  aa.block_table = st_.bt;
  aa.max_blocks = st_.max_blocks;
  aa.n_blocks = d_.n_blocks;
  aa.n = st_.n;
  aa.n_heads = nh;
  aa.n_kv = nkv;
  aa.hd = hd;
  aa.scale = static_cast<float>(a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(hd)));
  aa.window = a.window;
  aa.max_ctx = st_.max_ctx;
  aa.out = out;
  aa.flags = d_.flags;
  if (!a.causal || rel) {
    aa.kv_len = a.causal ? nullptr : st_.span;  // the sequence's span: [0, last position in this step]
    aa.rel_bias = rel;
    aa.rel_max = rel ? a.rel_max : 0;
    OP_LAUNCH("attention_rows", attention_rows(aa, d_.stream));
    return Status();
  }
  int rows = st_.n;
  const int32_t* row_ids = nullptr;
  if (st_.n_tiles > 0 && (hd == 64 || hd == 128 || hd == 256)) {
    OP_LAUNCH("attention_prefill", attention_prefill(aa, st_.tiles, st_.n_tiles, d_.stream));
    rows = st_.n_rows;
    row_ids = st_.row_ids;
  }
  if (rows == 0) return Status();
  AttnArgs ar = aa;
  ar.n = rows;
  ar.row_ids = row_ids;
  int splits = 0;
  if (rows <= 32 && !d_.no_decode_attn && attention_decode_supported(hd, nh, nkv))
    splits = attention_decode_splits(rows, nkv, st_.max_ctx);
  if (splits == 0) {
    OP_LAUNCH("attention_rows", attention_rows(ar, d_.stream));
    return Status();
  }
  float *po = nullptr, *pml = nullptr;
  if (splits > 1) {
    const size_t part = static_cast<size_t>(rows) * nh * splits;
    BALLAST_ASSIGN_OR_RETURN(void* p, alloc(part * (hd + 2) * 4));
    po = static_cast<float*>(p);
    pml = po ? po + part * hd : nullptr;
    const size_t need = static_cast<size_t>(rows) * nkv;
    rec_.counters = std::max(rec_.counters, need);
    if (!dry_ && need > d_.n_counters)
      return error(ErrorCode::kInternal, "attention: decode split counters sized for fewer rows than this step");
  }
  OP_LAUNCH("attention_decode", attention_decode(ar, splits, po, pml, d_.counters, d_.stream));
  return Status();
}

Status CudaOps::logits_(Tensor x, const backend::Norm& fn, WeightId head, float softcap) {
  if (rec_.logits_called) return error(ErrorCode::kInternal, "logits: called twice in one step");
  rec_.logits_called = true;
  BALLAST_ASSIGN_OR_RETURN(int xi, get(x, "logits"));
  BALLAST_ASSIGN_OR_RETURN(const WeightRec* h, matrix(head, "logits"));
  if (x.cols != h->cols)
    return error(ErrorCode::kInternal, "logits: x " + shape(x.rows, x.cols) + " times head " + shape(h->rows, h->cols));
  BALLAST_ASSIGN_OR_RETURN(const float* w, vec(fn.w, x.cols, "logits final norm"));
  BALLAST_ASSIGN_OR_RETURN(const float* b, vec(fn.b, x.cols, "logits final norm"));
  rec_.logits_cols = h->rows;
  const int m = st_.m, K = static_cast<int>(x.cols), V = static_cast<int>(h->rows);
  if (m == 0) return Status();
  if (!dry_ && static_cast<size_t>(m) * V > d_.logits_elems)
    return error(ErrorCode::kInternal, "logits: the logits buffer was sized for fewer rows");
  BALLAST_RETURN_IF_ERROR(materialize(xi));
  Temps tmp(*this);
  const TInfo& t = ts_[xi];
  const int32_t* idx = st_.gather ? st_.lidx : nullptr;
  const bf16* sel = nullptr;
  if (w || b || t.dt == DT::kF32) {
    // The final norm over the logits rows only (no norm: an f32 -> bf16 row copy).
    BALLAST_ASSIGN_OR_RETURN(void* o, alloc(static_cast<size_t>(m) * K * 2));
    NormRowsArgs a{};
    a.x = t.p;
    a.x_f32 = t.dt == DT::kF32;
    a.idx = idx;
    a.rows = m;
    a.cols = K;
    a.w = w;
    a.b = b;
    a.eps = fn.eps;
    a.layer = fn.kind == NormKind::kLayer;
    a.out = static_cast<bf16*>(o);
    if (w || b) {
      OP_LAUNCH("final_norm", norm_rows(a, d_.stream));
    } else if (idx) {  // f32 rows without a norm: convert all rows, then gather
      BALLAST_ASSIGN_OR_RETURN(void* all, alloc(static_cast<size_t>(t.rows) * K * 2));
      OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(t.p), t.rows * K, static_cast<bf16*>(all), d_.stream));
      OP_LAUNCH("gather_rows", gather_rows(static_cast<const bf16*>(all), K, idx, m, a.out, d_.stream));
    } else {
      OP_LAUNCH("to_bf16", to_bf16(static_cast<const float*>(t.p), static_cast<int64_t>(m) * K, a.out, d_.stream));
    }
    sel = a.out;
  } else if (idx) {
    BALLAST_ASSIGN_OR_RETURN(void* o, alloc(static_cast<size_t>(m) * K * 2));
    OP_LAUNCH("gather_rows", gather_rows(static_cast<const bf16*>(t.p), K, idx, m, static_cast<bf16*>(o), d_.stream));
    sel = static_cast<const bf16*>(o);
  } else {
    sel = static_cast<const bf16*>(t.p);
  }
  OP_LAUNCH("lm_head", gemm_bf16_f32out(d_.blas, static_cast<const bf16*>(h->p), V, K, sel, m, d_.logits, d_.stream));
  if (softcap > 0) OP_LAUNCH("logit_softcap", softcap_f32(d_.logits, static_cast<int64_t>(m) * V, softcap, d_.stream));
  return Status();
}

}  // namespace ballast::cuda

#endif  // BALLAST_HAVE_CUDA
