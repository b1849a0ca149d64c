// The subcommands of the mixlab CLI. Each returns the process exit code: 0 success, 2 usage error (also
// thrown as UsageError and reported by main), 3 training stopped on NaN/Inf.
#pragma once
#include <string>

#include "experiments/run/trainer.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

// What `mixlab train` does before it prints: parses train's flags and trains the run into `result`. False when --help
// was printed (nothing trained). The Python bindings' train() calls it.
bool TrainWithFlags(int argc, char** argv, TrainResult& result);

int TrainCommand(int argc, char** argv);
int EvalCommand(int argc, char** argv);
int CompareCommand(int argc, char** argv);
int ListCommand(int argc, char** argv);
int AnalyzeCommand(int argc, char** argv);
int GenerateCommand(int argc, char** argv);
int ProbeCommand(int argc, char** argv);
// `mixlab analyze CHECKPOINT` with its defaults and no per-head lines (compare runs it after every run).
void AnalyzeRun(const std::string& checkpoint, bool plots, int threads);
// `mixlab analyze --over-training RUN` with its defaults (compare runs it after every run trained with
// --snapshot-every).
void AnalyzeRunOverTraining(const std::string& run_dir, bool plots, int threads);

}  // namespace mixlab
