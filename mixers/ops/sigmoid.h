// The logistic function, for one float and for Eigen arrays (vectorised): sigmoid(x) = 1 / (1 + exp(-x)).
#pragma once
#include <Eigen/Core>
#include <cmath>

namespace mixlab {

inline float Sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

template <class Derived>
auto Sigmoid(const Eigen::ArrayBase<Derived>& x) {
  return 1.0f / (1.0f + (-x).exp());
}

}  // namespace mixlab
