// Registry-wide contract tests: every registered sequence and channel mixer, in every positional encoding
// it supports and in the extra configurations its registry entry lists (MixerTestHints), is checked for
// finite-difference gradients (inputs and all parameters), causality, batch independence, determinism,
// Step == Forward, and its Mixing() export: one causal map per declared head, reproducing Forward through the
// value path where the mixer exposes one, and ablation through the declared head output projection removing
// exactly that head's contribution. A mixer is covered the moment it is registered; this file names no mixer.
#include <gtest/gtest.h>

#include <algorithm>

#include "mixers/head_groups.h"
#include "mixers/ops/usage_error.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

struct MixerCase {
  std::string label;
  std::string name;
  MixerKind kind;
  ContractCase config;
  MixerTestHints hints;
};

// The default configuration of every registered mixer, each positional encoding it supports, and the extra
// configurations its registry entry lists.
std::vector<MixerCase> AllCases() {
  std::vector<MixerCase> cases;
  for (auto kind : {MixerKind::kSequence, MixerKind::kChannel})
    for (const auto& name : ListMixers(kind)) {
      const MixerInfo& info = FindMixer(name, kind);
      const MixerTestHints& hints = info.tests;
      ContractCase base{"", "none", {}, false, hints.grad_rtol, hints.fd_eps};
      cases.push_back({name + (kind == MixerKind::kChannel ? "_channel" : ""), name, kind, base, hints});
      if (kind == MixerKind::kSequence)
        for (const auto& pos : info.supported_pos) {
          ContractCase c = base;
          c.pos = pos;
          cases.push_back({name + "_" + pos, name, kind, c, hints});
        }
      for (const auto& c : hints.extra_cases) cases.push_back({c.label, name, kind, c, hints});
    }
  return cases;
}

void PrintTo(const MixerCase& c, std::ostream* os) { *os << c.label; }

class MixerContract : public ::testing::TestWithParam<MixerCase> {
 protected:
  static constexpr int B = 2, T = 13, D = 16;
  MixerHarness Make(uint64_t seed = 1, const OptionMap& overrides = {}) {
    const auto& c = GetParam();
    OptionMap options = c.config.options;
    for (const auto& [k, v] : overrides) options.emplace(k, v);  // the case's own settings win
    return MixerHarness(c.name, c.kind, MixerDims{D, 2, 0, c.config.pos}, options, seed);
  }
  ForwardMode Mode() const { return ForwardMode{GetParam().config.training, 1234}; }
  bool IsSequence() const { return GetParam().kind == MixerKind::kSequence; }
  bool ZeroOutput() const { return GetParam().hints.zero_output; }
  double GradRtol() const { return GetParam().config.grad_rtol; }
  float FdEps() const { return GetParam().config.fd_eps; }
};

TEST_P(MixerContract, InputGradientMatchesFiniteDifferences) {
  auto h = Make();
  auto x = RandomVector(B * T * D, 11);
  auto dy = RandomVector(B * T * D, 12);
  auto pos = Positions(B, T);
  h.Forward(x, pos, B, T, Mode());
  const std::string routing = h.mixer->RoutingSignature();
  bool routing_changed = false;
  auto loss = [&] {  // including the mixer's auxiliary losses, whose gradients Backward adds
    const double l = Dot(dy, h.Forward(x, pos, B, T, Mode())) + h.mixer->AuxLoss();
    routing_changed |= h.mixer->RoutingSignature() != routing;
    return l;
  };
  std::vector<float> dx(x.size());
  h.mixer->Backward(*h.ctx, dy.data(), dx.data());
  if (ZeroOutput()) {
    EXPECT_EQ(MaxAbsDiff(dx.data(), std::vector<float>(dx.size()).data(), dx.size()), 0.0f);
    return;
  }
  ExpectGradientMatches(loss, x.data(), dx.data(), int64_t(x.size()), 60, FdEps(), GradRtol(), "dx");
  EXPECT_FALSE(routing_changed) << "a finite-difference perturbation changed the routing";
}

