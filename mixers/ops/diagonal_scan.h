// The diagonal complex linear recurrence of one channel (S4D's training scan), in double, vectorised over its modes:
//
//   h_t = z h_{t-1} + beta u_t   (h_{-1} = 0),        y_t = 2 Re sum_n c_n h_{t,n}
//
// and its reverse pass, with lambda_t the complex gradient of h_t (dL = 2 Re(dh . lambda)) for output gradients g_t:
//
//   lambda_t = g_t c + z lambda_{t+1},   G_z = sum_t lambda_t h_{t-1},   G_beta = sum_t lambda_t u_t,
//   G_c = sum_t g_t h_t,                 du_t = 2 Re sum_n beta_n lambda_{t,n}.
//
// Modes go kScanModes at a time (two machine vectors, so two recurrence chains overlap) with the state, the constants
// and the sums in registers. The reverse pass needs h_{t-1} and h_t: it keeps the state every kScanChunk tokens from a
// first forward pass and recomputes one chunk's states at a time into a buffer that stays in L1 (2 forward passes and
// a reverse one, no T x modes state array). Cost per channel and sequence: O(T M) forward, about 3x that backward.
#pragma once
#include <cstdint>
#include <vector>

#include "mixers/ops/small_gemm.h"

namespace mixlab {

// Two double vectors of the machine's width: as many modes as its widest float vector holds floats.
constexpr int kScanModes = small_gemm_detail::kLanes;

// The modes of one channel, real and imaginary parts apart, padded with zero modes (z = beta = c = 0, which stay 0 and
// add nothing) to `padded`, a multiple of kScanModes.
struct DiagonalModes {
  int count = 0, padded = 0;
  std::vector<double> z_re, z_im, beta_re, beta_im, c_re, c_im;
  explicit DiagonalModes(int modes);
  static int Padded(int modes) { return (modes + kScanModes - 1) / kScanModes * kScanModes; }
};

// y[t] = 2 Re sum_n c_n h_{t,n} for t < T, reading u[t * stride].
void DiagonalScanForward(const DiagonalModes& m, const float* u, int64_t stride, int64_t T, double* y);

// du[t] = 2 Re(beta . lambda_t) for t < T, reading u[t * stride] and g[t * stride]; writes G_z, G_beta and G_c as
// (2, padded) arrays: real parts, then imaginary parts.
void DiagonalScanBackward(const DiagonalModes& m, const float* u, const float* g, int64_t stride, int64_t T, double* du,
                          double* g_z, double* g_beta, double* g_c);

}  // namespace mixlab
