#include "mixers/ops/weight_gradient.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "mixers/ops/small_gemm.h"

namespace mixlab {
namespace {

using small_gemm_detail::kLanes;
using small_gemm_detail::Load;
using small_gemm_detail::Store;
using small_gemm_detail::Vec8;
using small_gemm_detail::VecWide;

// A tile is 6 rows of dW by two of the machine's widest vectors (32 columns with AVX-512, 16 with AVX2): 12
// accumulators. Each entry of dW sums its tokens in order whatever the panel width, so the width changes speed only.
constexpr int64_t kBlock = 256;  // tokens per packed block: a 32-column dy panel is then 32 KB, within L1
constexpr int64_t kRows = 6, kCols = 2 * kLanes;
// One x panel holds kBlock x 6 floats; the 8 spare floats take the 8-wide stores of the packing loop's last row.
constexpr int64_t kPanelSize = kBlock * kRows + 8;

// Panels [p0, p1) of x rows [k0, k0 + kb): panel p holds columns [6p, 6p + 6) of x, token-major, with zeros for
// columns past `in`. Row by row, so x is read in order (a panel at a time would stride through it once per panel).
void PackXPanels(const float* x, int64_t in, int64_t k0, int64_t kb, int64_t p0, int64_t p1, float* packed) {
  for (int64_t k = 0; k < kb; ++k) {
    const float* row = x + (k0 + k) * in;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i0 = p * kRows;
      float* dst = packed + p * kPanelSize + k * kRows;
      if (i0 + 8 <= in) {  // 8 wide: the 2 extra floats are overwritten by the next row (or land in the spare)
        Store(dst, Load(row + i0));
      } else {
        for (int64_t r = 0; r < kRows; ++r) dst[r] = i0 + r < in ? row[i0 + r] : 0.0f;
      }
    }
  }
}

// Columns [j0, j0 + kCols) of dy rows [k0, k0 + kb), token-major; columns past `out` are zeros.
void PackDyPanel(const float* dy, int64_t out, int64_t k0, int64_t kb, int64_t j0, float* panel) {
  const int64_t cols = std::min(kCols, out - j0);
  for (int64_t k = 0; k < kb; ++k) {
    const float* src = dy + (k0 + k) * out + j0;
    float* dst = panel + k * kCols;
    if (cols == kCols) {
      Store(dst, Load<VecWide>(src));
      Store(dst + kLanes, Load<VecWide>(src + kLanes));
    } else {
      for (int64_t j = 0; j < kCols; ++j) dst[j] = j < cols ? src[j] : 0.0f;
    }
  }
}

// dW rows [i0, i0 + rows), columns [j0, j0 + cols) += x panel^T dy panel over kb tokens.
void AddTile(const float* xp, const float* dyp, int64_t kb, float* dW, int64_t out, int64_t i0, int64_t rows,
             int64_t j0, int64_t cols) {
  VecWide acc[kRows][2] = {};
  for (int64_t k = 0; k < kb; ++k) {
    const VecWide b0 = Load<VecWide>(dyp + k * kCols), b1 = Load<VecWide>(dyp + k * kCols + kLanes);
    for (int64_t r = 0; r < kRows; ++r) {
      const float a = xp[k * kRows + r];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* c = dW + (i0 + r) * out + j0;
    if (cols == kCols) {
      Store(c, Load<VecWide>(c) + acc[r][0]);
      Store(c + kLanes, Load<VecWide>(c + kLanes) + acc[r][1]);
    } else {
      float sum[kCols];
      Store(sum, acc[r][0]);
      Store(sum + kLanes, acc[r][1]);
      for (int64_t j = 0; j < cols; ++j) c[j] += sum[j];
    }
  }
}

}  // namespace

void AddWeightGradient(const float* x, const float* dy, float* dW, int64_t n, int64_t in, int64_t out) {
  if (n <= 0 || in <= 0 || out <= 0) return;
  const int64_t x_panels = (in + kRows - 1) / kRows, dy_panels = (out + kCols - 1) / kCols;
#pragma omp parallel
  {
    // Each thread owns a block of dW: kCols-column panels [q0, q1) by 6-row panels [p0, p1). Threads split the column
    // panels when there are enough of them (the usual case), otherwise the row panels.
    const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
    const bool split_columns = dy_panels >= threads;
    const int64_t split = split_columns ? dy_panels : x_panels;
    const int64_t first = split * thread / threads, last = split * (thread + 1) / threads;
    const int64_t q0 = split_columns ? first : 0, q1 = split_columns ? last : dy_panels;
    const int64_t p0 = split_columns ? 0 : first, p1 = split_columns ? x_panels : last;
    alignas(64) static thread_local float dy_panel[kBlock * kCols];
    static thread_local std::vector<float> packed_x;
    packed_x.resize(x_panels * kPanelSize);
    float* const xp = packed_x.data();
    for (int64_t k0 = 0; k0 < n && first < last; k0 += kBlock) {
      const int64_t kb = std::min(kBlock, n - k0);
      PackXPanels(x, in, k0, kb, p0, p1, xp);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t j0 = q * kCols, cols = std::min(kCols, out - j0);
        PackDyPanel(dy, out, k0, kb, j0, dy_panel);
        for (int64_t p = p0; p < p1; ++p)
          AddTile(xp + p * kPanelSize, dy_panel, kb, dW, out, p * kRows, std::min(kRows, in - p * kRows), j0, cols);
      }
    }
  }
}

}  // namespace mixlab