TEST_P(MixerContract, ParameterGradientsMatchFiniteDifferences) {
  auto h = Make();
  if (h.store.size() == 0) GTEST_SKIP() << "no parameters";
  auto x = RandomVector(B * T * D, 21);
  auto dy = RandomVector(B * T * D, 22);
  auto pos = Positions(B, T);
  h.store.ZeroGrad();
  h.Forward(x, pos, B, T, Mode());
  const std::string routing = h.mixer->RoutingSignature();
  bool routing_changed = false;
  // the loss includes the mixer's auxiliary losses, whose gradients Backward adds
  auto loss = [&] {
    const double l = Dot(dy, h.Forward(x, pos, B, T, Mode())) + h.mixer->AuxLoss();
    routing_changed |= h.mixer->RoutingSignature() != routing;
    return l;
  };
  std::vector<float> dx(x.size());
  h.mixer->Backward(*h.ctx, dy.data(), dx.data());
  for (const auto& p : h.store.params()) {
    if (p.spec.role == ParamRole::kState) {  // updated by the mixer, not by gradient: its gradient must stay zero
      const float* g = h.store.grads() + p.offset;
      EXPECT_TRUE(std::all_of(g, g + p.spec.Numel(), [](float v) { return v == 0.0f; })) << p.name;
      continue;
    }
    ExpectGradientMatches(loss, h.store.values() + p.offset, h.store.grads() + p.offset, p.spec.Numel(), 30, FdEps(),
                          GradRtol(), "d" + p.name);
  }
  EXPECT_FALSE(routing_changed) << "a finite-difference perturbation changed the routing";
}

TEST_P(MixerContract, IsCausal) {
  auto h = Make();
  auto x = RandomVector(B * T * D, 31);
  auto pos = Positions(B, T);
  auto y = h.Forward(x, pos, B, T, Mode());
  const int t0 = T / 2;
  for (int b = 0; b < B; ++b)
    for (int d = 0; d < D; ++d) x[(size_t(b) * T + t0) * D + d] += 1.0f;
  auto y2 = h.Forward(x, pos, B, T, Mode());
  for (int b = 0; b < B; ++b) {
    const size_t row = size_t(b) * T;
    EXPECT_LE(MaxAbsDiff(y.data() + row * D, y2.data() + row * D, int64_t(t0) * D), 1e-6f)
        << "output before t0 changed";
    if (ZeroOutput()) continue;
    EXPECT_GT(MaxAbsDiff(y.data() + (row + t0) * D, y2.data() + (row + t0) * D, D), 1e-6f)
        << "output at t0 did not change";
    if (IsSequence()) {
      // the next position (inside every window and block pattern tested here) must see the change
      EXPECT_GT(MaxAbsDiff(y.data() + (row + t0 + 1) * D, y2.data() + (row + t0 + 1) * D, D), 1e-6f)
          << "a sequence mixer's next output ignores the previous token";
    }
  }
}

TEST_P(MixerContract, BatchElementsAreIndependent) {
  auto h = Make();
  auto x = RandomVector(B * T * D, 41);
  auto pos = Positions(B, T);
  auto y = h.Forward(x, pos, B, T, Mode());
  for (int i = T * D; i < 2 * T * D; ++i) x[i] += 0.5f;  // change sequence 1 only
  auto y2 = h.Forward(x, pos, B, T, Mode());
  // Float rounding only: MoE experts see a different number of tokens, so their GEMMs block (and round) differently;
  // a leak between sequences moves outputs by orders of magnitude more.
  EXPECT_LE(MaxAbsDiff(y.data(), y2.data(), int64_t(T) * D), 1e-5f);
}

TEST_P(MixerContract, IsDeterministic) {
  auto h1 = Make(5), h2 = Make(5);
  auto x = RandomVector(B * T * D, 51);
  auto pos = Positions(B, T);
  auto y1 = h1.Forward(x, pos, B, T, Mode());
  auto y2 = h2.Forward(x, pos, B, T, Mode());
  auto y3 = h1.Forward(x, pos, B, T, Mode());
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(y1, y3);
}

