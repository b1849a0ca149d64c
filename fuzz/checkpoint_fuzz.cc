// libFuzzer target: the safetensors checkpoint loader (header length, header JSON, tensor layout, checksum, the
// model config in the metadata) as `mixlab eval` reaches it through LoadRun.
#include "experiments/cli/run_builder.h"
#include "fuzz/fuzz_util.h"
#include "mixers/ops/usage_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = mixlab::fuzz::InputFile(data, size, ".safetensors");
  try {
    mixlab::LoadRun(path);
  } catch (const mixlab::UsageError&) {}
  return 0;
}
