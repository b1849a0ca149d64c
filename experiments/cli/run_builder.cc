#include "experiments/cli/run_builder.h"

#include <omp.h>

#include <algorithm>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "mixers/registry.h"
#include "models/checkpoint.h"
#include "models/json_text.h"

namespace mixlab {

OptionMap ResolveTaskOptions(const std::string& task, const OptionMap& values) {
  auto options = FindTask(task).make_options();
  SetOptions(*options, values, "task '" + task + "'");
  return OptionValues(*options);
}

std::vector<FlagGroup> RunFlagGroups(TrainOptions& train, ModelOptions& model) {
  std::vector<FlagGroup> groups;
  groups.push_back({"training", &train, "", nullptr});
  groups.push_back({"model", &model, "", nullptr});
  for (auto& g : TaskFlagGroups()) groups.push_back(std::move(g));
  for (auto& g : MixerFlagGroups()) groups.push_back(std::move(g));
  return groups;
}

RunSpec BuildRunSpec(const TrainOptions& train, ModelOptions model, const ParsedFlags& flags, bool strict_tasks) {
  RunSpec spec;
  spec.train = train;
  const auto tasks = ListTasks();
  std::map<std::string, OptionMap> mixer_flags;
  OptionMap task_flags;
  for (const auto& [prefix, values] : flags.prefixed) {
    if (std::find(tasks.begin(), tasks.end(), prefix) == tasks.end()) mixer_flags[prefix] = values;
    else if (prefix == train.task) task_flags = values;
    else if (strict_tasks)
      throw UsageError("flags for task '" + prefix + "' given, but --task is '" + train.task + "'");
  }
  spec.task_options = ResolveTaskOptions(train.task, task_flags);
  auto task = MakeTask(train.task, spec.task_options);
  spec.model = ResolveModelConfig(model, mixer_flags, task->Vocab());
  spec.model.head = task->Head();
  return spec;
}

LoadedRun LoadRun(const std::string& checkpoint) {
  if (checkpoint.empty()) throw UsageError("--checkpoint is required (a RUN/model.safetensors file)");
  auto meta = ReadCheckpointMetadata(checkpoint);
  if (!meta.count("run"))
    throw UsageError("checkpoint '" + checkpoint + "' has no run config (not written by mixlab train)");
  LoadedRun run;
  run.spec = RunSpec::FromJson(ParseJsonText(meta["run"], "checkpoint '" + checkpoint + "' run config"));
  MakeTask(run.spec.train.task, run.spec.task_options);  // refuses an unknown task or option value
  run.model = LoadCheckpoint(checkpoint);
  if (run.model->config().ToJson() != run.spec.model.ToJson())
    throw UsageError("checkpoint '" + checkpoint + "' refused: its model config disagrees with its run config");
  run.step = meta["step"];
  return run;
}

bool ParseCheckpointCommand(const std::string& command, const std::string& summary, const std::string& group, int argc,
                            char** argv, Options& options, std::string& checkpoint, const int* threads) {
  if (argc > 1 && argv[1][0] != '-') {
    checkpoint = argv[1];
    argv[1] = argv[0];
    --argc, ++argv;
  }
  std::vector<FlagGroup> groups;
  groups.push_back({group, &options, "", nullptr});
  ParsedFlags flags;
  if (!ParseFlagsOrHelp(command, summary, argc, argv, groups, flags)) return false;
  omp_set_num_threads(*threads);
  return true;
}

std::vector<int32_t> TokensFromFlags(const std::string& text, const std::vector<int>& ids, int vocab,
                                     const char* name) {
  const std::string flag = std::string("--") + name;
  if (!text.empty() && !ids.empty()) throw UsageError("give either " + flag + " or " + flag + "-tokens, not both");
  std::vector<int32_t> out(ids.begin(), ids.end());
  if (!text.empty()) {
    if (vocab < 256)
      throw UsageError(flag + " text needs a byte-level model (vocabulary >= 256); this one has " +
                       std::to_string(vocab) + " tokens: use " + flag + "-tokens");
    for (unsigned char c : text) out.push_back(c);
  }
  for (int32_t t : out)
    if (t >= vocab)
      throw UsageError(flag + "-tokens: token " + std::to_string(t) + " is outside the vocabulary [0, " +
                       std::to_string(vocab) + ")");
  return out;
}

void CheckFitsLearnedPositions(const ModelConfig& config, int length, const std::string& what) {
  if (config.pos == "learned" && length > config.max_len)
    throw UsageError(what + " (" + std::to_string(length) + " tokens) exceeds the learned positions' --max-len " +
                     std::to_string(config.max_len));
}

}  // namespace mixlab
