// cuBLAS through dlopen (see cublas_api.h).
#include "backend/cuda/cublas_api.h"

#include <dlfcn.h>

#include <mutex>

#ifndef BALLAST_CUBLAS_DIR
#define BALLAST_CUBLAS_DIR ""
#endif

namespace ballast::cuda {
namespace {

struct Api {
  decltype(&cublasCreate) create = nullptr;
  decltype(&cublasDestroy) destroy = nullptr;
  decltype(&cublasSetStream) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSetWorkspace) set_workspace = nullptr;
  // The C symbol (C++ also sees an overload taking cudaDataType as the compute type).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  bool ok = false;
  std::string err;
};

template <class F>
bool bind(void* lib, const char* name, F* out, std::string& err) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) err = std::string("cuBLAS: symbol ") + name + " not found";
  return *out != nullptr;
}

const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    // The major version this build was compiled against (the ABI), then the unversioned name.
    const std::string versioned = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    // The loader's search path first (LD_LIBRARY_PATH, ld.so.conf), then the toolkit this
    // build used and the usual toolkit locations.
    void* lib = nullptr;
    for (std::string dir : {std::string(), std::string(BALLAST_CUBLAS_DIR), std::string("/usr/local/cuda/lib64"),
                            std::string("/usr/local/cuda/lib")}) {
      if (!dir.empty() && dir.back() != '/') dir += '/';
      lib = dlopen((dir + versioned).c_str(), RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
    }
    if (!lib) lib = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      a.err = "cannot load " + versioned + (e ? std::string(": ") + e : std::string());
      return;
    }
    // cublas_v2.h maps these names to their _v2 symbols.
    a.ok = bind(lib, "cublasCreate_v2", &a.create, a.err) && bind(lib, "cublasDestroy_v2", &a.destroy, a.err) &&
           bind(lib, "cublasSetStream_v2", &a.set_stream, a.err) &&
           bind(lib, "cublasSetMathMode", &a.set_math_mode, a.err) &&
           bind(lib, "cublasSetWorkspace_v2", &a.set_workspace, a.err) && bind(lib, "cublasGemmEx", &a.gemm_ex, a.err);
  });
  return a;
}

}  // namespace

bool cublas_load(std::string* err) {
  const Api& a = api();
  if (!a.ok && err) *err = a.err;
  return a.ok;
}

cublasStatus_t blas_create(cublasHandle_t* h) {
  return cublas_load() ? api().create(h) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t blas_destroy(cublasHandle_t h) {
  return cublas_load() ? api().destroy(h) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t s) {
  return cublas_load() ? api().set_stream(h, s) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t blas_set_math_mode(cublasHandle_t h, cublasMath_t mode) {
  return cublas_load() ? api().set_math_mode(h, mode) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t blas_set_workspace(cublasHandle_t h, void* ws, size_t bytes) {
  return cublas_load() ? api().set_workspace(h, ws, bytes) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t blas_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType at, int lda, const void* b,
                            cudaDataType bt, int ldb, const void* beta, void* c, cudaDataType ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  if (!cublas_load()) return CUBLAS_STATUS_NOT_INITIALIZED;
  return api().gemm_ex(h, ta, tb, m, n, k, alpha, a, at, lda, b, bt, ldb, beta, c, ct, ldc, compute, algo);
}

}  // namespace ballast::cuda
