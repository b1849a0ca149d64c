#include "mixers/positional.h"

#include <cmath>

namespace mixlab {

void ApplyRope(float* v, const int32_t* positions, int64_t n, int n_heads, int d_head, float base, bool inverse) {
  const int half = d_head / 2;
  Buffer inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(base, -2.0f * i / d_head);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    for (int i = 0; i < half; ++i) {
      const double angle = double(positions[r]) * inv_freq[i];
      const float c = float(std::cos(angle));
      const float s = inverse ? -float(std::sin(angle)) : float(std::sin(angle));
      for (int h = 0; h < n_heads; ++h) {
        float* x = v + (r * n_heads + h) * d_head;
        const float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
      }
    }
  }
}

Buffer AlibiSlopes(int n_heads) {
  Buffer slopes(n_heads);
  for (int h = 0; h < n_heads; ++h) slopes[h] = std::pow(2.0f, -8.0f * (h + 1) / n_heads);
  return slopes;
}

void AddSinusoid(float* x, int32_t pos, int d) {
  for (int i = 0; i < d / 2; ++i) {
    const double angle = pos / std::pow(10000.0, 2.0 * i / d);
    x[2 * i] += float(std::sin(angle));
    x[2 * i + 1] += float(std::cos(angle));
  }
}

}  // namespace mixlab
