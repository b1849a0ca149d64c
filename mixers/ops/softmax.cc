// Row softmax and the losses built on it: plain softmax (forward/backward) and masked cross-entropy.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

#include "mixers/ops/ops.h"

namespace mixlab {

void SoftmaxForward(const float* x, float* y, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * d;
    float* yi = y + i * d;
    const Eigen::Map<const Eigen::ArrayXf> xr(xi, d);
    Eigen::Map<Eigen::ArrayXf> yr(yi, d);
    yr = (xr - xr.maxCoeff()).exp();
    for (int64_t j = 0; j < d; ++j)  // Eigen's exp floors at 2.9e-39; masked (-inf) entries must be exactly 0
      if (xi[j] == -std::numeric_limits<float>::infinity()) yi[j] = 0.0f;
    yr *= 1.0f / yr.sum();
  }
}

void SoftmaxBackward(const float* y, const float* dy, float* dx, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* yi = y + i * d;
    const float* gi = dy + i * d;
    float dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < d; ++j) dot += yi[j] * gi[j];
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) dx[i * d + j] = yi[j] * (gi[j] - dot);
  }
}

float MaskTotal(const float* mask, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += mask[i];
  return float(std::max(total, 1.0));
}

float CrossEntropyForward(const float* logits, const int32_t* targets, const float* mask, float* probs, int64_t n,
                          int64_t v, float normalizer) {
  SoftmaxForward(logits, probs, n, v);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i)
    if (mask[i] != 0) loss -= mask[i] * std::log(std::max(probs[i * v + targets[i]], 1e-30f));
  return float(loss / (normalizer > 0 ? normalizer : MaskTotal(mask, n)));
}

void CrossEntropyBackward(const float* probs, const int32_t* targets, const float* mask, float* dlogits, int64_t n,
                          int64_t v, float normalizer) {
  const float norm = 1.0f / (normalizer > 0 ? normalizer : MaskTotal(mask, n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float w = mask[i] * norm;
    float* di = dlogits + i * v;
    const float* pi = probs + i * v;
    for (int64_t j = 0; j < v; ++j) di[j] = w * pi[j];
    di[targets[i]] -= w;
  }
}

}  // namespace mixlab
