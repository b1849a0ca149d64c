// Matrix products through oneDNN's sgemm (its jit GEMM, called directly: no primitive to create per shape, which
// matters for the MoE, whose expert products change shape every step).
//
//   C (M, N) = op(A) op(B) (+ C),  op(X) = X or X^T, all row-major with leading dims = cols.
//
// Parallel inside (OpenMP): call it outside parallel regions.
//
// Linear layers use the three products below: forward y = x W, backward dx = dy W^T, dW += x^T dy (the last through
// AddWeightGradient, written for that shape: docs/bench/optimizations.md).
#pragma once
#include <cstdint>

#include "mixers/ops/weight_gradient.h"

namespace mixlab {

void Gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
          bool accumulate);

// y (N, out) = x (N, in) W (in, out)
inline void LinearForward(const float* x, const float* W, float* y, int64_t n, int64_t in, int64_t out) {
  Gemm(false, false, n, out, in, x, W, y, false);
}
// dx (N, in) (=|+=) dy (N, out) W^T ;  dW (in, out) += x^T dy
inline void LinearBackward(const float* x, const float* W, const float* dy, float* dx, float* dW, int64_t n, int64_t in,
                           int64_t out, bool accumulate_dx = false) {
  if (dx) Gemm(false, true, n, in, out, dy, W, dx, accumulate_dx);
  AddWeightGradient(x, dy, dW, n, in, out);
}

// Bias gradient: db (cols) += sum over rows of dy (rows, cols), row by row (Eigen's colwise().sum() on a row-major
// matrix walks it column by column).
inline void AddColumnSums(const float* dy, int64_t rows, int64_t cols, float* db) {
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = dy + i * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) db[j] += row[j];
  }
}

}  // namespace mixlab
