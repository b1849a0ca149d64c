// AddWeightGradient against Eigen's x^T dy, over shapes that exercise the 6-row and 16-column panel tails, token
// counts that are not a multiple of the packing block, and thread counts (the sum order must not depend on them).
#include "mixers/ops/weight_gradient.h"

#include <gtest/gtest.h>
#include <omp.h>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

struct Shape {
  int64_t n, in, out;
};

TEST(WeightGradient, MatchesEigenAndAccumulates) {
  const Shape shapes[] = {{1, 1, 1},     {5, 3, 7},     {256, 6, 16}, {257, 7, 17},   {300, 128, 128},
                          {700, 37, 70}, {513, 12, 40}, {64, 200, 9}, {1000, 5, 130}, {2, 64, 512}};
  uint64_t seed = 30;
  for (const Shape& s : shapes) {
    const RowMatrix x = RandomMatrix(s.n, s.in, seed++), dy = RandomMatrix(s.n, s.out, seed++);
    const RowMatrix dW0 = RandomMatrix(s.in, s.out, seed++);
    const RowMatrix expect = dW0 + x.transpose() * dy;
    RowMatrix dW = dW0;
    AddWeightGradient(x.data(), dy.data(), dW.data(), s.n, s.in, s.out);
    const float tolerance = 1e-6f * float(s.n) + 1e-5f;
    EXPECT_LE((dW - expect).cwiseAbs().maxCoeff(), tolerance) << "n=" << s.n << " in=" << s.in << " out=" << s.out;
  }
}

TEST(WeightGradient, SameBitsForAnyThreadCount) {
  const int saved = omp_get_max_threads();
  for (int64_t out : {90, 20}) {  // 6 column panels (split between threads) and 2 (rows split instead)
    const int64_t n = 777, in = 50;
    const RowMatrix x = RandomMatrix(n, in, 40), dy = RandomMatrix(n, out, 41);
    std::vector<RowMatrix> results;
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      RowMatrix dW = RowMatrix::Zero(in, out);
      AddWeightGradient(x.data(), dy.data(), dW.data(), n, in, out);
      results.push_back(dW);
    }
    EXPECT_TRUE(results[0] == results[1]) << "out=" << out;
    EXPECT_TRUE(results[0] == results[2]) << "out=" << out;
    EXPECT_LE((results[0] - x.transpose() * dy).cwiseAbs().maxCoeff(), 1e-3f) << "out=" << out;
  }
  omp_set_num_threads(saved);
}

TEST(WeightGradient, NoTokensLeavesGradientUnchanged) {
  RowMatrix dW = RowMatrix::Constant(3, 4, 1.5f);
  AddWeightGradient(nullptr, nullptr, dW.data(), 0, 3, 4);
  EXPECT_TRUE(dW == RowMatrix::Constant(3, 4, 1.5f));
}

}  // namespace
}  // namespace mixlab::testing
