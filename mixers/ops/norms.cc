// LayerNorm and RMSNorm over the last dim, forward and backward. Saved for backward: mean and rstd per row.
#include <cmath>
#include <vector>

#include "mixers/ops/ops.h"
#include "mixers/ops/row_block_sums.h"

namespace mixlab {

void LayerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                      int64_t n, int64_t d, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float s = 0, ss = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += xi[j];
    const float m = s / float(d);
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += (xi[j] - m) * (xi[j] - m);
    const float r = 1.0f / std::sqrt(ss / float(d) + eps);
    float* yi = y + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - m) * r * gamma[j] + beta[j];
    mean[i] = m;
    rstd[i] = r;
  }
}

void LayerNormBackward(const float* x, const float* gamma, const float* mean, const float* rstd, const float* dy,
                       float* dx, float* dgamma, float* dbeta, int64_t n, int64_t d) {
  // One pass over the rows: dx, and the parameter gradients [dgamma | dbeta] summed by row blocks (deterministic).
  std::vector<float> sums(2 * d, 0.0f);
  AddRowBlockSums(n, 2 * d, sums.data(), [&](int64_t i, float* acc) {
    const float* xi = x + i * d;
    const float* gi = dy + i * d;
    const float m = mean[i], r = rstd[i];
    float sum_g = 0, sum_gx = 0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t j = 0; j < d; ++j) {
      const float g = gi[j] * gamma[j];
      sum_g += g;
      sum_gx += g * (xi[j] - m) * r;
    }
    sum_g /= float(d);
    sum_gx /= float(d);
    float* dxi = dx + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      const float xhat = (xi[j] - m) * r;
      acc[j] += gi[j] * xhat;
      acc[d + j] += gi[j];
      dxi[j] = r * (gi[j] * gamma[j] - sum_g - xhat * sum_gx);  // last: dx may be dy
    }
  });
  AddColumnSums(sums.data(), 1, d, dgamma);
  AddColumnSums(sums.data() + d, 1, d, dbeta);
}

void RMSNormForward(const float* x, const float* gamma, float* y, float* rstd, int64_t n, int64_t d, float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / float(d) + eps);
    float* yi = y + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) yi[j] = xi[j] * r * gamma[j];
    rstd[i] = r;
  }
}

void RMSNormBackward(const float* x, const float* gamma, const float* rstd, const float* dy, float* dx, float* dgamma,
                     int64_t n, int64_t d) {
  AddRowBlockSums(n, d, dgamma, [&](int64_t i, float* acc) {
    const float* xi = x + i * d;
    const float* gi = dy + i * d;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < d; ++j) dot += gi[j] * gamma[j] * xi[j];
    const float r = rstd[i];
    const float c = dot * r * r / d;
    float* dxi = dx + i * d;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) {
      acc[j] += gi[j] * xi[j] * r;
      dxi[j] = r * (gi[j] * gamma[j] - xi[j] * c);  // last: dx may be dy
    }
  });
}

}  // namespace mixlab
