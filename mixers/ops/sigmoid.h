// The logistic function, for one float and for Eigen arrays (vectorised): sigmoid(x) = 1 / (1 + exp(-x)).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace mixlab {

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

template <class Derived>
auto Sigmoid(const Eigen::ArrayBase<Derived>& x) {
  return 1.0f / (1.0f + (-x).exp());
}

// log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)), stable for any x.
inline float LogSigmoid(float x) { return std::min(x, 0.0f) - std::log1p(std::exp(-std::abs(x))); }

template <class Derived>
auto LogSigmoid(const Eigen::ArrayBase<Derived>& x) {
  return x.min(0.0f) - (-x.abs()).exp().log1p();
}

// The bias b of a gate alpha = sigmoid(b)^(1 / temperature) that starts at decay alpha: logit(alpha^temperature).
inline float GateBiasForDecay(double alpha, double temperature) {
  const double s = std::pow(alpha, temperature);
  return float(std::log(s / (1.0 - s)));
}

}  // namespace mixlab
