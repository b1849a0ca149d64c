#include "mixers/ops/matmul.h"

#include <dnnl.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace mixlab {

void Gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, const float* B, float* C,
          bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) std::fill(C, C + M * N, 0.0f);
    return;
  }
  const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N,
                                          accumulate ? 1.0f : 0.0f, C, N);
  if (status != dnnl_success)
    throw std::runtime_error("oneDNN sgemm failed (status " + std::to_string(int(status)) + ") at " +
                             std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K));
}

}  // namespace mixlab
