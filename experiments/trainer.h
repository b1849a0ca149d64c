// The training loop: seeded data stream, AdamW with warmup + cosine, periodic validation at every eval
// length, metrics.jsonl, atomic checkpoints, NaN/Inf detection (stops, names the step and the tensor, keeps
// the last good checkpoint), and a final test evaluation written to results.json.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/evaluate.h"
#include "experiments/run_spec.h"

namespace mixlab {

struct TrainResult {
  std::string run_dir;
  int steps_done = 0;
  bool diverged = false;
  std::string divergence;        // "step 12: non-finite gradient in layers.0.mixer.wq"
  double train_seconds = 0, tokens_per_second = 0;
  int64_t params = 0;
  std::vector<EvalResult> test;  // final test split, one per eval length
  int steps_to_99 = -1;          // first validation step with accuracy >= 0.99 at the training length
  nlohmann::json ToJson() const;
};

struct TrainHooks {
  std::string progress_prefix;  // e.g. "[3/10] mqar softmax rope s0"
  bool quiet = false;           // no per-step lines (tests)
  // Called after every optimizer step (tests use it to inject faults).
  std::function<void(LanguageModel&, int step)> after_step;
};

TrainResult Train(RunSpec& spec, const TrainHooks& hooks = {});

// Checks lengths and positions before any work: every eval length must be generable by the task and fit
// a learned positional table. Throws UsageError.
void ValidateRun(const RunSpec& spec, const Task& task);

}  // namespace mixlab
