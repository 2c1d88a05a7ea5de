// cuBLAS entry points the CUDA backend uses, loaded with dlopen on first use: a binary
// linked against cuBLAS maps it and cuBLASLt at start (~150 MB resident on every run, CPU
// runs included), so they are loaded only when a CUDA backend is created.
#pragma once
#include <cublas_v2.h>

#include <string>

namespace ballast::cuda {

// True once cuBLAS is loaded (loads it on the first call); false with `err` set when the
// library or one of its symbols is missing.
bool cublas_load(std::string* err = nullptr);

cublasStatus_t blas_create(cublasHandle_t* h);
cublasStatus_t blas_destroy(cublasHandle_t h);
cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t blas_set_math_mode(cublasHandle_t h, cublasMath_t mode);
cublasStatus_t blas_set_workspace(cublasHandle_t h, void* ws, size_t bytes);
cublasStatus_t blas_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType at, int lda, const void* b,
                            cudaDataType bt, int ldb, const void* beta, void* c, cudaDataType ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo);

}  // namespace ballast::cuda
