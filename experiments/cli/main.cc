// mixlab: train, evaluate and compare sequence mixers. `mixlab --help` lists the subcommands.
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>

#include "experiments/cli/commands.h"
#include "experiments/run/provenance.h"
#include "mixers/ops/usage_error.h"

namespace {
constexpr const char* kUsage =
    "usage: mixlab <command> [flags]   (mixlab <command> --help for its flags; mixlab --version)\n"
    "  train     train one model on one task; writes a run directory (config, metrics, checkpoint, results)\n"
    "  eval      evaluate a checkpoint on its task at other lengths\n"
    "  compare   train several mixers / positional encodings / seeds on the same tasks and write a report\n"
    "  analyze   head scores, ablations, pruning, redundancy, logit lens and figures for a checkpoint\n"
    "  generate  decode from a checkpoint: greedy, temperature, top-k, top-p, repetition penalty, n-gram blocking, "
    "beams\n"
    "  probe     response map of a checkpoint to a fragment inserted, replaced or repeated in a context\n"
    "  list      every mixer and task with its options and defaults\n";
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr
        << "mixlab: no command given; usage: mixlab <command> [flags] with a command of train, eval, compare, analyze, "
           "generate, probe, list (mixlab --help describes them)\n";
    return 2;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << mixlab::VersionLine() << "\n";
    return 0;
  }
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::cout << kUsage;
    return 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "train") return mixlab::TrainCommand(argc - 1, argv + 1);
    if (command == "eval") return mixlab::EvalCommand(argc - 1, argv + 1);
    if (command == "compare") return mixlab::CompareCommand(argc - 1, argv + 1);
    if (command == "analyze") return mixlab::AnalyzeCommand(argc - 1, argv + 1);
    if (command == "generate") return mixlab::GenerateCommand(argc - 1, argv + 1);
    if (command == "probe") return mixlab::ProbeCommand(argc - 1, argv + 1);
    if (command == "list") return mixlab::ListCommand(argc - 1, argv + 1);
    std::cerr << "mixlab: unknown command '" << command
              << "'; allowed: train, eval, compare, analyze, generate, probe, list\n";
    return 2;
  } catch (const mixlab::UsageError& e) {
    std::cerr << "mixlab " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {  // a path the OS refused, named with its reason
    std::cerr << "mixlab " << command << ": cannot use '" << e.path1().string() << "': " << e.code().message() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "mixlab " << command
              << ": out of memory; reduce --batch, the lengths, --d-model or the number of layers\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mixlab " << command << ": internal error: " << e.what() << "\n";
    return 1;
  }
}
