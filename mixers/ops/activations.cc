// GELU (tanh approximation) and SwiGLU, forward and backward. Both recompute from their input in backward.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/ops/row_block_sums.h"
#include "mixers/ops/sigmoid.h"

namespace mixlab {
namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;
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

// tanh is kept for two uses, in a stack block of kTanhBlock values (no heap allocation per call).
void GeluBackwardBlock(const float* x, const float* dy, float* dx, int64_t m) {
  constexpr int64_t kTanhBlock = 256;
  Eigen::Array<float, kTanhBlock, 1> tanh_block;
  for (int64_t i = 0; i < m; i += kTanhBlock) {
    const int64_t n = std::min(kTanhBlock, m - i);
    ConstArray v(x + i, n);
    auto t = tanh_block.head(n);
    t = (kSqrt2OverPi * (v + 0.044715f * v.cube())).tanh();
    const auto du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * v.square());
    Array(dx + i, n) = ConstArray(dy + i, n) * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t.square()) * du);
  }
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
  AddRowBlockSums(rows, cols, dbias, [&](int64_t i, float* acc) {
    GeluBackwardBlock(h + i * cols, da + i * cols, dh + i * cols, cols);
    AddColumnSums(dh + i * cols, 1, cols, acc);
  });
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
