// SmallGemm against Eigen's product, over shapes that exercise every tile width (32, 24, 16, 8 columns and the
// scalar tail), row remainders, strided and transposed A, accumulation, and the three bands.
#include "mixers/ops/small_gemm.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

struct Shape {
  int64_t M, N, K;
};

const Shape kShapes[] = {{1, 1, 1},    {3, 5, 7},    {4, 8, 4},    {7, 33, 9}, {64, 64, 32},
                         {64, 32, 64}, {13, 57, 13}, {32, 40, 17}, {5, 3, 64}, {9, 100, 2}};

// C0 + op(A) B with op(A) = A or A^T read through SmallGemm's strides; B and C with padded leading dimensions.
void Check(const Shape& s, bool transposed_a, bool accumulate, Band band, uint64_t& seed) {
  const int64_t lda = (transposed_a ? s.M : s.K) + 3, ldb = s.N + 5, ldc = s.N + 2;
  RowMatrix Astore = RandomMatrix(transposed_a ? s.K : s.M, lda, seed++), Bstore = RandomMatrix(s.K, ldb, seed++);
  RowMatrix Cstore = RandomMatrix(s.M, ldc, seed++);
  RowMatrix opA = transposed_a ? RowMatrix(Astore.leftCols(s.M).transpose()) : RowMatrix(Astore.leftCols(s.K));
  if (band == Band::kLowerA || band == Band::kUpperA) {  // the band promises zeros there: store them
    for (int64_t i = 0; i < s.M; ++i)
      for (int64_t k = 0; k < s.K; ++k)
        if ((band == Band::kLowerA && k > i) || (band == Band::kUpperA && k < i)) {
          opA(i, k) = 0.0f;
          (transposed_a ? Astore(k, i) : Astore(i, k)) = 0.0f;
        }
  }
  RowMatrix expected = opA * Bstore.leftCols(s.N);
  if (accumulate) expected += Cstore.leftCols(s.N);
  RowMatrix C = Cstore;
  SmallGemm(s.M, s.N, s.K, Astore.data(), transposed_a ? 1 : lda, transposed_a ? lda : 1, Bstore.data(), ldb, C.data(),
            ldc, accumulate, band);
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < s.N; ++j) {
      if (band == Band::kLowerC && j > i) continue;  // not wanted; the caller overwrites it
      ASSERT_NEAR(C(i, j), expected(i, j), 1e-5f * (1.0f + std::abs(expected(i, j))))
          << s.M << "x" << s.N << "x" << s.K << " at (" << i << ", " << j << ")";
    }
    for (int64_t j = s.N; j < ldc; ++j) ASSERT_EQ(C(i, j), Cstore(i, j)) << "wrote past column N";
  }
}

TEST(SmallGemm, MatchesEigenForEveryShapeBandAndLayout) {
  uint64_t seed = 7;
  for (const Shape& s : kShapes)
    for (bool transposed_a : {false, true})
      for (bool accumulate : {false, true})
        for (Band band : {Band::kFull, Band::kLowerA, Band::kUpperA, Band::kLowerC})
          Check(s, transposed_a, accumulate, band, seed);
}

TEST(SmallGemm, EmptyDepthWritesZerosOrKeepsC) {
  RowMatrix A(2, 1), B(1, 9), C = RowMatrix::Constant(2, 9, 3.0f);
  SmallGemm(2, 9, 0, A.data(), 1, 1, B.data(), 9, C.data(), 9, true);
  EXPECT_EQ(C, RowMatrix::Constant(2, 9, 3.0f));
  SmallGemm(2, 9, 0, A.data(), 1, 1, B.data(), 9, C.data(), 9, false);
  EXPECT_EQ(C, RowMatrix::Zero(2, 9));
}

}  // namespace
}  // namespace mixlab::testing
