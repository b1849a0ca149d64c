// Sums over rows by fixed row blocks: the row-by-row sums up to rounding, and the same bits at every thread count, for
// the helper and for the backward passes built on it.
#include "mixers/ops/row_block_sums.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <functional>

#include "mixers/ops/ops.h"
#include "mixers/token_shift.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

// Runs `pass` (which returns every output it writes, flattened) at 1, 2 and 3 threads; expects the same bits each time.
std::vector<float> SameBitsAtEveryThreadCount(const std::function<std::vector<float>()>& pass) {
  const int saved = omp_get_max_threads();
  std::vector<float> first;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    const std::vector<float> out = pass();
    if (first.empty()) first = out;
    EXPECT_EQ(out, first) << threads << " threads";
  }
  omp_set_num_threads(saved);
  return first;
}

TEST(RowBlockSums, ColumnSumsMatchRowByRowForAnyShape) {
  for (int64_t rows : {1, 7, 31, 32, 33, 600}) {
    const int64_t cols = 37;
    const auto m = RandomVector(rows * cols, int(rows));
    std::vector<float> expect(cols, 0.25f);
    AddColumnSums(m.data(), rows, cols, expect.data());
    const auto got = SameBitsAtEveryThreadCount([&] {
      std::vector<float> sums(cols, 0.25f);  // added to, not overwritten
      AddColumnSumsByRowBlocks(m.data(), rows, cols, sums.data());
      return sums;
    });
    for (int64_t j = 0; j < cols; ++j) EXPECT_NEAR(got[j], expect[j], 1e-5f * (1.0f + std::abs(expect[j]))) << rows;
  }
}

TEST(RowBlockSums, NormBackwardsGiveTheSameBitsAtEveryThreadCountAndInPlace) {
  const int64_t n = 600, d = 40;
  const auto x = RandomVector(n * d, 1), dy = RandomVector(n * d, 2), gamma = RandomVector(d, 3),
             beta = RandomVector(d, 4);
  std::vector<float> y(n * d), mean(n), rstd(n);
  LayerNormForward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), n, d);
  SameBitsAtEveryThreadCount([&] {
    std::vector<float> dx(n * d), dgamma(d, 0.5f), dbeta(d, 0.5f);
    LayerNormBackward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(),
                      dbeta.data(), n, d);
    dx.insert(dx.end(), dgamma.begin(), dgamma.end());
    dx.insert(dx.end(), dbeta.begin(), dbeta.end());
    return dx;
  });
  {  // in place (dx = dy): the same as out of place
    std::vector<float> dx(n * d), in_place = dy, dgamma(d, 0.0f), dbeta(d, 0.0f);
    LayerNormBackward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(),
                      dbeta.data(), n, d);
    std::vector<float> dgamma_in_place(d, 0.0f), dbeta_in_place(d, 0.0f);
    LayerNormBackward(x.data(), gamma.data(), mean.data(), rstd.data(), in_place.data(), in_place.data(),
                      dgamma_in_place.data(), dbeta_in_place.data(), n, d);
    EXPECT_EQ(in_place, dx);
    EXPECT_EQ(dgamma_in_place, dgamma);
    EXPECT_EQ(dbeta_in_place, dbeta);
  }
  RMSNormForward(x.data(), gamma.data(), y.data(), rstd.data(), n, d);
  {
    std::vector<float> dx(n * d), in_place = dy, dgamma(d, 0.0f), dgamma_in_place(d, 0.0f);
    RMSNormBackward(x.data(), gamma.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(), n, d);
    RMSNormBackward(x.data(), gamma.data(), rstd.data(), in_place.data(), in_place.data(), dgamma_in_place.data(), n,
                    d);
    EXPECT_EQ(in_place, dx);
    EXPECT_EQ(dgamma_in_place, dgamma);
  }
  SameBitsAtEveryThreadCount([&] {
    std::vector<float> dx(n * d), dgamma(d, 0.5f);
    RMSNormBackward(x.data(), gamma.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(), n, d);
    dx.insert(dx.end(), dgamma.begin(), dgamma.end());
    return dx;
  });
}

TEST(RowBlockSums, TokenShiftBackwardMatchesItsDefinitionAtEveryThreadCount) {
  const int64_t B = 3, T = 50, d = 24;
  const auto x = RandomVector(B * T * d, 5), dout = RandomVector(B * T * d, 6), mu = RandomVector(d, 7);
  // dx_t = dout_t mu + dout_{t+1} (1 - mu) within each sequence; dmu = sum dout_t (x_t - x_{t-1}), x_{-1} = 0.
  std::vector<float> expect_dx(B * T * d, 0.0f), expect_dmu(d, 0.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t j = 0; j < d; ++j) {
        const int64_t i = (b * T + t) * d + j;
        expect_dx[i] = dout[i] * mu[j] + (t + 1 < T ? dout[i + d] * (1.0f - mu[j]) : 0.0f);
        expect_dmu[j] += dout[i] * (x[i] - (t > 0 ? x[i - d] : 0.0f));
      }
  const auto got = SameBitsAtEveryThreadCount([&] {
    std::vector<float> dx(B * T * d, 0.0f), dmu(d, 0.0f);
    TokenShiftBackward(x.data(), mu.data(), dout.data(), B, T, d, dx.data(), dmu.data());
    dx.insert(dx.end(), dmu.begin(), dmu.end());
    return dx;
  });
  for (int64_t i = 0; i < B * T * d; ++i) EXPECT_NEAR(got[i], expect_dx[i], 1e-6f) << i;
  for (int64_t j = 0; j < d; ++j) EXPECT_NEAR(got[B * T * d + j], expect_dmu[j], 1e-4f) << j;
}

}  // namespace
}  // namespace mixlab::testing
