// RWKV's token shift: each channel interpolates between the current token and the previous one,
//   x^mu_t = mu .* x_t + (1 - mu) .* x_{t-1}      (x_{-1} = 0, or the decoding state's last token)
// with a learned mu in [0, 1] per channel. Shared by the rwkv time mix and the rwkv-ffn channel mix.
#pragma once
#include <cstdint>

namespace mixlab {

// out (B, T, D) = the shift of x (B, T, D) with mix mu (D); `first_prev` (B, D) is x_{-1} per sequence (nullptr: 0).
inline void TokenShift(const float* x, const float* mu, const float* first_prev, int64_t B, int64_t T, int64_t D,
                       float* out) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* cur = x + (b * T + t) * D;
      const float* prev = t > 0 ? cur - D : first_prev ? first_prev + b * D : nullptr;
      float* o = out + (b * T + t) * D;
      for (int64_t d = 0; d < D; ++d) o[d] = mu[d] * cur[d] + (1.0f - mu[d]) * (prev ? prev[d] : 0.0f);
    }
}

// Backward of TokenShift from the start of each sequence (x_{-1} = 0): dx += the gradient through both the current
// and the previous token; dmu (D) += sum over tokens of dout .* (x_t - x_{t-1}), in a fixed order.
inline void TokenShiftBackward(const float* x, const float* mu, const float* dout, int64_t B, int64_t T, int64_t D,
                               float* dx, float* dmu) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = (b * T + t) * D;
      for (int64_t d = 0; d < D; ++d) {
        const float g = dout[row + d];
        const float prev = t > 0 ? x[row - D + d] : 0.0f;
        dx[row + d] += g * mu[d];
        if (t > 0) dx[row - D + d] += g * (1.0f - mu[d]);
        dmu[d] += g * (x[row + d] - prev);
      }
    }
}

}  // namespace mixlab
