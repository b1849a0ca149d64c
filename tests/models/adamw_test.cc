// AdamW's update against the formula written out element by element: decay only on parameters declared with
// weight_decay, clipping by the global norm, bias correction, at thread counts that split the buffer inside
// parameters of either kind.
#include "models/adamw.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "mixers/ops/rng.h"

namespace mixlab {
namespace {

// Parameters of both kinds, interleaved, of lengths that do not divide evenly between threads.
ParamStore MixedStore() {
  ParamStore store;
  store.Add("w1", {"w1", {37}});
  ParamSpec bias{"b1", {5}};
  bias.weight_decay = false;
  store.Add("b1", bias);
  store.Add("w2", {"w2", {9, 11}});
  store.Add("w3", {"w3", {4}});  // adjacent to w2: one run of decayed elements
  ParamSpec gain{"g", {3}};
  gain.weight_decay = false;
  store.Add("g", gain);
  store.Allocate();
  Rng rng(3);
  for (int64_t i = 0; i < store.size(); ++i) {
    store.values()[i] = float(rng.Normal());
    store.grads()[i] = float(rng.Normal());
  }
  return store;
}

std::vector<bool> DecayFlags(const ParamStore& store) {
  std::vector<bool> flags;
  for (const auto& p : store.params()) flags.insert(flags.end(), p.spec.Numel(), p.spec.weight_decay);
  return flags;
}

class AdamWThreads : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    saved_ = omp_get_max_threads();
    omp_set_num_threads(GetParam());
  }
  void TearDown() override { omp_set_num_threads(saved_); }
  int saved_ = 1;
};

TEST_P(AdamWThreads, MatchesTheUpdateWrittenOut) {
  ParamStore store = MixedStore();
  const std::vector<bool> decay = DecayFlags(store);
  const int64_t n = store.size();
  AdamWConfig c;
  c.lr = 0.05f;
  c.warmup = 0;
  c.clip = 1.0f;  // the random gradients' norm is about sqrt(n) > 1: clipped
  std::vector<double> w(store.values(), store.values() + n), m(n, 0.0), v(n, 0.0);
  AdamW opt(store, c);
  Rng rng(4);
  for (int step = 0; step < 3; ++step) {
    std::vector<double> g(store.grads(), store.grads() + n);
    double norm = 0;
    for (double gi : g) norm += gi * gi;
    norm = std::sqrt(norm);
    ASSERT_GT(norm, c.clip);
    const double lr = opt.LearningRate(step), bc1 = 1 - std::pow(c.beta1, step + 1),
                 bc2 = 1 - std::pow(c.beta2, step + 1);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = g[i] * c.clip / norm;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
      w[i] -= lr * ((m[i] / bc1) / (std::sqrt(v[i] / bc2) + c.eps) + (decay[i] ? c.weight_decay * w[i] : 0.0));
    }
    EXPECT_NEAR(opt.Step(step), norm, 1e-5 * norm);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(store.values()[i], w[i], 1e-5) << "element " << i << " after step " << step;
      ASSERT_NEAR(opt.first_moment()[i], m[i], 1e-6) << "element " << i;
      ASSERT_NEAR(opt.second_moment()[i], v[i], 1e-6) << "element " << i;
    }
    for (int64_t i = 0; i < n; ++i) store.grads()[i] = float(rng.Normal());
  }
}

TEST_P(AdamWThreads, DecaysExactlyTheDeclaredParameters) {
  // With zero gradients the Adam part of the update is 0: decayed elements shrink by lr * weight_decay, the others
  // keep their exact value.
  ParamStore store = MixedStore();
  const std::vector<bool> decay = DecayFlags(store);
  const std::vector<float> before(store.values(), store.values() + store.size());
  store.ZeroGrad();
  AdamWConfig c;
  c.lr = 0.5f;
  c.warmup = 0;
  AdamW opt(store, c);
  opt.Step(0);
  for (int64_t i = 0; i < store.size(); ++i) {
    if (decay[i]) EXPECT_NEAR(store.values()[i], before[i] * (1 - c.lr * c.weight_decay), 1e-6) << "element " << i;
    else EXPECT_EQ(store.values()[i], before[i]) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, AdamWThreads, ::testing::Values(1, 2, 3, 7),
                         [](const auto& i) { return std::to_string(i.param) + "_threads"; });

}  // namespace
}  // namespace mixlab
