// Linear attention beyond the generic contract: the chunked scan equals the naive masked T x T reference at
// several chunk sizes (forward and backward), and the implied kernel reproduces the forward pass.
#include <gtest/gtest.h>

#include "mixers/matmul.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int D = 16;

struct LinearRun {
  std::vector<float> y, dx, grads;
};

LinearRun Linear(const OptionMap& options, int T) {
  MixerHarness h("linear", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, options, 3);
  const int B = 2;
  auto x = RandomVector(int64_t(B) * T * D, 4);
  auto dy = RandomVector(int64_t(B) * T * D, 5);
  LinearRun r;
  r.y = h.Forward(x, Positions(B, T), B, T);
  r.dx.resize(x.size());
  h.store.ZeroGrad();
  h.mixer->Backward(*h.ctx, dy.data(), r.dx.data());
  r.grads.assign(h.store.grads(), h.store.grads() + h.store.size());
  return r;
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
          const LinearRun a = Linear(chunked, T), b = Linear(naive, T);
          const std::string at = fmap + " normalize=" + norm + " T=" + std::to_string(T) + " chunk=" + std::to_string(chunk);
          EXPECT_LT(RelativeDiff(a.y, b.y), 1e-5f) << at;
          EXPECT_LT(RelativeDiff(a.dx, b.dx), 1e-4f) << at;
          EXPECT_LT(RelativeDiff(a.grads, b.grads), 1e-4f) << at;
        }
}

TEST(LinearAttention, ImpliedKernelReproducesForward) {
  for (const std::string norm : {"true", "false"}) {
    MixerHarness h("linear", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {{"n-heads", "2"}, {"normalize", norm}}, 3);
    ExpectMixingReproducesForward(h, D, 21, false, "linear normalize=" + norm);
  }
}

}  // namespace
}  // namespace mixlab::testing
