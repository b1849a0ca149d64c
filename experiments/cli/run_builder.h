// Turns parsed flags into a RunSpec: resolves the task's options and the model config, refusing options
// for tasks or mixers that the run does not use.
#pragma once
#include <memory>

#include "experiments/cli/flags.h"
#include "experiments/run/run_spec.h"
#include "mixers/ops/usage_error.h"
#include "models/language_model.h"

namespace mixlab {

// All fields of a task's options after applying `values`.
OptionMap ResolveTaskOptions(const std::string& task, const OptionMap& values);

// Flag groups of train and compare: training, model, every task, every mixer.
std::vector<FlagGroup> RunFlagGroups(TrainOptions& train, ModelOptions& model);

// Builds the spec for one run. `strict_tasks` refuses options of tasks other than train.task (train);
// compare passes false because it runs several tasks.
RunSpec BuildRunSpec(const TrainOptions& train, ModelOptions model, const ParsedFlags& flags, bool strict_tasks);

// A checkpoint written by `mixlab train` with the run it came from. Throws UsageError on a missing, corrupt or
// foreign checkpoint.
struct LoadedRun {
  RunSpec spec;
  std::unique_ptr<LanguageModel> model;
  std::string step;
};
LoadedRun LoadRun(const std::string& checkpoint);

// The preamble of the commands that read a checkpoint (generate, probe, analyze): `mixlab COMMAND [CHECKPOINT]
// [flags]`, a leading non-flag argument taken as the checkpoint, the flags parsed into `options` (one group titled
// `group`), then OpenMP set to `*threads` (a field of `options`). False when --help was printed (the command exits 0).
bool ParseCheckpointCommand(const std::string& command, const std::string& summary, const std::string& group, int argc,
                            char** argv, Options& options, std::string& checkpoint, const int* threads);

// Tokens given as --NAME TEXT (one per byte; byte-level models only) or --NAME-tokens ID,...; empty when neither.
// Throws UsageError for both at once, text on a small vocabulary, or an id outside the vocabulary.
std::vector<int32_t> TokensFromFlags(const std::string& text, const std::vector<int>& ids, int vocab, const char* name);

// Throws UsageError when `length` positions (`what`) exceed a learned positional table.
void CheckFitsLearnedPositions(const ModelConfig& config, int length, const std::string& what);

}  // namespace mixlab