TEST_P(MixerContract, StepEqualsForward) {
  if (GetParam().config.training) GTEST_SKIP() << "decoding runs without dropout";
  auto h = Make();
  auto x = RandomVector(B * T * D, 61);
  auto pos = Positions(B, T);
  auto y = h.Forward(x, pos, B, T);
  auto state = h.mixer->NewState(B);
  std::vector<float> xt(B * D), yt(B * D);
  std::vector<int32_t> pt(B);
  for (int t = 0; t < T; ++t) {
    for (int b = 0; b < B; ++b) {
      std::copy_n(x.data() + (size_t(b) * T + t) * D, D, xt.data() + b * D);
      pt[b] = pos[size_t(b) * T + t];
    }
    h.mixer->Step(xt.data(), pt.data(), yt.data(), *state);
    for (int b = 0; b < B; ++b)
      EXPECT_LE(MaxAbsDiff(yt.data() + b * D, y.data() + (size_t(b) * T + t) * D, D), 2e-5f) << "t=" << t << " b=" << b;
  }
}

// A forward that keeps nothing for Backward (evaluation, long-context inference) gives the training forward's output.
TEST_P(MixerContract, InferenceForwardEqualsForward) {
  if (GetParam().config.training) GTEST_SKIP() << "inference runs without dropout";
  auto h = Make();
  auto x = RandomVector(B * T * D, 71);
  auto pos = Positions(B, T);
  auto y = h.Forward(x, pos, B, T);
  ForwardMode inference;
  inference.inference = true;
  auto y_inference = h.Forward(x, pos, B, T, inference);
  EXPECT_LE(MaxAbsDiff(y.data(), y_inference.data(), int64_t(B) * T * D), 1e-5f);
}

TEST_P(MixerContract, DescribeCountsDeclaredParameters) {
  auto h = Make();
  const auto d = h.mixer->Describe(T);
  EXPECT_EQ(d.params, h.store.size());
  if (IsSequence()) {
    EXPECT_GT(d.state_floats_fixed + d.state_floats_per_token, 0) << "a sequence mixer carries decoding state";
  }
}

// The parameter a mixer declares as its per-head output projection, or nullptr.
const NamedParam* HeadOutput(const ParamStore& store) {
  for (const auto& p : store.params())
    if (p.spec.role == ParamRole::kHeadOutput) return &p;
  return nullptr;
}

// Head g's contribution to the output of one sequence through the value path: ((M_g values_g) .* gate_g) Wo_g.
RowMatrix HeadContribution(const RowMatrix& map, const MixingValuePath& path, const float* wo, int64_t rows, int D,
                           int groups, int g) {
  const int64_t T = map.rows();
  RowMatrix mixed = RowMatrix::Zero(T, rows);
  RowMatrix out = RowMatrix::Zero(T, D);
  for (int64_t r = 0; r < rows; ++r) {
    if (HeadGroupOfRow(r, rows, groups) != g) continue;
    Eigen::VectorXf m = map * path.values.col(r);
    if (path.gate.size()) m = m.cwiseProduct(path.gate.col(r));
    out += m * AsMatrix(wo + r * D, 1, D);
  }
  return out;
}

// Every sequence mixer exports one causal T x T map per head (per declared head group when it declares a head output
// projection); channel mixers mix no positions and export none.
TEST_P(MixerContract, MixingHasOneCausalMapPerHead) {
  auto h = Make();
  const auto x = RandomVector(T * D, 81);
  const auto pos = Positions(1, T);
  const auto maps = h.mixer->Mixing(x.data(), pos.data(), T);
  if (!IsSequence()) {
    EXPECT_TRUE(maps.empty()) << "a channel mixer mixes no positions";
    return;
  }
  ASSERT_FALSE(maps.empty()) << "a sequence mixer must export its mixing maps";
  if (const auto* wo = HeadOutput(h.store)) {
    EXPECT_EQ(int(maps.size()), wo->spec.head_groups) << "one map per head group of " << wo->name;
    EXPECT_GT(wo->spec.head_groups, 0);
    EXPECT_EQ(wo->spec.shape.size(), 2u);
    EXPECT_EQ(wo->spec.shape.back(), D) << wo->name << " must write d_model columns";
  }
  for (const auto& m : maps) {
    ASSERT_EQ(m.rows(), T);
    ASSERT_EQ(m.cols(), T);
    for (int t = 0; t < T; ++t)
      for (int s = t + 1; s < T; ++s) ASSERT_EQ(m(t, s), 0.0f) << "map is not causal at (" << t << ", " << s << ")";
    EXPECT_GT(m.cwiseAbs().maxCoeff(), 0.0f) << "an all-zero map";
  }
}

