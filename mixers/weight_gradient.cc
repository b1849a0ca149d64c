#include "mixers/weight_gradient.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "mixers/small_gemm.h"

namespace mixlab {
namespace {

using small_gemm_detail::Load;
using small_gemm_detail::Store;
using small_gemm_detail::Vec8;

constexpr int64_t kBlock = 256;  // tokens per packed block: a 16-column dy panel is then 16 KB, half of L1
constexpr int64_t kRows = 6, kCols = 16;
// One x panel holds kBlock x 6 floats; the 8 spare floats take the 8-wide stores of the packing loop's last row.
constexpr int64_t kPanelSize = kBlock * kRows + 8;

// Panel p of x rows [k0, k0 + kb): columns [6p, 6p + 6) of x, token-major; columns past `in` are zeros.
void PackXPanel(const float* x, int64_t in, int64_t k0, int64_t kb, int64_t p, float* panel) {
  const int64_t i0 = p * kRows, cols = std::min(kRows, in - i0);
  const float* src = x + k0 * in + i0;
  if (i0 + 8 <= in) {  // 8-wide copies; the 2 extra floats are overwritten by the next row (or land in the spare)
    for (int64_t k = 0; k < kb; ++k) Store(panel + k * kRows, Load(src + k * in));
    return;
  }
  for (int64_t k = 0; k < kb; ++k)
    for (int64_t r = 0; r < kRows; ++r) panel[k * kRows + r] = r < cols ? src[k * in + r] : 0.0f;
}

// Columns [j0, j0 + 16) of dy rows [k0, k0 + kb), token-major; columns past `out` are zeros.
void PackDyPanel(const float* dy, int64_t out, int64_t k0, int64_t kb, int64_t j0, float* panel) {
  const int64_t cols = std::min(kCols, out - j0);
  for (int64_t k = 0; k < kb; ++k) {
    const float* src = dy + (k0 + k) * out + j0;
    float* dst = panel + k * kCols;
    if (cols == kCols) {
      Store(dst, Load(src));
      Store(dst + 8, Load(src + 8));
    } else {
      for (int64_t j = 0; j < kCols; ++j) dst[j] = j < cols ? src[j] : 0.0f;
    }
  }
}

// dW rows [i0, i0 + rows), columns [j0, j0 + cols) += x panel^T dy panel over kb tokens.
void AddTile(const float* xp, const float* dyp, int64_t kb, float* dW, int64_t out, int64_t i0, int64_t rows,
             int64_t j0, int64_t cols) {
  Vec8 acc[kRows][2] = {};
  for (int64_t k = 0; k < kb; ++k) {
    const Vec8 b0 = Load(dyp + k * kCols), b1 = Load(dyp + k * kCols + 8);
    for (int64_t r = 0; r < kRows; ++r) {
      const float a = xp[k * kRows + r];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* c = dW + (i0 + r) * out + j0;
    if (cols == kCols) {
      Store(c, Load(c) + acc[r][0]);
      Store(c + 8, Load(c + 8) + acc[r][1]);
    } else {
      float sum[kCols];
      Store(sum, acc[r][0]);
      Store(sum + 8, acc[r][1]);
      for (int64_t j = 0; j < cols; ++j) c[j] += sum[j];
    }
  }
}

}  // namespace

void AddWeightGradient(const float* x, const float* dy, float* dW, int64_t n, int64_t in, int64_t out) {
  if (n <= 0 || in <= 0 || out <= 0) return;
  const int64_t x_panels = (in + kRows - 1) / kRows, dy_panels = (out + kCols - 1) / kCols;
  // Two buffers of packed x: threads pack block b + 1 into one while others may still read block b from the other.
  static thread_local std::vector<float> packed_x;
  packed_x.resize(2 * x_panels * kPanelSize);
  float* const packed = packed_x.data();
#pragma omp parallel
  {
    const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t my_x0 = x_panels * thread / threads, my_x1 = x_panels * (thread + 1) / threads;
    const int64_t my_dy0 = dy_panels * thread / threads, my_dy1 = dy_panels * (thread + 1) / threads;
    alignas(64) static thread_local float dy_panel[kBlock * kCols];
    for (int64_t k0 = 0, block = 0; k0 < n; k0 += kBlock, ++block) {
      const int64_t kb = std::min(kBlock, n - k0);
      float* xp = packed + (block % 2) * x_panels * kPanelSize;
      for (int64_t p = my_x0; p < my_x1; ++p) PackXPanel(x, in, k0, kb, p, xp + p * kPanelSize);
#pragma omp barrier
      for (int64_t q = my_dy0; q < my_dy1; ++q) {
        const int64_t j0 = q * kCols, cols = std::min(kCols, out - j0);
        PackDyPanel(dy, out, k0, kb, j0, dy_panel);
        for (int64_t p = 0; p < x_panels; ++p)
          AddTile(xp + p * kPanelSize, dy_panel, kb, dW, out, p * kRows, std::min(kRows, in - p * kRows), j0, cols);
      }
    }
  }
}

}  // namespace mixlab
