// Small dense products for the chunked scans (linear attention, Performer) and the tiles of softmax attention: tens
// of rows and columns, a new product every few microseconds, where Eigen's general GEMM spends its time packing and
// in edge cases. (weight_gradient.cc borrows its 8-float vector type.)
//
//   C (M, N) = / += A (M, K) B (K, N)
//
// A is read through two strides, a(i, k) = A[i * a_row + k * a_col], so a transposed operand costs nothing; B and C
// are row-major with leading dimensions ldb, ldc. Rows are done 3 at a time against up to four column packets of the
// machine's vector width (16 floats with AVX-512, else 8; 12 accumulators in registers), then one 8-float packet, and
// the last N % 8 columns and M % 3 rows take narrower versions of the same loop. Every entry of C is the same chain of
// fused multiply-adds over k whatever the packet it falls in, so the width changes speed, not bits. On this project's
// AVX-512 core (a full 512-bit datapath) 16-float packets double the FMA throughput of 8-float ones.
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
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
using VecWide = float __attribute__((vector_size(4 * kLanes)));  // the machine's widest float vector

template <class V = Vec8>
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V>
inline void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// Rows [0, R) of C, columns [0, lanes(V) NP), summed over k in [k0, k1).
template <class V, int R, int NP>
inline void Tile(const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float* C, int64_t ldc,
                 int64_t k0, int64_t k1, bool accumulate) {
  constexpr int L = sizeof(V) / sizeof(float);
  V acc[R][NP];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) acc[r][p] = accumulate ? Load<V>(C + r * ldc + L * p) : V{};
  for (int64_t k = k0; k < k1; ++k) {
    V b[NP];
    for (int p = 0; p < NP; ++p) b[p] = Load<V>(B + k * ldb + L * p);
    for (int r = 0; r < R; ++r) {
      const float a = A[r * a_row + k * a_col];
      for (int p = 0; p < NP; ++p) acc[r][p] += a * b[p];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < NP; ++p) Store(C + r * ldc + L * p, acc[r][p]);
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
  constexpr int64_t W = kLanes;
  int64_t j = 0;
  for (; j + 4 * W <= N; j += 4 * W) Tile<VecWide, R, 4>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
  if (N - j >= 3 * W) {
    Tile<VecWide, R, 3>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += 3 * W;
  }
  if (N - j >= 2 * W) {
    Tile<VecWide, R, 2>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += 2 * W;
  }
  if (W > 8 && N - j >= W) {
    Tile<VecWide, R, 1>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
    j += W;
  }
  if (N - j >= 8) {
    Tile<Vec8, R, 1>(A, a_row, a_col, B + j, ldb, C + j, ldc, k0, k1, accumulate);
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
