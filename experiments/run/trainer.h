// The training loop: seeded data stream, AdamW with warmup + cosine, periodic validation at every eval
// length, metrics.jsonl, atomic checkpoints, NaN/Inf detection (stops, names the step and the tensor, keeps
// the last good checkpoint), and a final test evaluation written to results.json.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/run/communicator.h"
#include "experiments/run/evaluate.h"
#include "experiments/run/run_spec.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

struct TrainResult {
  std::string run_dir;
  int steps_done = 0;
  bool diverged = false;
  std::string divergence;  // "step 12: non-finite gradient in layers.0.mixer.wq"
  double train_seconds = 0, tokens_per_second = 0;
  // Throughput after this process's first step, which allocates and first touches every buffer and lets oneDNN generate
  // its GEMM kernels (PyTorch benchmarks likewise time after a warm-up step); 0 below two steps.
  double warm_tokens_per_second = 0;
  int64_t params = 0;
  std::vector<EvalResult> test;        // final test split, one per eval length
  std::vector<EvalResult> validation;  // last validation (model selection uses it, never the test split)
  int steps_to_99 = -1;                // first validation step with accuracy >= 0.99 at the training length
  int64_t tokens_to_99 = -1;           // training tokens seen by then
  double mean_train_loss = 0;          // area under the training-loss curve per step (convergence speed)
  int resumed_from = 0;                // step the run continued from (--resume), 0 for a fresh run
  double peak_rss_mb = 0;        // peak resident memory of this run (the process's high-water mark, reset at its start)
  bool peak_rss_per_run = true;  // false where the reset is unavailable: then the process's peak since it started
  int threads = 0;
  int ranks = 1;             // processes the run was trained on (data-parallel under mpirun)
  double load_average = -1;  // the machine's 1-minute load when training ended: tokens/s are wall-clock under it
  // --eval-sweep: per value ("passkey.depth=0.5") the test split at every eval length
  std::vector<std::pair<std::string, std::vector<EvalResult>>> sweep;
  nlohmann::json ToJson() const;
  // The inverse of ToJson (results.json); throws nlohmann::json::exception on a missing or mistyped field.
  static TrainResult FromJson(const nlohmann::json& j);
};

struct TrainHooks {
  std::string progress_prefix = "";  // e.g. "[3/10] mqar softmax rope s0"
  double later_runs_seconds = -1;    // compare: estimated seconds of the runs after this one; the progress line then
                                     // shows the experiment's ETA, updated at every line
  bool quiet = false;                // no per-step lines (tests)
  bool resume = false;               // continue from the run directory's checkpoint and optimizer state when present
  // Called after every optimizer step (tests use it to inject faults).
  std::function<void(LanguageModel&, int step)> after_step = {};
  // Called between writing a checkpoint's optimizer state and its model file (tests kill the process there).
  std::function<void()> between_checkpoint_files = {};
  // The ranks the run is spread over (data-parallel: each trains on its shard of every batch and evaluates a share of
  // the evaluation batches; rank 0 alone writes the run directory); null = this process alone.
  const Communicator* comm = nullptr;
};

// Throws UsageError when resuming a run whose checkpoint was written by another config, or when --batch does not
// divide by ranks x --grad-accum.
TrainResult Train(RunSpec& spec, const TrainHooks& hooks = {});

// The JSON of per-length evaluations as results.json stores it, and back.
nlohmann::json EvalJson(const std::vector<EvalResult>& evals);
std::vector<EvalResult> EvalsFromJson(const nlohmann::json& j);

// Checks lengths and positions before any work: every eval length must be generable by the task and fit
// a learned positional table. Throws UsageError.
void ValidateRun(const RunSpec& spec, const Task& task);

}  // namespace mixlab
