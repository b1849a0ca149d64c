// Small dense products for the chunked scans (linear attention, Performer) and the tiles of softmax attention: tens
// of rows and columns, a new product every few microseconds, where Eigen's general GEMM spends its time packing and
// in edge cases. (weight_gradient.cc borrows its 8-float vector type.)
//
//   C (M, N) = / += A (M, K) B (K, N)
//
// A is read through two strides, a(i, k) = A[i * a_row + k * a_col], so a transposed operand costs nothing; B and C
// are row-major with leading dimensions ldb, ldc. Rows are done 3 at a time against up to four 8-float column
// packets (12 accumulators in registers); the last N % 8 columns and M % 3 rows take narrower versions of the same
// loop. Measured on this machine's AVX2 core: about 70 GFLOP/s at 64 x 32 x 32, where Eigen's product reached 40.
//
// Bands, when the caller knows A or C is triangular, skip work that would add exact zeros:
//   kLowerA: A(i, k) = 0 for k > i (stored as zeros): row i sums over k <= i only.
//   kUpperA: A(i, k) = 0 for k < i: row i sums over k >= i only.
//   kLowerC: only C(i, j) for j <= i is wanted; entries above the diagonal are left partly computed, and the
//            caller overwrites them.
// Skipping exact zeros gives the same sums as the full product, term by term in the same order.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace mixlab {

enum class Band { kFull, kLowerA, kUpperA, kLowerC };

namespace small_gemm_detail {

using Vec8 = float __attribute__((vector_size(32)));
inline Vec8 Load(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store(float* p, Vec8 v) { std::memcpy(p, &v, sizeof v); }

// Rows [0, R) of C, columns [0, 8 NP), summed over k in [k0, k1).
template <int R, int NP>
inline void Tile(const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc,
                 int64_t k0, int64_t k1, bool accumulate) {
  Vec8 acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = accumulate ? Load(C + r * ldc + 8 * p) : Vec8{};
  for (int64_t k = k0; k < k1; ++k) {
    Vec8 b[NP];
    for (int p = 0; p < NP; ++p) b[p] = Load(B + k * ldb + 8 * p);
    for (int r = 0; r < R; ++r) {
      const float a = A[r * a_row + k * a_col];
      for (int p = 0; p < NP; ++p) acc[r][p] += a * b[p];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) Store(C + r * ldc + 8 * p, acc[r][p]);
}

// The same for fewer than 8 columns (the N % 8 tail), one scalar per row and column.
template <int R>
inline void TailTile(const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc,
                     int64_t cols, int64_t k0, int64_t k1, bool accumulate) {
  for (int r = 0; r < R; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float s = accumulate ? C[r * ldc + j] : 0.0f;
      for (int64_t k = k0; k < k1; ++k) s += A[r * a_row + k * a_col] * B[k * ldb + j];
      C[r * ldc + j] = s;
    }
}

template <int R>
inline void RowBlock(const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc,
                     int64_t N, int64_t k0, int64_t k1, bool accumulate) {
  int64_t j = 0;
  for (; j + 32 <= N; j += 32) Tile<R, 4>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
  if (N - j >= 24) {
    Tile<R, 3>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += 24;
  }
  if (N - j >= 16) {
    Tile<R, 2>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += 16;
  }
  if (N - j >= 8) {
    Tile<R, 1>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += 8;
  }
  if (j < N) TailTile<R>(A, a_row, a_col, B + j, ldb, C + j, ldc, N - j, k0, k1, accumulate);
}

}  // namespace small_gemm_detail

inline void SmallGemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_row, int64_t a_col, const float* B,
                      int64_t ldb, float* C, int64_t ldc, bool accumulate, Band band = Band::kFull) {
  using namespace small_gemm_detail;
  constexpr int64_t kRows = 3;
  for (int64_t i = 0; i < M; i += kRows) {
    const int64_t rows = std::min(kRows, M - i);
    int64_t k0 = 0, k1 = K, cols = N;
    if (band == Band::kLowerA) k1 = std::min(K, i + rows);
    if (band == Band::kUpperA) k0 = std::min(K, i);
    if (band == Band::kLowerC) cols = std::min(N, (i + rows + 7) / 8 * 8);
    const float* a = A + i * a_row;
    float* c = C + i * ldc;
    switch (rows) {
      case 3:
        RowBlock<3>(a, a_row, a_col, B, ldb, c, ldc, cols, k0, k1, accumulate);
        break;
      case 2:
        RowBlock<2>(a, a_row, a_col, B, ldb, c, ldc, cols, k0, k1, accumulate);
        break;
      default:
        RowBlock<1>(a, a_row, a_col, B, ldb, c, ldc, cols, k0, k1, accumulate);
        break;
    }
  }
}

}  // namespace mixlab
