// train, eval and list.
#include "experiments/cli/commands.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "experiments/cli/run_builder.h"
#include "experiments/run/evaluate.h"
#include "experiments/run/presets.h"
#include "experiments/run/trainer.h"
#include "experiments/tasks/task.h"
#include "mixers/registry.h"
#include "models/checkpoint.h"
#include "models/file_io.h"

namespace mixlab {

namespace {

void PrintEvals(const std::vector<EvalResult>& evals, const char* split) {
  for (const auto& e : evals) {
    const auto [low, high] = WilsonInterval(e.correct, e.scored);
    std::printf("  %s T=%-6d accuracy %.4f (95%% CI %.4f-%.4f, n = %ld answers)  loss %.4f  bits/token %.4f\n", split,
                e.length, e.accuracy, low, high, long(e.scored), e.loss, e.loss / std::log(2.0));
  }
}

struct EvalOptions : Options {
  std::string checkpoint;
  std::vector<int> eval_lens;
  int answers = 0;
  int batch = 0;
  int threads = 2;
  std::string split = "test";
  std::string out;
  void Visit(OptionVisitor& v) override {
    v.String("checkpoint", checkpoint, "path to RUN/model.safetensors");
    v.IntList("eval-lens", eval_lens, "lengths to evaluate; empty = the run's --eval-lens", 2, 1 << 24);
    v.Int("answers", answers,
          "scored answers per length; 0 = the run's --test-answers (or --val-answers for the validation split), the "
          "same set train scored",
          0, 1 << 24);
    v.Int("batch", batch, "sequences per batch (does not change the set scored); 0 = as train evaluates", 0, 1 << 20);
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
    v.Choice("split", split, "data split to draw from", {"test", "validation"});
    v.String("out", out,
             "also write the results as JSON here (results.json's per-length schema under the split's name)");
  }
};

// How a run starts; not part of the run's config (a resumed run has the same config as the one it continues).
struct RunControlOptions : Options {
  bool resume = false;
  void Visit(OptionVisitor& v) override {
    v.Bool("resume", resume,
           "continue from the run directory's last checkpoint and optimizer state (bit-exact); refused if the config "
           "changed");
  }
};

}  // namespace

bool TrainWithFlags(int argc, char** argv, TrainResult& result) {
  TrainOptions train;
  ModelOptions model;
  RunControlOptions control;
  auto groups = RunFlagGroups(train, model);
  groups.insert(groups.begin(), {"run control", &control, "", nullptr});
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("train", "Train one model on one task.", argc, argv, groups, flags)) return false;
  RunSpec spec = BuildRunSpec(train, model, flags, true);
  const TrainHooks hooks{.progress_prefix = spec.train.task + " " + spec.model.Summary(),
                         .resume = control.resume,
                         .comm = &Communicator::World()};  // data-parallel over the ranks under mpirun
  result = Train(spec, hooks);
  return true;
}

int TrainCommand(int argc, char** argv) {
  TrainResult r;
  if (!TrainWithFlags(argc, argv, r)) return 0;
  if (!Communicator::World().root()) return r.diverged ? 3 : 0;  // rank 0 reports
  if (r.resumed_from > 0) std::printf("resumed from step %d\n", r.resumed_from);
  std::printf("run %s: %d steps, %.0f tokens/s (%.0f after the first step), %ld parameters, peak memory %.0f MB\n",
              r.run_dir.c_str(), r.steps_done, r.tokens_per_second, r.warm_tokens_per_second, long(r.params),
              r.peak_rss_mb);
  if (r.diverged) {
    std::fprintf(stderr, "mixlab train: training stopped at %s\n", r.divergence.c_str());
    return 3;
  }
  PrintEvals(r.test, "test");
  for (const auto& [value, evals] : r.sweep) PrintEvals(evals, ("test " + value).c_str());
  if (r.steps_to_99 >= 0)
    std::printf("  validation accuracy >= 0.99 at the training length from step %d\n", r.steps_to_99);
  return 0;
}

