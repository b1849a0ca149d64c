// mixlab: train, evaluate and compare sequence mixers. `mixlab --help` lists the subcommands.
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>

#include "experiments/cli/commands.h"
#include "experiments/run/communicator.h"
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

namespace {

// Runs the command; an error becomes one line on stderr and a non-zero code (and, under mpirun, the end of every rank:
// no rank is left waiting in a collective for one that failed).
int Run(int argc, char** argv) {
  const std::string command = argv[1];
  const auto& world = mixlab::Communicator::World();
  std::string error;
  int code = 2;
  try {
    if (world.distributed() && command != "train" && command != "compare")
      throw mixlab::UsageError(
          "runs in one process; under mpirun only train (data-parallel) and compare (runs spread "
          "over the ranks) are supported; start it without mpirun");
    if (command == "train") return mixlab::TrainCommand(argc - 1, argv + 1);
    if (command == "eval") return mixlab::EvalCommand(argc - 1, argv + 1);
    if (command == "compare") return mixlab::CompareCommand(argc - 1, argv + 1);
    if (command == "analyze") return mixlab::AnalyzeCommand(argc - 1, argv + 1);
    if (command == "generate") return mixlab::GenerateCommand(argc - 1, argv + 1);
    if (command == "probe") return mixlab::ProbeCommand(argc - 1, argv + 1);
    if (command == "list") return mixlab::ListCommand(argc - 1, argv + 1);
    error = "mixlab: unknown command '" + command + "'; allowed: train, eval, compare, analyze, generate, probe, list";
  } catch (const mixlab::UsageError& e) {
    error = "mixlab " + command + ": " + e.what();
  } catch (const std::filesystem::filesystem_error& e) {  // a path the OS refused, named with its reason
    error = "mixlab " + command + ": cannot use '" + e.path1().string() + "': " + e.code().message();
  } catch (const std::bad_alloc&) {
    error = "mixlab " + command + ": out of memory; reduce --batch, the lengths, --d-model or the number of layers";
  } catch (const std::exception& e) {
    error = "mixlab " + command + ": internal error: " + e.what();
    code = 1;
  }
  if (world.distributed()) world.FailAll(error, code);
  std::cerr << error << "\n";
  return code;
}

}  // namespace

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
  mixlab::Communicator::InitializeWorld(&argc, &argv);
  const int code = Run(argc, argv);
  mixlab::Communicator::FinalizeWorld();
  return code;
}
