// The vectorised expm1 against double-precision std::expm1: relative error within 2.5e-7 (the header states 1.2e-7)
// from the clamp at -87 to 88, small arguments without cancellation, the clamp itself, and the array form's tail;
// exp = expm1 + 1 to within rounding.
#include "mixers/ops/expm1.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace mixlab::testing {
namespace {

double RelativeError(float got, double want) { return std::abs(double(got) - want) / std::max(std::abs(want), 1e-300); }

TEST(Expm1, MatchesDoublePrecisionOverTheWholeRange) {
  std::vector<float> a;
  for (double x = -87.0; x <= 88.0; x += 0.0137) a.push_back(float(x));                // every k of the range reduction
  for (double x = 1e-30; x < 1.0; x *= 1.7) a.insert(a.end(), {float(x), float(-x)});  // tiny: no cancellation allowed
  for (float x : {0.0f, 0.34657359f, -0.34657359f, 0.34657362f, 0.69314718f, -0.69314718f}) a.push_back(x);
  std::vector<float> out(a.size()), exp_out(a.size());
  Expm1(a.data(), out.data(), int64_t(a.size()), exp_out.data());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double want = std::expm1(double(a[i]));
    worst = std::max(worst, a[i] == 0.0f ? std::abs(double(out[i])) : RelativeError(out[i], want));
    const double e = std::exp(double(a[i]));  // expm1 + 1: accurate to float rounding of 1 where exp is small
    EXPECT_NEAR(exp_out[i], e, 1.2e-7 * std::max(1.0, e)) << a[i];
  }
  EXPECT_LT(worst, 2.5e-7);
}

TEST(Expm1, ClampsOutsideTheFloatRange) {
  const float a[3] = {-1000.0f, -87.0f, -88.5f};
  float out[3];
  Expm1(a, out, 3);
  for (float v : out) EXPECT_FLOAT_EQ(v, -1.0f);
}

TEST(Expm1, ArrayTailAndVectorKernelAgree) {
  std::vector<float> a(37);  // two whole vectors and a tail of 5
  for (size_t i = 0; i < a.size(); ++i) a[i] = -3.0f + 0.17f * float(i);
  std::vector<float> out(a.size(), 99.0f);
  Expm1(a.data(), out.data(), int64_t(a.size()));
  for (size_t i = 0; i < a.size(); ++i) {
    float lane[16] = {a[i]}, res[16];
    Store16(res, Expm1(Load16(lane)));
    EXPECT_EQ(out[i], res[0]) << i;
  }
}

TEST(Expm1, HorizontalSumAddsEveryLane) {
  float v[16];
  for (int i = 0; i < 16; ++i) v[i] = float(1 << i);
  EXPECT_EQ(HorizontalSum(Load16(v)), float((1 << 16) - 1));
}

}  // namespace
}  // namespace mixlab::testing
