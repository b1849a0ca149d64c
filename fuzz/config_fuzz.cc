// libFuzzer target: `--config FILE.json` as `mixlab train` reads it (bounded JSON, flag names, values through the
// option visitor), followed by building the run spec the values describe.
#include "experiments/cli/flags.h"
#include "experiments/cli/run_builder.h"
#include "fuzz/fuzz_util.h"
#include "mixers/ops/usage_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mixlab::fuzz::InputFile(data, size, ".json");
  mixlab::fuzz::Argv args("train", {"--config", path});
  try {
    mixlab::TrainOptions train;
    mixlab::ModelOptions model;
    auto groups = mixlab::RunFlagGroups(train, model);
    const auto flags = mixlab::ParseFlags("train", args.argc(), args.argv(), groups);
    mixlab::BuildRunSpec(train, model, flags, true);
  } catch (const mixlab::UsageError&) {}
  return 0;
}
