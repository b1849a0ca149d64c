// Weight gradient of a linear layer: dW (in, out) += x^T dy, with x (n, in) and dy (n, out) row-major and n (the
// tokens) much larger than in and out.
//
// oneDNN's sgemm sends this shape (small output, long sum) to a kernel slower than its forward products and whose speed
// moves with the address of dy (measurements: docs/bench/optimizations.md). This is a packed GEMM written for the
// shape instead:
//   - the sum runs over blocks of kBlock tokens; per block, x is packed into panels of 6 columns (k-major, so a
//     panel is one contiguous stream) and dy into panels of two vector widths (32 columns with AVX-512, 16 with AVX2);
//   - a 6 x 32 (or 6 x 16) register tile (12 vector accumulators) walks a pair of panels from L1 and adds into dW;
//   - threads split the column panels of dW (or its 6-row panels when out is narrow): no reduction between
//     threads, no barrier; each packs the x panels it needs.
// Every dW entry is summed in the same order whatever the number of threads. Parallel inside (OpenMP): call it
// outside parallel regions; inside one it runs on the calling thread.
#pragma once
#include <cstdint>

namespace mixlab {

void AddWeightGradient(const float* x, const float* dy, float* dW, int64_t n, int64_t in, int64_t out);

}  // namespace mixlab
