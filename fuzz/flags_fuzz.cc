// libFuzzer target: the command-line flag parser of `mixlab train` (NUL-separated words as argv), the run spec the
// flags describe (--layers, --channels, mixer and task options), its validation and the memory estimate.
#include "experiments/cli/flags.h"
#include "experiments/cli/run_builder.h"
#include "experiments/run/memory_check.h"
#include "experiments/run/trainer.h"
#include "experiments/tasks/task.h"
#include "fuzz/fuzz_util.h"
#include "mixers/ops/usage_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mixlab::fuzz::Argv args("train", mixlab::fuzz::Words(data, size));
  try {
    mixlab::TrainOptions train;
    mixlab::ModelOptions model;
    auto groups = mixlab::RunFlagGroups(train, model);
    const auto flags = mixlab::ParseFlags("train", args.argc(), args.argv(), groups);
    mixlab::RunSpec spec = mixlab::BuildRunSpec(train, model, flags, true);
    mixlab::ValidateRun(spec, *mixlab::MakeTask(spec.train.task, spec.task_options));
    mixlab::CheckMemory(spec);
  } catch (const mixlab::UsageError&) {}
  return 0;
}
