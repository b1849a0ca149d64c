// GELU (tanh approximation) and SwiGLU, forward and backward. Both recompute from their input in backward.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "mixers/ops.h"

namespace mixlab {
namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

// Both GELU passes run over blocks of Eigen arrays: Eigen's tanh is a vectorised rational approximation,
// where the libm call it replaces was a third of a training step.
namespace {
constexpr int64_t kBlock = 4096;
using ConstArray = Eigen::Map<const Eigen::ArrayXf>;
using Array = Eigen::Map<Eigen::ArrayXf>;

void GeluBlock(const float* x, float* y, int64_t m) {
  ConstArray v(x, m);
  Array(y, m) = 0.5f * v * (1.0f + (kSqrt2OverPi * (v + 0.044715f * v.cube())).tanh());
}

void GeluBackwardBlock(const float* x, const float* dy, float* dx, int64_t m) {
  ConstArray v(x, m);
  const Eigen::ArrayXf t = (kSqrt2OverPi * (v + 0.044715f * v.cube())).tanh();
  const auto du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * v.square());
  Array(dx, m) = ConstArray(dy, m) * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t.square()) * du);
}
}  // namespace

void GeluForward(const float* x, float* y, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; b += kBlock) GeluBlock(x + b, y + b, std::min(kBlock, n - b));
}

void GeluBackward(const float* x, const float* dy, float* dx, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; b += kBlock) GeluBackwardBlock(x + b, dy + b, dx + b, std::min(kBlock, n - b));
}

void BiasGeluForward(float* h, const float* bias, float* a, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    float* row = h + i * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) row[j] += bias[j];
    GeluBlock(row, a + i * cols, cols);
  }
}

void BiasGeluBackward(const float* h, const float* da, float* dh, float* dbias, int64_t rows, int64_t cols) {
  // Column sums over fixed chunks of rows, added in chunk order: the same result for any number of threads.
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (rows + kChunk - 1) / kChunk;
  std::vector<float> partial(chunks * cols, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    float* sum = partial.data() + c * cols;
    for (int64_t i = c * kChunk; i < std::min(rows, (c + 1) * kChunk); ++i) {
      GeluBackwardBlock(h + i * cols, da + i * cols, dh + i * cols, cols);
      const float* row = dh + i * cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) sum[j] += row[j];
    }
  }
  for (int64_t c = 0; c < chunks; ++c)
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dbias[j] += partial[c * cols + j];
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
