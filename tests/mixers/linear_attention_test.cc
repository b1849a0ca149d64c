// Linear attention beyond the generic contract: the chunked scan equals the naive masked T x T reference at
// several chunk sizes (forward and backward), and the implied kernel reproduces the forward pass.
#include <gtest/gtest.h>

#include "mixers/ops/matmul.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int D = 16;

ForwardBackward Linear(const OptionMap& options, int T) {
  MixerHarness h("linear", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, options, 3);
  return RunForwardBackward(h, 2, T, D);
}

TEST(LinearAttention, ChunkedEqualsNaive) {
  for (const std::string fmap : {"elu1", "relu"})
    for (const std::string norm : {"true", "false"})
      for (int T : {1, 9, 64, 130})
        for (int chunk : {1, 3, 16, 64, 200}) {
          OptionMap base{{"feature-map", fmap}, {"normalize", norm}};
          OptionMap chunked = base, naive = base;
          chunked["chunk"] = std::to_string(chunk);
          naive["impl"] = "naive";
          const ForwardBackward a = Linear(chunked, T), b = Linear(naive, T);
          const std::string at =
              fmap + " normalize=" + norm + " T=" + std::to_string(T) + " chunk=" + std::to_string(chunk);
          EXPECT_LT(RelativeDiff(a.y, b.y), 1e-5f) << at;
          EXPECT_LT(RelativeDiff(a.dx, b.dx), 1e-4f) << at;
          EXPECT_LT(RelativeDiff(a.grads, b.grads), 1e-4f) << at;
        }
}

TEST(Performer, ChunkedEqualsNaiveAndRedrawsOnSchedule) {
  for (const std::string pos : {"none", "rope"})
    for (int chunk : {1, 5, 64}) {
      auto run = [&](const OptionMap& o) {
        MixerHarness h("performer", MixerKind::kSequence, MixerDims{D, 2, 0, pos}, o, 3);
        return h.Forward(RandomVector(2 * 40 * D, 4), Positions(2, 40), 2, 40);
      };
      EXPECT_LT(RelativeDiff(run({{"chunk", std::to_string(chunk)}, {"n-features", "32"}}),
                             run({{"impl", "naive"}, {"n-features", "32"}})),
                1e-5f)
          << pos << " chunk " << chunk;
    }
  MixerHarness h("performer", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {{"redraw", "5"}}, 3);
  const int T = 12;
  auto x = RandomVector(T * D, 6);
  auto pos = Positions(1, T);
  const auto at0 = h.Forward(x, pos, 1, T, ForwardMode{true, 0, 0});
  EXPECT_EQ(h.Forward(x, pos, 1, T, ForwardMode{true, 0, 4}), at0) << "same draw within a redraw period";
  const auto at5 = h.Forward(x, pos, 1, T, ForwardMode{true, 0, 5});
  EXPECT_GT(RelativeDiff(at5, at0), 1e-4f) << "features redrawn at step 5";
  EXPECT_EQ(h.Forward(x, pos, 1, T), at5) << "evaluation keeps the current draw";
  MixerHarness fixed("performer", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {}, 3);
  EXPECT_EQ(fixed.Forward(x, pos, 1, T, ForwardMode{true, 0, 0}),
            fixed.Forward(x, pos, 1, T, ForwardMode{true, 0, 500}));
}

}  // namespace
}  // namespace mixlab::testing
