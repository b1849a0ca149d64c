// The Routing Transformer's online k-means: centroids are a kState parameter the training forward moves toward the
// keys assigned to them (inference leaves them), kept unit-norm, on routing heads only.
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

TEST(Routing, TrainingForwardMovesTheRoutedHeadsCentroidsOnly) {
  const int B = 2, T = 16, D = 16;
  MixerHarness h("routing", MixerKind::kSequence, MixerDims{D, 1, 0, "none"},
                 {{"n-heads", "2"}, {"local-heads", "1"}, {"n-clusters", "3"}, {"decay", "0.5"}});
  const int index = h.store.Find("centroids");
  ASSERT_GE(index, 0);
  const auto& p = h.store.params()[index];
  EXPECT_EQ(p.spec.role, ParamRole::kState);
  const float* mu = h.store.values() + p.offset;
  const std::vector<float> before(mu, mu + p.spec.Numel());
  const auto x = RandomVector(B * T * D, 3);
  const auto pos = Positions(B, T);
  h.Forward(x, pos, B, T);  // inference: no update
  EXPECT_EQ(std::vector<float>(mu, mu + p.spec.Numel()), before);
  h.Forward(x, pos, B, T, ForwardMode{true});
  const int64_t per_head = 3 * 8;  // clusters x d_head
  for (int64_t i = 0; i < per_head; ++i) EXPECT_EQ(mu[i], before[i]) << "the local head has no centroids to move";
  float moved = 0;
  for (int64_t i = per_head; i < 2 * per_head; ++i) moved = std::max(moved, std::abs(mu[i] - before[i]));
  EXPECT_GT(moved, 1e-3f) << "the routed head's centroids did not move";
  for (int c = 3; c < 6; ++c)
    EXPECT_NEAR(Eigen::Map<const Eigen::VectorXf>(mu + c * 8, 8).norm(), 1.0f, 1e-5f) << "centroid " << c;
}

}  // namespace
}  // namespace mixlab::testing
