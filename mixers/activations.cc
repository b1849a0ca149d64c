// GELU (tanh approximation) and SwiGLU, forward and backward. Both recompute from their input in backward.
#include <cmath>

#include "mixers/ops.h"

namespace mixlab {
namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

void GeluForward(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

void GeluBackward(const float* x, const float* dy, float* dx, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float u = kSqrt2OverPi * (v + 0.044715f * v * v * v);
    const float t = std::tanh(u);
    const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * v * v);
    dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
  }
}

void SwiGLUForward(const float* h, float* y, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* a = h + i * 2 * f;
    const float* b = a + f;
    for (int64_t j = 0; j < f; ++j) y[i * f + j] = a[j] * Sigmoid(a[j]) * b[j];
  }
}

void SwiGLUBackward(const float* h, const float* dy, float* dh, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* a = h + i * 2 * f;
    const float* b = a + f;
    float* da = dh + i * 2 * f;
    float* db = da + f;
    for (int64_t j = 0; j < f; ++j) {
      const float s = Sigmoid(a[j]);
      const float g = dy[i * f + j];
      db[j] = g * a[j] * s;
      da[j] = g * b[j] * s * (1.0f + a[j] * (1.0f - s));
    }
  }
}

}  // namespace mixlab
