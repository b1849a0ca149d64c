// libFuzzer target: compare's spec parsers. The input's lines are --mixers, --positions, --sweep, --lrs and --layers;
// `mixlab compare --dry-run` parses them, builds and validates every run, and lists them without training.
#include <cstdio>

#include "experiments/cli/commands.h"
#include "fuzz/fuzz_util.h"
#include "mixers/ops/usage_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> lines(1);
  for (size_t i = 0; i < size && lines.size() <= 5; ++i) {
    if (data[i] == '\n') lines.emplace_back();
    else if (data[i] != 0) lines.back() += char(data[i]);
  }
  std::vector<std::string> words = {"--dry-run", "--tasks", "mqar", "--out", "/nonexistent/mixlab_fuzz"};
  const char* flags[] = {"--mixers", "--positions", "--sweep", "--lrs", "--layers"};
  for (size_t i = 0; i < lines.size() && i < 5; ++i) words.insert(words.end(), {flags[i], lines[i]});
  mixlab::fuzz::Argv args("compare", words);
  std::FILE* quiet = std::freopen("/dev/null", "w", stdout);  // the dry run's listing
  (void)quiet;
  try {
    mixlab::CompareCommand(args.argc(), args.argv());
  } catch (const mixlab::UsageError&) {}
  return 0;
}
