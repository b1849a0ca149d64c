// Peak heap use of a benchmark binary. heap_tracker.cc interposes malloc, calloc, realloc, free and the aligned
// allocators (glibc), counting the usable size of every live block, so a benchmark can report the peak bytes its
// measured iterations allocated on top of what was live before, whichever allocator asked (std, Eigen, oneDNN).
#pragma once
#include <cstdint>

namespace mixlab::bench {

// Starts a new measurement: the peak is reset to the bytes live now, which become the baseline.
void ResetPeakHeap();
// Peak live bytes since the last reset, above the baseline.
int64_t PeakHeapBytes();

}  // namespace mixlab::bench
