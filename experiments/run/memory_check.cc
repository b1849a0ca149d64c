#include "experiments/run/memory_check.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "experiments/run/evaluate.h"
#include "mixers/ops/usage_error.h"
#include "models/language_model.h"

namespace mixlab {
namespace {

// Floats a layer keeps per token for backward: the mixer's projections and outputs, the norms, the channel
// mixer's hidden layer, the residual stream (a typical pre-norm block keeps 20-40 x d_model; 16 is a floor).
constexpr double kFloatsPerLayerToken = 16;
constexpr double kFloatsPerLogit = 3;  // logits, probabilities, their gradient

double ActivationBytes(const ModelConfig& c, double tokens) {
  return 4.0 * tokens * (kFloatsPerLayerToken * c.d_model * double(c.layers.size()) + kFloatsPerLogit * c.vocab);
}

std::string GiB(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / double(1 << 30));
  return buf;
}

void Refuse(const std::string& what, double parameters, double activations, const std::string& advice) {
  const double machine = double(PhysicalMemoryBytes());
  if (parameters + activations <= machine) return;
  throw UsageError(what + " needs at least " + GiB(parameters + activations) + " (parameters and optimizer " +
                   GiB(parameters) + ", activations " + GiB(activations) + "), more than this machine's " +
                   GiB(machine) + "; " + advice);
}

}  // namespace

void ResetPeakResidentMemory(bool* per_run) {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5" << std::flush;
  *per_run = bool(clear);
}

double PeakResidentMemoryMb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // "VmHWM:  12345 kB"
  return 0;
}

int64_t PhysicalMemoryBytes() { return int64_t(sysconf(_SC_PHYS_PAGES)) * int64_t(sysconf(_SC_PAGE_SIZE)); }

MemoryEstimate EstimateRunMemory(const RunSpec& spec) {
  const auto& t = spec.train;
  MemoryEstimate e;
  e.parameter_bytes = 16.0 * double(LanguageModel::PlannedParams(spec.model));
  double tokens = double(std::max(1, t.batch / t.grad_accum)) * t.train_len;  // one micro-batch's activations
  for (int T : t.eval_lens) tokens = std::max(tokens, double(EvalBatchSize(t.batch, t.train_len, T)) * T);
  e.activation_bytes = ActivationBytes(spec.model, tokens);
  return e;
}

void CheckMemory(const RunSpec& spec) {
  const MemoryEstimate e = EstimateRunMemory(spec);
  Refuse("this run", e.parameter_bytes, e.activation_bytes,
         "raise --grad-accum, or reduce --batch, --train-len / --eval-lens, --d-model or the number of layers");
}

void CheckMixingMapMemory(const ModelConfig& config, int T) {
  const double bytes = 4.0 * double(T) * double(T) * double(config.layers.size()),
               machine = double(PhysicalMemoryBytes());
  if (bytes > machine)
    throw UsageError("--length " + std::to_string(T) + ": the mixing maps alone need at least " + GiB(bytes) +
                     " (T x T floats per head and layer), more than this machine's " + GiB(machine) +
                     "; choose a shorter --length");
}

}  // namespace mixlab
