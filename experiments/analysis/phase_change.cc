#include "experiments/analysis/phase_change.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace mixlab {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  const double upper = v[mid];
  if (v.size() % 2) return upper;
  return 0.5 * (upper + *std::max_element(v.begin(), v.begin() + mid));
}

std::string Format(const char* format, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

}  // namespace

PhaseChange DetectPhaseChange(const std::vector<double>& values, const PhaseChangeOptions& options) {
  if (values.size() < 3)
    throw std::invalid_argument("phase-change detection needs at least 3 points, got " + std::to_string(values.size()));
  const int intervals = int(values.size()) - 1;
  const int window = std::clamp(options.window > 0 ? options.window : intervals / 10, 1, intervals);
  PhaseChange p;
  p.from_index = 0;
  p.to_index = window;
  for (int i = 0; i + window <= intervals; ++i)
    if (values[i + window] - values[i] > values[p.to_index] - values[p.from_index])
      p.from_index = i, p.to_index = i + window;
  p.rise = values[p.to_index] - values[p.from_index];
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const double range = *hi - *lo;
  p.share = range > 0 ? p.rise / range : 0;

  std::vector<double> others;  // single-interval changes outside the window
  for (int i = 0; i < intervals; ++i)
    if (i < p.from_index || i >= p.to_index) others.push_back(values[i + 1] - values[i]);
  const double typical = Median(others);
  std::vector<double> deviation;
  for (double d : others) deviation.push_back(std::fabs(d - typical));
  p.spread = 1.4826 * Median(deviation);
  // A spread of zero (a curve flat outside the window) is floored at a millionth of the range, so a clean step is
  // infinitely abrupt in principle but finite in the report.
  const double floor = 1e-6 * std::max(range, 1e-12);
  p.z = (p.rise - window * typical) / (std::max(p.spread, floor) * std::sqrt(double(window)));

  if (p.rise <= 0) {
    p.reason = "the curve never rises";
  } else if (others.size() < 3) {
    p.reason = "too few points outside the window to estimate the noise (need 3 intervals, have " +
               std::to_string(others.size()) + ")";
  } else if (p.from_index < 2) {
    p.reason = "the steepest window starts with training (the initial fit), not after a plateau";
  } else if (const auto [before_lo, before_hi] = std::minmax_element(values.begin(), values.begin() + p.from_index + 1);
             *before_hi - *before_lo >= 0.5 * p.rise) {
    p.reason = Format("no plateau before it: the curve had already moved %.3g before a rise of %.3g",
                      *before_hi - *before_lo, p.rise);
  } else if (p.share < options.min_share) {
    p.reason = Format("gradual: the steepest window carries %.0f%% of the range (needs %.0f%%)", 100 * p.share,
                      100 * options.min_share);
  } else if (p.z < options.min_z) {
    p.reason = Format("within the noise: the rise is %.1f spreads of the other intervals' changes (needs %.1f)", p.z,
                      options.min_z);
  } else {
    p.detected = true;
    p.reason =
        Format("abrupt: %.0f%% of the range in one window, %.1f spreads above the other intervals", 100 * p.share, p.z);
  }
  return p;
}

bool WindowsOverlap(const PhaseChange& a, const PhaseChange& b) {
  return a.from_index < b.to_index && b.from_index < a.to_index;
}

}  // namespace mixlab
