// Mamba beyond the generic contract: the chunk-checkpointed scan (which recomputes states in backward) equals
// the scan that keeps every state (chunk >= T) at many chunk sizes and lengths, inference in windows equals the
// training forward, and the exported selective-scan kernel reproduces Forward through the value path u.
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int D = 16;

TEST(Mamba, CheckpointedScanEqualsFullStateScan) {
  for (const std::string disc : {"zoh", "simplified"})
    for (int T : {1, 9, 64, 130}) {
      MixerHarness full("mamba", MixerKind::kSequence, MixerDims{D, 2, 0, "none"},
                        {{"discretization", disc}, {"chunk", "100000"}, {"expand", "3"}}, 3);
      const ForwardBackward ref = RunForwardBackward(full, 2, T, D);
      for (int chunk : {1, 4, 16, 63, 200}) {
        MixerHarness h("mamba", MixerKind::kSequence, MixerDims{D, 2, 0, "none"},
                       {{"discretization", disc}, {"chunk", std::to_string(chunk)}, {"expand", "3"}}, 3);
        const ForwardBackward r = RunForwardBackward(h, 2, T, D);
        const std::string at = disc + " T=" + std::to_string(T) + " chunk=" + std::to_string(chunk);
        EXPECT_LT(RelativeDiff(r.y, ref.y), 1e-6f) << at;
        EXPECT_LT(RelativeDiff(r.dx, ref.dx), 1e-5f) << at;
        EXPECT_LT(RelativeDiff(r.grads, ref.grads), 1e-5f) << at;
      }
    }
}

// An inference forward runs in windows (in place for one sequence or one window, gathered otherwise) and carries the
// conv history and scan state across them: the output is the training forward's.
TEST(Mamba, InferenceWindowsEqualForward) {
  const int T = 23;
  for (int window : {1, 3, 8, 23, 100})
    for (int B : {1, 3}) {
      MixerHarness h("mamba", MixerKind::kSequence, MixerDims{D, 2, 0, "none"},
                     {{"inference-window", std::to_string(window)}}, 6);
      auto x = RandomVector(int64_t(B) * T * D, 9);
      auto pos = Positions(B, T);
      ForwardMode inference;
      inference.inference = true;
      EXPECT_LT(RelativeDiff(h.Forward(x, pos, B, T, inference), h.Forward(x, pos, B, T)), 1e-6f)
          << "window=" << window << " B=" << B;
    }
}

// out = ((alpha u) * silu(z)) W_out with u = silu(conv(xi)), recomputed here from the parameters.
TEST(Mamba, SelectiveScanKernelReproducesForward) {
  const int T = 19, E = 2 * D, K = 4;
  MixerHarness h("mamba", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {{"mixing-groups", std::to_string(E)}}, 5);
  auto x = RandomVector(int64_t(T) * D, 8);
  auto pos = Positions(1, T);
  auto y = h.Forward(x, pos, 1, T);
  auto maps = h.mixer->Mixing(x.data(), pos.data(), T);
  ASSERT_EQ(int(maps.size()), E);
  auto param = [&](const char* name) { return h.store.values() + h.store.params()[h.store.Find(name)].offset; };
  std::vector<float> xz(size_t(T) * 2 * E), gated(size_t(T) * E), y2(size_t(T) * D);
  LinearForward(x.data(), param("in_proj"), xz.data(), T, D, 2 * E);
  auto silu = [](float v) { return v / (1.0f + std::exp(-v)); };
  for (int e = 0; e < E; ++e) {
    Eigen::VectorXf u(T);
    for (int t = 0; t < T; ++t) {
      float acc = param("conv_bias")[e];
      for (int k = 0; k < K; ++k)
        if (t - (K - 1) + k >= 0) acc += param("conv_weight")[e * K + k] * xz[size_t(t - (K - 1) + k) * 2 * E + e];
      u[t] = silu(acc);
    }
    const Eigen::VectorXf ys = maps[e] * u;
    for (int t = 0; t < T; ++t) {
      for (int s = t + 1; s < T; ++s) EXPECT_EQ(maps[e](t, s), 0.0f) << "mixing must be causal";
      gated[size_t(t) * E + e] = ys[t] * silu(xz[size_t(t) * 2 * E + E + e]);
    }
  }
  LinearForward(gated.data(), param("out_proj"), y2.data(), T, E, D);
  EXPECT_LT(RelativeDiff(y2, y), 1e-5f);
}

TEST(Mamba, MixingGroupsAverageChannels) {
  MixerHarness h("mamba", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {{"mixing-groups", "3"}}, 5);
  auto x = RandomVector(int64_t(12) * D, 8);
  auto pos = Positions(1, 12);
  EXPECT_EQ(h.mixer->Mixing(x.data(), pos.data(), 12).size(), 3u);
}

TEST(Mamba, RefusesPositionalEncodingsAndBadOptions) {
  EXPECT_THROW(MakeMixer("mamba", MixerKind::kSequence, MixerDims{16, 1, 0, "alibi"}, {}), UsageError);
  EXPECT_THROW(MakeMixer("mamba", MixerKind::kSequence, MixerDims{16, 1, 0, "rope"}, {}), UsageError);
  EXPECT_THROW(
      MakeMixer("mamba", MixerKind::kSequence, MixerDims{16, 1, 0, "none"}, {{"dt-min", "0.5"}, {"dt-max", "0.1"}}),
      UsageError);
  EXPECT_THROW(MakeMixer("mamba", MixerKind::kSequence, MixerDims{16, 1, 0, "none"}, {{"discretization", "bilinear"}}),
               UsageError);
}

}  // namespace
}  // namespace mixlab::testing