int EvalCommand(int argc, char** argv) {
  EvalOptions o;
  std::vector<FlagGroup> groups;
  groups.push_back({"evaluation", &o, "", nullptr});
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("eval", "Evaluate a saved model on its task at other lengths.", argc, argv, groups, flags))
    return 0;
  LoadedRun run = LoadRun(o.checkpoint);
  RunSpec& spec = run.spec;
  auto& model = run.model;
  auto task = MakeTask(spec.train.task, spec.task_options);
  if (!o.eval_lens.empty()) spec.train.eval_lens = o.eval_lens;
  ValidateRun(spec, *task);
  omp_set_num_threads(o.threads);
  std::printf("checkpoint %s (step %s): %s on %s\n", o.checkpoint.c_str(), run.step.c_str(),
              spec.model.Summary().c_str(), spec.train.task.c_str());
  const int answers = o.answers ? o.answers : o.split == "test" ? spec.train.test_answers : spec.train.val_answers;
  std::vector<EvalResult> evals;
  for (int T : spec.train.eval_lens) {
    const int batch = o.batch ? o.batch : EvalBatchSize(spec.train.batch, spec.train.train_len, T);
    evals.push_back(Evaluate(*model, *task, T, answers, batch, uint64_t(spec.train.seed),
                             o.split == "test" ? Split::kTest : Split::kValidation));
  }
  PrintEvals(evals, o.split.c_str());
  if (!o.out.empty())
    WriteFileAtomic(
        o.out,
        nlohmann::json{{"checkpoint", o.checkpoint}, {"step", run.step}, {"split", o.split}, {o.split, EvalJson(evals)}}
                .dump(2) +
            "\n");
  return 0;
}

struct ListFlags : Options {
  std::string names;
  void Visit(OptionVisitor& v) override {
    v.String("names", names,
             "print only the registered names of one kind, one per line (for scripts): sequence, channel or task");
  }
};

int ListCommand(int argc, char** argv) {
  ModelOptions model;
  ListFlags list;
  std::vector<FlagGroup> groups;
  groups.push_back({"model used for the parameter counts", &model, "", nullptr});
  groups.push_back({"listing", &list, "", nullptr});
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("list", "List every mixer and task with its options and defaults.", argc, argv, groups, flags))
    return 0;
  if (!list.names.empty()) {
    std::vector<std::string> names;
    if (list.names == "sequence") names = ListMixers(MixerKind::kSequence);
    else if (list.names == "channel") names = ListMixers(MixerKind::kChannel);
    else if (list.names == "task") names = ListTasks();
    else throw UsageError("--names '" + list.names + "' is not a kind; allowed: sequence, channel, task");
    for (const auto& n : names) std::printf("%s\n", n.c_str());
    return 0;
  }
  const int T = 256;
  for (auto kind : {MixerKind::kSequence, MixerKind::kChannel}) {
    std::printf("%s (params and decoding state at d_model %d; FLOPs per token at T=%d):\n",
                kind == MixerKind::kSequence ? "sequence mixers" : "channel mixers", model.d_model, T);
    for (const auto& name : ListMixers(kind)) {
      const auto& info = FindMixer(name, kind);
      auto mixer = MakeMixer(name, kind, MixerDims{model.d_model, 1, 0, "none"}, {});
      const auto d = mixer->Describe(T);
      std::printf("  %-10s %s\n             params %ld, state %ld floats + %ld per token, %.3g FLOPs/token",
                  name.c_str(), info.help.c_str(), long(d.params), long(d.state_floats_fixed),
                  long(d.state_floats_per_token), d.flops_per_token);
      if (kind == MixerKind::kSequence)
        std::printf(", positional: none%s%s", info.supported_pos.empty() ? "" : ", ",
                    JoinList(info.supported_pos, ", ").c_str());
      std::printf("\n");
      auto opts = info.make_options();
      for (const auto& f : ListOptions(*opts))
        std::printf("             --%s.%s %s = %s  %s\n", name.c_str(), f.name.c_str(), f.type.c_str(), f.value.c_str(),
                    f.help.c_str());
    }
  }
  std::printf("tasks:\n");
  for (const auto& name : ListTasks()) {
    const auto& info = FindTask(name);
    std::printf("  %-10s %s\n", name.c_str(), info.help.c_str());
    auto opts = info.make_options();
    for (const auto& f : ListOptions(*opts))
      std::printf("             --%s.%s %s = %s  %s\n", name.c_str(), f.name.c_str(), f.type.c_str(), f.value.c_str(),
                  f.help.c_str());
  }
  std::printf("compare presets (mixlab compare --preset NAME; other flags override):\n");
  for (const auto& p : Presets()) {
    std::printf("  %-20s %s\n                       scale: %s\n                      ", p.name.c_str(),
                p.reproduces.c_str(), p.scale.c_str());
    for (const auto& [flag, value] : p.flags) std::printf(" --%s %s", flag.c_str(), value.c_str());
    std::printf("\n");
  }
  return 0;
}

}  // namespace mixlab
