// RWKV's token shift: each channel interpolates between the current token and the previous one,
//   x^mu_t = mu .* x_t + (1 - mu) .* x_{t-1}      (x_{-1} = 0, or the decoding state's last token)
// with a learned mu in [0, 1] per channel. Shared by the rwkv time mix and the rwkv-ffn channel mix.
#pragma once
#include <cstdint>

#include "mixers/ops/row_block_sums.h"

namespace mixlab {

// out (B, T, D) = the shift of x (B, T, D) with mix mu (D); `first_prev` (B, D) is x_{-1} per sequence (nullptr: 0).
inline void TokenShift(const float* x, const float* mu, const float* first_prev, int64_t B, int64_t T, int64_t D,
                       float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; ++bt) {
    const int64_t b = bt / T, t = bt % T;
    const float* cur = x + bt * D;
    const float* prev = t > 0 ? cur - D : first_prev ? first_prev + b * D : nullptr;
    float* o = out + bt * D;
    for (int64_t d = 0; d < D; ++d) o[d] = mu[d] * cur[d] + (1.0f - mu[d]) * (prev ? prev[d] : 0.0f);
  }
}

// Backward of TokenShift from the start of each sequence (x_{-1} = 0): dx_t += dout_t .* mu + dout_{t+1} .* (1 - mu)
// (each row gathers from its own and the next token, so rows run in parallel); dmu (D) += sum over tokens of
// dout .* (x_t - x_{t-1}), by row blocks (the same sums for any thread count).
inline void TokenShiftBackward(const float* x, const float* mu, const float* dout, int64_t B, int64_t T, int64_t D,
                               float* dx, float* dmu) {
  AddRowBlockSums(B * T, D, dmu, [&](int64_t bt, float* acc) {
    const int64_t t = bt % T, row = bt * D;
    const float* next = t + 1 < T ? dout + row + D : nullptr;
    for (int64_t d = 0; d < D; ++d) {
      const float g = dout[row + d];
      const float prev = t > 0 ? x[row - D + d] : 0.0f;
      dx[row + d] += g * mu[d] + (next ? next[d] * (1.0f - mu[d]) : 0.0f);
      acc[d] += g * (x[row + d] - prev);
    }
  });
}

}  // namespace mixlab
