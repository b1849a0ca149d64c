// A run's memory, estimated before anything large is allocated, so that an impossible size (--batch 1048576,
// --train-len 16777216, --d-model 8192 with 256 layers) is refused with one line instead of failing in the
// allocator or being killed by the kernel.
#pragma once
#include <cstdint>
#include <string>

#include "experiments/run/run_spec.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

struct MemoryEstimate {
  double parameter_bytes = 0;   // values, gradients and AdamW's two moments
  double activation_bytes = 0;  // the larger of a training step's saved activations and an evaluation batch's
  double total() const { return parameter_bytes + activation_bytes; }
};

// A lower bound by design: parameters exactly, activations as a per-token budget of floats per layer plus the
// logits. It separates impossible runs from possible ones; it does not predict the peak to the megabyte.
MemoryEstimate EstimateRunMemory(const RunSpec& spec);

// The machine's physical memory in bytes.
int64_t PhysicalMemoryBytes();

// Per-run peak memory in one process (compare trains many runs): ResetPeakResidentMemory() clears the kernel's
// high-water mark of this process (writing 5 to /proc/self/clear_refs); PeakResidentMemoryMb() reads it (VmHWM).
// Where the reset is unavailable the peak is the process's since its start, and `per_run` says so.
void ResetPeakResidentMemory(bool* per_run);
double PeakResidentMemoryMb();

// Throws UsageError when the estimate exceeds the machine's memory, naming both and the flags to reduce.
void CheckMemory(const RunSpec& spec);

// analyze's mixing maps are T x T floats per head: throws UsageError naming --length when one map per layer (a lower
// bound) exceeds the machine's memory.
void CheckMixingMapMemory(const ModelConfig& config, int T);

}  // namespace mixlab
