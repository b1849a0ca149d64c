// Mixture of experts beyond the generic contract: the Switch auxiliary loss at a uniform router, capacity
// dropping (counted, and dropped tokens get no expert output), and logged statistics.
#include <gtest/gtest.h>

#include "mixers/ops/usage_error.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int D = 16;

TEST(Moe, SwitchAuxLossIsOneForAUniformRouter) {
  MixerHarness h("moe", MixerKind::kChannel, MixerDims{D, 2, 0, "none"}, {{"aux-coef", "0.5"}, {"n-experts", "4"}}, 3);
  const int r = h.store.Find("router");
  std::fill_n(h.store.values() + h.store.params()[r].offset, h.store.params()[r].spec.Numel(), 0.0f);
  h.Forward(RandomVector(3 * 5 * D, 1), Positions(3, 5), 3, 5);
  EXPECT_NEAR(h.mixer->AuxLoss(), 0.5f * 1.0f, 1e-5);  // E * sum_e f_e * (1/E) = 1
  const auto stats = h.mixer->Stats();
  EXPECT_NEAR(stats.at("router_entropy"), std::log(4.0), 1e-5);
  EXPECT_NEAR(stats.at("load.0") + stats.at("load.1") + stats.at("load.2") + stats.at("load.3"), 1.0, 1e-9);
}

TEST(Moe, CapacityDropsAreCountedAndGetNoOutput) {
  const int B = 2, T = 16, N = B * T;
  auto x = RandomVector(N * D, 2);
  MixerHarness h("moe", MixerKind::kChannel, MixerDims{D, 2, 0, "none"},
                 {{"capacity-factor", "0.25"}, {"top-k", "1"}, {"n-experts", "4"}}, 3);
  const auto y = h.Forward(x, Positions(B, T), B, T, ForwardMode{true});
  const double dropped = h.mixer->Stats().at("dropped");
  EXPECT_EQ(dropped, N - 4 * 2);  // capacity ceil(0.25 * 32 * 1 / 4) = 2 per expert, 4 experts
  int zero_rows = 0;
  for (int t = 0; t < N; ++t) {
    bool zero = true;
    for (int d = 0; d < D; ++d) zero &= y[t * D + d] == 0.0f;
    zero_rows += zero;
  }
  EXPECT_EQ(zero_rows, int(dropped)) << "with top-1, a dropped token has no expert output";
  MixerHarness unlimited("moe", MixerKind::kChannel, MixerDims{D, 2, 0, "none"}, {{"top-k", "1"}, {"n-experts", "4"}},
                         3);
  unlimited.Forward(x, Positions(B, T), B, T);
  EXPECT_EQ(unlimited.mixer->Stats().at("dropped"), 0.0);
  h.Forward(x, Positions(B, T), B, T);  // evaluation: capacity applies in training only
  EXPECT_EQ(h.mixer->Stats().at("dropped"), 0.0);
}

TEST(Moe, EvaluationOfAPositionIgnoresTheRestOfTheBatch) {
  // With capacity, a token's output in evaluation must not depend on how many other tokens share the call.
  const int T = 16;
  auto x = RandomVector(2 * T * D, 4);
  MixerHarness h("moe", MixerKind::kChannel, MixerDims{D, 2, 0, "none"},
                 {{"capacity-factor", "0.25"}, {"top-k", "1"}, {"n-experts", "4"}}, 3);
  const auto both = h.Forward(x, Positions(2, T), 2, T);
  const auto first = h.Forward(std::vector<float>(x.begin(), x.begin() + T * D), Positions(1, T), 1, T);
  for (int i = 0; i < T * D; ++i) ASSERT_EQ(both[i], first[i]) << "element " << i;
}

TEST(Moe, RefusesTopKAboveExperts) {
  EXPECT_THROW(MakeMixer("moe", MixerKind::kChannel, MixerDims{D, 1, 0, "none"}, {{"top-k", "5"}, {"n-experts", "4"}}),
               UsageError);
}

}  // namespace
}  // namespace mixlab::testing
