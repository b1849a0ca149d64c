// Embedding lookup: forward gathers rows of the table, backward scatters-adds into the table gradient.
#include <cstring>

#include "mixers/ops/ops.h"

namespace mixlab {

void EmbeddingForward(const int32_t* tokens, const float* table, float* y, int64_t n, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) std::memcpy(y + i * d, table + int64_t(tokens[i]) * d, d * sizeof(float));
}

void EmbeddingBackward(const int32_t* tokens, const float* dy, float* dtable, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n; ++i) {  // serial: rows may repeat, and order must be deterministic
    float* row = dtable + int64_t(tokens[i]) * d;
    for (int64_t j = 0; j < d; ++j) row[j] += dy[i * d + j];
  }
}

}  // namespace mixlab