// Where the mixer exposes its value path, the maps are not a picture but the computation: summing every head's
// ((M_g values_g) .* gate_g) Wo_g gives Forward's output. A wrong kernel in Mixing() fails here.
TEST_P(MixerContract, MixingReproducesForwardThroughTheValuePath) {
  if (!IsSequence()) GTEST_SKIP() << "channel mixers mix no positions";
  auto h = Make(1, GetParam().hints.exact_mixing_options);
  const auto x = RandomVector(T * D, 91);
  const auto pos = Positions(1, T);
  const MixingValuePath path = h.mixer->MixingValues(x.data(), pos.data(), T);
  const auto* wo = HeadOutput(h.store);
  if (path.values.size() == 0 || !wo)
    GTEST_SKIP() << "no value path exposed (Mixer::MixingValues) or no head output declared";
  const auto maps = h.mixer->Mixing(x.data(), pos.data(), T);
  const int64_t rows = wo->spec.shape[0];
  ASSERT_EQ(path.values.rows(), T);
  ASSERT_EQ(path.values.cols(), rows) << "values must have one column per row of " << wo->name;
  RowMatrix sum = RowMatrix::Zero(T, D);
  for (int g = 0; g < int(maps.size()); ++g)
    sum += HeadContribution(maps[g], path, h.store.values() + wo->offset, rows, D, int(maps.size()), g);
  const auto y = h.Forward(x, pos, 1, T);
  const float scale = AsMatrix(y.data(), T, D).cwiseAbs().maxCoeff();
  EXPECT_LE(MaxAbsDiff(sum.data(), y.data(), int64_t(T) * D), 1e-4f * std::max(scale, 1.0f))
      << "sum over heads of map x values x output projection differs from Forward";
}

// Zeroing head g's rows of the declared head output projection (mixers/head_groups.h, as ablation does) removes
// exactly head g's contribution: through the value path where there is one, and in any case the heads' removals
// partition the output (they sum to it) and each head's removal changes it.
TEST_P(MixerContract, AblatingAHeadRemovesExactlyItsContribution) {
  if (!IsSequence()) GTEST_SKIP() << "channel mixers mix no positions";
  auto h = Make(1, GetParam().hints.exact_mixing_options);
  const auto* wo = HeadOutput(h.store);
  if (!wo) GTEST_SKIP() << "declares no head output projection: analysis skips its ablations";
  const auto x = RandomVector(T * D, 101);
  const auto pos = Positions(1, T);
  const auto y = h.Forward(x, pos, 1, T);
  const auto maps = h.mixer->Mixing(x.data(), pos.data(), T);
  const MixingValuePath path = h.mixer->MixingValues(x.data(), pos.data(), T);
  const int64_t rows = wo->spec.shape[0];
  const int groups = wo->spec.head_groups;
  float* w = h.store.values() + wo->offset;
  const std::vector<float> saved(w, w + wo->spec.Numel());
  const float tol = 1e-4f * std::max(AsMatrix(y.data(), T, D).cwiseAbs().maxCoeff(), 1.0f);
  RowMatrix removed_sum = RowMatrix::Zero(T, D);
  for (int g = 0; g < groups; ++g) {
    ZeroHeadRows(w, rows, D, groups, g);
    const auto ablated = h.Forward(x, pos, 1, T);
    std::copy(saved.begin(), saved.end(), w);
    RowMatrix removed = AsMatrix(y.data(), T, D) - AsMatrix(ablated.data(), T, D);
    EXPECT_GT(removed.cwiseAbs().maxCoeff(), 0.0f) << "removing head " << g << " changed nothing";
    removed_sum += removed;
    if (path.values.size() == 0) continue;
    const RowMatrix expected = HeadContribution(maps[g], path, saved.data(), rows, D, groups, g);
    EXPECT_LE(MaxAbsDiff(removed.data(), expected.data(), int64_t(T) * D), tol)
        << "ablating head " << g << " does not remove what its map, values and rows contribute";
  }
  EXPECT_LE(MaxAbsDiff(removed_sum.data(), y.data(), int64_t(T) * D), tol)
      << "the heads' removals do not sum to the output";
}

INSTANTIATE_TEST_SUITE_P(Registry, MixerContract, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<MixerCase>& i) { return TestName(i.param.label); });

}  // namespace
}  // namespace mixlab::testing
