// Softmax attention beyond the generic contract: the tiled online softmax equals the naive T x T reference,
// RoPE and ALiBi depend only on relative positions, ALiBi slopes, and the exported mixing matrices reproduce
// the forward pass through the value path.
#include <gtest/gtest.h>

#include "mixers/ops/matmul.h"
#include "mixers/positional.h"
#include "tests/test_util.h"

namespace mixlab::testing {
namespace {

constexpr int D = 16;

ForwardBackward RunAttention(const std::string& pos, const OptionMap& options, int B, int T, bool training = false,
                             const std::string& mixer = "softmax") {
  MixerHarness h(mixer, MixerKind::kSequence, MixerDims{D, 2, 0, pos}, options, 3);
  return RunForwardBackward(h, B, T, D, ForwardMode{training, 77});
}

TEST(Attention, TiledEqualsNaiveForwardAndBackward) {
  for (const std::string pos : {"none", "rope", "alibi"})
    for (int T : {1, 7, 64, 130})
      for (int tile : {1, 5, 16, 64, 200}) {
        for (bool dropout : {false, true}) {
          OptionMap tiled{{"tile", std::to_string(tile)}}, naive{{"impl", "naive"}};
          if (dropout) tiled["dropout"] = naive["dropout"] = "0.3";
          const ForwardBackward a = RunAttention(pos, tiled, 2, T, dropout),
                                b = RunAttention(pos, naive, 2, T, dropout);
          const std::string at =
              pos + " T=" + std::to_string(T) + " tile=" + std::to_string(tile) + (dropout ? " dropout" : "");
          EXPECT_LT(RelativeDiff(a.y, b.y), 1e-5f) << at;
          EXPECT_LT(RelativeDiff(a.dx, b.dx), 1e-4f) << at;
          EXPECT_LT(RelativeDiff(a.grads, b.grads), 1e-4f) << at;
        }
      }
}

TEST(Attention, LocalAndSparseTiledEqualNaive) {
  const std::vector<std::pair<std::string, OptionMap>> variants = {
      {"local", {{"window", "5"}}},
      {"local", {{"window", "17"}, {"n-global", "3"}}},
      {"sparse", {{"block", "4"}, {"random-blocks", "2"}}},
      {"sparse", {{"block", "8"}, {"window-blocks", "0"}, {"global-blocks", "2"}}}};
  for (const auto& [mixer, options] : variants)
    for (int T : {7, 64, 130})
      for (int tile : {3, 16, 64}) {
        OptionMap tiled = options, naive = options;
        tiled["tile"] = std::to_string(tile);
        naive["impl"] = "naive";
        const ForwardBackward a = RunAttention("rope", tiled, 2, T, false, mixer),
                              b = RunAttention("rope", naive, 2, T, false, mixer);
        const std::string at = mixer + " T=" + std::to_string(T) + " tile=" + std::to_string(tile);
        EXPECT_LT(RelativeDiff(a.y, b.y), 1e-5f) << at;
        EXPECT_LT(RelativeDiff(a.dx, b.dx), 1e-4f) << at;
        EXPECT_LT(RelativeDiff(a.grads, b.grads), 1e-4f) << at;
      }
}

TEST(Attention, LocalAndSparseMixingFollowsThePattern) {
  const int T = 40;
  auto x = RandomVector(T * D, 9);
  auto pos = Positions(1, T);
  MixerHarness local("local", MixerKind::kSequence, MixerDims{D, 2, 0, "none"}, {{"window", "6"}, {"n-global", "2"}},
                     3);
  local.Forward(x, pos, 1, T);
  for (const auto& m : local.mixer->Mixing(x.data(), pos.data(), T))
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) {
        const bool allowed = j <= i && (i - j < 6 || j < 2);
        EXPECT_EQ(m(i, j) > 0.0f, allowed) << "local i=" << i << " j=" << j;
      }
  MixerHarness sparse("sparse", MixerKind::kSequence, MixerDims{D, 2, 0, "none"},
                      {{"block", "4"}, {"window-blocks", "1"}, {"global-blocks", "1"}, {"random-blocks", "1"}}, 3);
  auto maps = sparse.mixer->Mixing(x.data(), pos.data(), T);
  for (int bi = 3; bi < T / 4; ++bi) {  // blocks with a candidate for a random block
    int random_blocks = 0;
    for (int bj = 1; bj < bi - 1; ++bj) random_blocks += maps[0](bi * 4, bj * 4) > 0.0f;
    EXPECT_EQ(random_blocks, 1) << "query block " << bi << " should see exactly one random block";
    EXPECT_GT(maps[0](bi * 4, 0), 0.0f) << "global block";
    EXPECT_GT(maps[0](bi * 4, (bi - 1) * 4), 0.0f) << "previous block";
  }
}

TEST(Attention, DropoutChangesTrainingOutputOnly) {
  const ForwardBackward eval_mode = RunAttention("none", {{"dropout", "0.3"}}, 1, 20, false);
  const ForwardBackward plain = RunAttention("none", {}, 1, 20, false);
  const ForwardBackward train_mode = RunAttention("none", {{"dropout", "0.3"}}, 1, 20, true);
  EXPECT_EQ(eval_mode.y, plain.y);
  EXPECT_GT(RelativeDiff(train_mode.y, plain.y), 1e-3f);
}

TEST(Attention, RopeAndAlibiDependOnlyOnRelativePosition) {
  for (const std::string pos : {"rope", "alibi"}) {
    MixerHarness h("softmax", MixerKind::kSequence, MixerDims{D, 2, 0, pos}, {}, 3);
    const int T = 24;
    auto x = RandomVector(T * D, 6);
    auto y0 = h.Forward(x, Positions(1, T, 0), 1, T);
    auto y1 = h.Forward(x, Positions(1, T, 1000), 1, T);
    EXPECT_LT(RelativeDiff(y1, y0), 2e-4f) << pos;
  }
  // and absolute positions do matter for RoPE's rotation itself
  std::vector<float> v = RandomVector(2 * 8, 7), w = v;
  std::vector<int32_t> p0 = {0, 0}, p1 = {5, 5};
  ApplyRope(v.data(), p0.data(), 2, 1, 8, 10000.0f, false);
  ApplyRope(w.data(), p1.data(), 2, 1, 8, 10000.0f, false);
  EXPECT_GT(MaxAbsDiff(v.data(), w.data(), 16), 1e-3f);
  ApplyRope(w.data(), p1.data(), 2, 1, 8, 10000.0f, true);  // inverse undoes it
  EXPECT_LT(MaxAbsDiff(v.data(), w.data(), 16), 1e-5f);
}

TEST(Attention, AlibiSlopesAreGeometric) {
  const auto s8 = AlibiSlopes(8);
  for (int h = 0; h < 8; ++h) EXPECT_FLOAT_EQ(s8[h], std::pow(2.0f, -float(h + 1)));
  const auto s4 = AlibiSlopes(4);
  for (int h = 0; h < 4; ++h) EXPECT_FLOAT_EQ(s4[h], std::pow(2.0f, -2.0f * float(h + 1)));
}

// That the maps reproduce Forward is the registry-wide contract
// (MixerContract.MixingReproducesForwardThroughTheValuePath); softmax attention's maps are also distributions over the
// allowed positions.
TEST(Attention, MixingRowsAreDistributions) {
  const int T = 19;
  const auto x = RandomVector(int64_t(T) * D, 8);
  const auto pos = Positions(1, T);
  for (const std::string p : {"none", "rope", "alibi"})
    for (const auto& [mixer, options] : std::vector<std::pair<std::string, OptionMap>>{
             {"softmax", {{"n-heads", "2"}}},
             {"local", {{"n-heads", "2"}, {"window", "5"}, {"n-global", "1"}}},
             {"sparse", {{"n-heads", "2"}, {"block", "3"}}}}) {
      MixerHarness h(mixer, MixerKind::kSequence, MixerDims{D, 2, 0, p}, options, 3);
      for (const auto& m : h.mixer->Mixing(x.data(), pos.data(), T))
        for (int t = 0; t < T; ++t) EXPECT_NEAR(m.row(t).sum(), 1.0f, 1e-5) << mixer << " " << p << " row " << t;
    }
}

}  // namespace
}  // namespace mixlab::testing
