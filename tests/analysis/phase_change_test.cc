// The phase-change detector on synthetic curves: it finds a step where there is one, and says "no phase change"
// for a steady ramp, a flat noisy curve, a slow sigmoid, a falling curve, the initial fit of training and a jump that
// follows no plateau.
#include "experiments/analysis/phase_change.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>

namespace mixlab::testing {
namespace {

// n points of `shape(i)` plus Gaussian noise of standard deviation `noise`.
template <class Shape>
std::vector<double> Curve(int n, double noise, uint64_t seed, Shape shape) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0.0, noise);
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(shape(i) + gauss(rng));
  return v;
}

TEST(PhaseChange, FindsANoisyStepAndItsWindow) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto v = Curve(40, 0.01, seed, [](int i) { return i < 17 ? 0.05 : 0.6; });
    const PhaseChange p = DetectPhaseChange(v);
    EXPECT_TRUE(p.detected) << "seed " << seed << ": " << p.reason;
    EXPECT_LE(p.from_index, 16);
    EXPECT_GE(p.to_index, 17);
    EXPECT_GT(p.share, 0.8);
  }
}

TEST(PhaseChange, FindsAStepSpreadOverAFewSnapshots) {
  // A transition over 3 of 40 intervals (a tenth of the run is 4 intervals).
  const auto v = Curve(41, 0.01, 1, [](int i) { return 0.1 + 0.7 / (1 + std::exp(-(i - 20.0) * 2.0)); });
  const PhaseChange p = DetectPhaseChange(v);
  EXPECT_TRUE(p.detected) << p.reason;
  EXPECT_LE(p.from_index, 20);
  EXPECT_GE(p.to_index, 20);
}

TEST(PhaseChange, SaysNoForARampNoiseASlowSigmoidAndAFall) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const PhaseChange ramp = DetectPhaseChange(Curve(40, 0.01, seed, [](int i) { return 0.02 * i; }));
    EXPECT_FALSE(ramp.detected) << "ramp, seed " << seed << ": " << ramp.reason;
    const PhaseChange noise = DetectPhaseChange(Curve(40, 0.05, seed, [](int) { return 0.3; }));
    EXPECT_FALSE(noise.detected) << "noise, seed " << seed << ": " << noise.reason;
    const PhaseChange slow =
        DetectPhaseChange(Curve(40, 0.01, seed, [](int i) { return 0.8 / (1 + std::exp(-(i - 20.0) / 6.0)); }));
    EXPECT_FALSE(slow.detected) << "slow sigmoid, seed " << seed << ": " << slow.reason;
    const PhaseChange fall = DetectPhaseChange(Curve(40, 0.0, seed, [](int i) { return i < 20 ? 0.9 : 0.1; }));
    EXPECT_FALSE(fall.detected) << "a fall is not a rise";
    // Every learning curve rises fastest at its start: a saturating fit is not a phase change.
    const PhaseChange fit =
        DetectPhaseChange(Curve(40, 0.005, seed, [](int i) { return 0.6 * (1 - std::exp(-i / 1.5)); }));
    EXPECT_FALSE(fit.detected) << "initial fit, seed " << seed << ": " << fit.reason;
    // Two rises: the curve is still climbing from its first when the second comes, so there is no plateau before it.
    const PhaseChange climbing =
        DetectPhaseChange(Curve(40, 0.0, seed, [](int i) { return i < 10 ? 0.04 * i : 0.4 + (i >= 12) * 0.5; }));
    EXPECT_FALSE(climbing.detected) << "no plateau before the jump: " << climbing.reason;
  }
}

TEST(PhaseChange, ReportsItsNumbersAndRefusesTooShortCurves) {
  const std::vector<double> v = {0, 0.01, 0, 0.01, 0, 1, 1.01, 1, 1.01, 1, 1.01};
  const PhaseChange p = DetectPhaseChange(v, {.window = 1});
  EXPECT_TRUE(p.detected) << p.reason;
  EXPECT_EQ(p.from_index, 4);
  EXPECT_EQ(p.to_index, 5);
  EXPECT_NEAR(p.rise, 1.0, 1e-12);
  EXPECT_NEAR(p.share, 1.0 / 1.01, 1e-12);
  EXPECT_GT(p.z, 4.0);
  EXPECT_THROW(DetectPhaseChange({0.0, 1.0}), std::invalid_argument);
}

TEST(PhaseChange, WindowsOverlapOnlyWhenTheyShareAnInterval) {
  PhaseChange a, b;
  a.from_index = 3, a.to_index = 5;
  b.from_index = 5, b.to_index = 7;
  EXPECT_FALSE(WindowsOverlap(a, b));
  b.from_index = 4;
  EXPECT_TRUE(WindowsOverlap(a, b));
  EXPECT_TRUE(WindowsOverlap(b, a));
}

}  // namespace
}  // namespace mixlab::testing
