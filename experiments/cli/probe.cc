// mixlab probe: the response map of a checkpoint to an edited context (a fragment inserted, replaced or repeated),
// per layer and head; optionally the weight and loss changes after a few optimizer steps on the edited text.

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "experiments/analysis/response_map.h"
#include "experiments/cli/commands.h"
#include "experiments/cli/flags.h"
#include "experiments/cli/run_builder.h"
#include "experiments/run/evaluate.h"
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"
#include "models/file_io.h"

namespace mixlab {

namespace {

struct ProbeOptions : Options {
  std::string checkpoint, context, fragment, edit = "insert", out;
  std::vector<int> context_tokens, fragment_tokens;
  int at = -1, train_steps = 0, threads = 1;
  float threshold = 0.1f, lr = 1e-3f;
  void Visit(OptionVisitor& v) override {
    v.String("checkpoint", checkpoint, "RUN/model.safetensors (also accepted as the first argument)");
    v.String("context", context, "context text, one token per byte (byte-level models)");
    v.IntList("context-tokens", context_tokens,
              "context as token ids; neither = one test sequence of the run's task at its training length", 0, 1 << 30);
    v.String("fragment", fragment, "fragment text, one token per byte");
    v.IntList("fragment-tokens", fragment_tokens, "fragment as token ids", 0, 1 << 30);
    v.Choice("edit", edit, "how the fragment enters the context", {"insert", "replace", "repeat"});
    v.Int("at", at, "position of the edit in the context; -1 = the middle", -1, 1 << 30);
    v.Float("threshold", threshold, "relative residual change that counts as a shift (first layer over it is reported)",
            0.0f, 1e6f);
    v.Int("train-steps", train_steps,
          "AdamW steps on the edited text, then weight change per parameter group and loss changes; 0 = off", 0,
          1 << 20);
    v.Float("lr", lr, "learning rate of --train-steps", 0.0f, 10.0f);
    v.String("out", out, "write the response map as JSON here (optional)");
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
  }
};

}  // namespace

int ProbeCommand(int argc, char** argv) {
  ProbeOptions o;
  if (!ParseCheckpointCommand("probe",
                              "Response map of a checkpoint to a fragment inserted, replaced or repeated in a context.",
                              "probe", argc, argv, o, o.checkpoint, &o.threads))
    return 0;
  LoadedRun run = LoadRun(o.checkpoint);
  LanguageModel& model = *run.model;
  auto task = MakeTask(run.spec.train.task, run.spec.task_options);
  const int T = run.spec.train.train_len;
  std::vector<int32_t> context = TokensFromFlags(o.context, o.context_tokens, model.vocab(), "context");
  if (context.empty()) {
    Rng rng = SplitRng(uint64_t(run.spec.train.seed), Split::kTest, T);
    context = task->Sample(1, T, rng, Split::kTest).tokens;
  }
  const auto fragment = TokensFromFlags(o.fragment, o.fragment_tokens, model.vocab(), "fragment");
  if (fragment.empty()) throw UsageError("the fragment is empty: give --fragment TEXT or --fragment-tokens ID,ID,...");
  const Edit edit = ParseEdit(o.edit);
  const int at = o.at >= 0 ? o.at : int(context.size()) / 2;
  const EditedSequence variant = ApplyEdit(context, fragment, edit, at);
  if (variant.fragment.back() + 1 >= int(variant.tokens.size()))
    throw UsageError("the edit leaves no context after the fragment to measure; choose a smaller --at");
  const auto& config = run.spec.model;
  CheckFitsLearnedPositions(config, int(variant.tokens.size()), "the edited context");

  const ResponseMap r = Respond(model, context, variant, o.threshold);
  std::printf("probe %s: %s the %zu-token fragment at %d of a %zu-token context (%s)\n", o.checkpoint.c_str(),
              o.edit.c_str(), fragment.size(), at, context.size(), config.Summary().c_str());
  std::printf("layer  residual change  lens KL   per head: fragment mass / JS shift\n");
  nlohmann::json j = {{"checkpoint", o.checkpoint},
                      {"edit", o.edit},
                      {"at", at},
                      {"context", context},
                      {"variant", variant.tokens},
                      {"first_layer_over_threshold", r.first_layer_over},
                      {"threshold", o.threshold}};
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const auto& lr = r.layers[l];
    std::printf("%5zu  %15.4f  %7.4f  ", l, lr.residual_change, lr.lens_kl);
    nlohmann::json heads = nlohmann::json::array();
    for (const auto& h : lr.heads) {
      std::printf(" %.3f/%.3f", h.fragment_mass, h.js_shift);
      heads.push_back({{"fragment_mass", h.fragment_mass}, {"js_shift", h.js_shift}});
    }
    std::printf("\n");
    j["layers"].push_back({{"residual_change", lr.residual_change}, {"lens_kl", lr.lens_kl}, {"heads", heads}});
  }
  if (r.first_layer_over >= 0)
    std::printf("first layer whose residual change exceeds %.3g: %d\n", o.threshold, r.first_layer_over);
  else std::printf("no layer's residual change exceeds %.3g\n", o.threshold);

  if (o.train_steps > 0) {
    Rng rng = SplitRng(uint64_t(run.spec.train.seed), Split::kValidation, T);
    const Batch heldout = task->Sample(8, T, rng, Split::kValidation);
    const auto t = TrainOnFragment(model, variant, heldout, o.train_steps, o.lr, uint64_t(run.spec.train.seed));
    std::printf(
        "after %d steps at lr %g on the edited text:\n  loss on the fragment %.4f -> %.4f, held-out task data %.4f -> "
        "%.4f, "
        "unrelated random tokens %.4f -> %.4f\n  relative weight change:",
        o.train_steps, o.lr, t.fragment_before, t.fragment_after, t.heldout_before, t.heldout_after, t.unrelated_before,
        t.unrelated_after);
    for (const auto& [group, change] : t.weight_change) {
      std::printf(" %s %.2e", group.c_str(), change);
      j["training"]["weight_change"][group] = change;
    }
    std::printf("\n");
    j["training"]["loss"] = {{"fragment", {t.fragment_before, t.fragment_after}},
                             {"heldout", {t.heldout_before, t.heldout_after}},
                             {"unrelated", {t.unrelated_before, t.unrelated_after}}};
  }
  if (!o.out.empty()) WriteFileAtomic(o.out, j.dump(1) + "\n");
  return 0;
}

}  // namespace mixlab
