// mixlab compare: the same tasks, data, budget and seeds for several model variants, positional encodings,
// learning rates and one optional swept flag, then one report (report.md, results.csv, runs.json and matplotlib
// plots). The learning rate of each variant is chosen on the validation split, never on test. A repeated compare
// skips finished runs with an identical config; an experiment directory holding a different experiment is only
// overwritten with --force.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "experiments/analysis/subprocess.h"
#include "experiments/cli/commands.h"
#include "experiments/cli/run_builder.h"
#include "experiments/run/memory_check.h"
#include "experiments/run/presets.h"
#include "experiments/run/provenance.h"
#include "experiments/run/sweep_scheduler.h"
#include "experiments/run/trainer.h"
#include "mixers/ops/usage_error.h"
#include "mixers/registry.h"
#include "models/file_io.h"
#include "models/language_model.h"

namespace mixlab {
namespace {

// The default compare: every mixer family on recall and induction, train at 32, test up to 8x longer.
struct CompareOptions : Options {
  std::string preset;
  std::string tasks = "mqar,induction";
  // One variant per family (Performer for linear attention, local for local/sparse); local sees half the
  // training length, so it differs from softmax inside it.
  std::string mixers = "softmax,performer,local:window=16,gla,mamba,softmax/moe";
  std::string positions = "auto";
  std::string lrs;
  std::string sweep;
  int seeds = 1;
  bool plots = true;
  bool analyze = true;
  bool resume = false;
  bool force = false;
  bool dry_run = false;
  void Visit(OptionVisitor& v) override {
    v.String("preset", preset, "a published configuration (see `mixlab list`); other flags override its values");
    v.String("tasks", tasks, "comma-separated tasks");
    v.String(
        "mixers", mixers,
        "comma-separated model variants: SEQ[+SEQ...][/CHANNEL[+CHANNEL...]], each NAME[:opt=value...]; '+' gives one "
        "mixer per layer (hybrids), '/' sets the channel mixer (e.g. softmax/moe), '@POS' fixes the variant's "
        "positional "
        "encoding instead of crossing it with --positions (e.g. softmax@alibi,mamba)");
    v.String("positions", positions,
             "comma-separated positional encodings crossed with every variant; auto = rope where every layer's mixer "
             "applies it, else none");
    v.String("lrs", lrs,
             "comma-separated learning rates; each variant keeps the best on validation accuracy (default: --lr)");
    v.String("sweep", sweep,
             "one more axis: FLAG=v1,v2,... over any training, model, task or mixer flag (e.g. d-model=64,128)");
    v.Int("seeds", seeds, "seeds per combination (0 .. seeds-1 added to --seed)", 1, 1000);
    v.Bool("plots", plots, "draw PNG plots with python3-matplotlib");
    v.Bool("analyze", analyze,
           "run `mixlab analyze` on every trained run (RUN/analysis) and summarise the heads in the report");
    v.Bool("resume", resume, "continue unfinished runs from their last checkpoint");
    v.Bool("force", force, "write into a directory that compare did not create");
    v.Bool("dry-run", dry_run, "check every run's configuration and list the runs, without training");
  }
};

struct Run {
  std::string task, variant, pos, sweep_value, label;  // label: the row of the report ("mamba none d-model=64")
  float lr = 0;
  int seed = 0;
  RunSpec spec;
  TrainResult result;
  bool selected = false;       // its learning rate is the one chosen on validation for its label
  int64_t state_floats = 0;    // decoding state of the whole model at the training length
  std::string analysis_error;  // why `mixlab analyze` failed on it (the sweep goes on; the report says so)
};

// Loads a finished run whose config matches, so repeated compares skip it (a diverged run is trained again unless
// `diverged_too`).
bool LoadFinished(Run& run, bool diverged_too = false) {
  const std::string dir = run.spec.train.out;
  std::ifstream cfg(dir + "/config.json"), res(dir + "/results.json");
  if (!cfg || !res) return false;
  try {
    if (RunSpec::Canonical(nlohmann::json::parse(cfg)) != run.spec.ToJson()) return false;
    const auto j = nlohmann::json::parse(res);
    if ((j.at("diverged").get<bool>() && !diverged_too) || !j.contains("validation")) return false;
    run.result = TrainResult::FromJson(j);
    run.result.run_dir = dir;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string MeanSpread(const std::vector<double>& v, const char* fmt) {
  if (v.empty()) return "-";
  double mean = 0, var = 0;
  for (double x : v) mean += x / v.size();
  for (double x : v) var += (x - mean) * (x - mean) / std::max<size_t>(1, v.size() - 1);
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, mean);
  std::string s = buf;
  if (v.size() > 1) {
    std::snprintf(buf, sizeof buf, fmt, std::sqrt(var));
    s += " ± " + std::string(buf);
  }
  return s;
}

// A learning rate as a short exact label ("1e-05", "1.5e-05", "0.003"): distinct rates never share a run directory.
std::string LearningRateText(float lr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", double(lr));
  return buf;
}

// A test-accuracy cell: one seed "0.912 (95% CI 0.899-0.924)"; several "0.912 ± 0.010 (0.901, 0.915, 0.921)".
std::string AccuracyCell(const std::vector<const EvalResult*>& evals, const char* when_empty = "diverged") {
  if (evals.empty()) return when_empty;
  char buf[96];
  if (evals.size() == 1) {
    const auto [low, high] = WilsonInterval(evals[0]->correct, evals[0]->scored);
    std::snprintf(buf, sizeof buf, "%.3f (95%% CI %.3f-%.3f)", evals[0]->accuracy, low, high);
    return buf;
  }
  std::vector<double> acc;
  std::string each;
  for (const auto* e : evals) {
    acc.push_back(e->accuracy);
    std::snprintf(buf, sizeof buf, "%s%.3f", each.empty() ? "" : ", ", e->accuracy);
    each += buf;
  }
  return MeanSpread(acc, "%.3f") + " (" + each + ")";
}

// Mixer names of a variant's sequence layers ("mamba+softmax:n-heads=2/moe" -> mamba, softmax).
std::vector<std::string> SequenceMixers(const std::string& variant) {
  std::vector<std::string> names;
  for (const auto& layer : SplitList(variant.substr(0, variant.find('/')), '+', "--mixers variant"))
    names.push_back(layer.substr(0, layer.find(':')));
  return names;
}

std::string ResolvePosition(const std::string& pos, const std::string& variant) {
  if (pos != "auto") return pos;
  for (const auto& name : SequenceMixers(variant)) {
    const auto& supported = FindMixer(name, MixerKind::kSequence).supported_pos;
    if (std::find(supported.begin(), supported.end(), "rope") == supported.end()) return "none";
  }
  return "rope";
}

// The (variant, positional encoding) pairs of one --mixers entry: "VARIANT@POS" fixes the variant's encoding, a plain
// "VARIANT" is crossed with every encoding of --positions.
std::vector<std::pair<std::string, std::string>> VariantPositions(const std::string& entry,
                                                                  const std::string& positions) {
  const auto at = entry.find('@');
  if (at != std::string::npos) return {{entry.substr(0, at), entry.substr(at + 1)}};
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& pos : SplitList(positions, ',', "--positions")) pairs.emplace_back(entry, pos);
  return pairs;
}

// Applies "FLAG=value" of --sweep to the run's options: a prefixed flag (mqar.pairs) to the parsed flags, any
// other to the model or training options.
void ApplySweep(const std::string& flag, const std::string& value, TrainOptions& t, ModelOptions& m,
                ParsedFlags& flags) {
  if (const auto dot = flag.find('.'); dot != std::string::npos) {
    flags.prefixed[flag.substr(0, dot)][flag.substr(dot + 1)] = value;
    return;
  }
  for (Options* o : {static_cast<Options*>(&m), static_cast<Options*>(&t)})
    for (const auto& f : ListOptions(*o))
      if (f.name == flag) return SetOptions(*o, {{flag, value}}, "--sweep ");
  throw UsageError("--sweep: unknown flag '" + flag +
                   "'; sweep a training, model, task (task.option) or mixer (mixer.option) flag");
}

// results.csv (one row per run x metric) and runs.json (each run's directory, for the plots).
void WriteTables(const std::string& dir, const std::vector<Run>& runs) {
  std::ostringstream csv;
  csv << "task,label,variant,pos,sweep,lr,selected,seed,metric,length,value,n,ci_low,ci_high\n";
  nlohmann::json index = nlohmann::json::array();
  for (const auto& r : runs) {
    auto row = [&](const std::string& metric, int len, double v) {
      csv << r.task << "," << r.label << "," << r.variant << "," << r.pos << "," << r.sweep_value << ","
          << LearningRateText(r.lr) << "," << r.selected << "," << r.seed << "," << metric << "," << len << "," << v
          << ",,,\n";
    };
    auto accuracy_row = [&](const std::string& metric, const EvalResult& e) {  // with its n and 95% Wilson interval
      const auto [low, high] = WilsonInterval(e.correct, e.scored);
      csv << r.task << "," << r.label << "," << r.variant << "," << r.pos << "," << r.sweep_value << ","
          << LearningRateText(r.lr) << "," << r.selected << "," << r.seed << "," << metric << "," << e.length << ","
          << e.accuracy << "," << e.scored << "," << low << "," << high << "\n";
    };
    const int T = r.spec.train.train_len;
    for (const auto& e : r.result.test) {
      accuracy_row("test_accuracy", e);
      row("test_majority_baseline", e.length, e.majority);
      row("test_loss", e.length, e.loss);
      row("test_bits_per_token", e.length, e.loss / std::log(2.0));
    }
    for (const auto& e : r.result.validation) accuracy_row("validation_accuracy", e);
    for (const auto& [value, evals] : r.result.sweep)
      for (const auto& e : evals) accuracy_row("test_accuracy[" + value + "]", e);
    row("steps_to_99", T, r.result.steps_to_99);
    row("tokens_to_99", T, double(r.result.tokens_to_99));
    row("mean_train_loss", T, r.result.mean_train_loss);
    row("tokens_per_s", T, r.result.tokens_per_second);
    row("train_seconds", T, r.result.train_seconds);
    row("load_average", T, r.result.load_average);
    row("peak_rss_mb", T, r.result.peak_rss_mb);
    row("params", 0, double(r.result.params));
    row("state_floats", T, double(r.state_floats));
    index.push_back({{"task", r.task},
                     {"label", r.label},
                     {"lr", r.lr},
                     {"selected", r.selected},
                     {"seed", r.seed},
                     {"run_dir", r.result.run_dir}});
  }
  WriteFileAtomic(dir + "/results.csv", csv.str());
  WriteFileAtomic(dir + "/runs.json", index.dump(2) + "\n");
}

// Chooses per (task, label) the learning rate with the best mean validation accuracy at the training length
// (ties: lower validation loss) and marks its runs selected.
void SelectLearningRates(std::vector<Run>& runs) {
  std::map<std::pair<std::string, std::string>, std::map<float, std::pair<double, double>>>
      score;  // -> lr -> (acc, -loss)
  for (const auto& r : runs)
    for (const auto& e : r.result.validation)
      if (e.length == r.spec.train.train_len) {
        auto& s = score[{r.task, r.label}][r.lr];
        s.first += e.accuracy;
        s.second -= e.loss;
      }
  for (auto& r : runs) {
    const auto& by_lr = score[{r.task, r.label}];
    float best = r.lr;
    if (!by_lr.empty())
      best = std::max_element(by_lr.begin(), by_lr.end(), [](const auto& a, const auto& b) {
               return a.second < b.second;
             })->first;
    r.selected = r.lr == best;
  }
}

// The selected runs of `task` paired with their analysis JSON at RUN/`file`; runs without a readable one are left out.
std::vector<std::pair<const Run*, nlohmann::json>> SelectedAnalyses(const std::vector<Run>& runs,
                                                                    const std::string& task, const std::string& file) {
  std::vector<std::pair<const Run*, nlohmann::json>> out;
  for (const auto& r : runs) {
    std::ifstream in(r.result.run_dir + "/" + file);
    if (r.task != task || !r.selected || !in) continue;
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded()) out.emplace_back(&r, std::move(j));
  }
  return out;
}

// One row per selected run with an analysis/analysis.json: its most induction-like and previous-token-like heads,
// what ablating the induction head costs, the in-context score and the dead heads.
void WriteHeadSummary(std::ostream& md, const std::vector<Run>& runs, const std::string& task) {
  std::string rows, skipped;
  for (const auto& selected : SelectedAnalyses(runs, task, "analysis/analysis.json")) {
    const Run* run = selected.first;
    const nlohmann::json& a = selected.second;  // a named reference, which lambdas may capture (clang 14)
    const Run& r = *run;
    if (a["heads"].empty()) continue;
    auto best = [&](const char* key) {
      const nlohmann::json* top = &a["heads"][0];
      for (const auto& h : a["heads"])
        if (h[key].get<double>() > (*top)[key].get<double>()) top = &h;
      return top;
    };
    const auto* ind = best("answer_induction");
    const auto* prev = best("previous_token");
    int dead = 0;
    for (const auto& h : a["heads"]) dead += h["dead"].get<bool>();
    char ablation[32] = "skipped";  // the layer declares no head output projection
    if ((*ind)["accuracy_change"].is_number())
      std::snprintf(ablation, sizeof ablation, "%+.3f", (*ind)["accuracy_change"].get<double>());
    char row[512];
    std::snprintf(row, sizeof row, "| %s s%d | L%dH%d %.3f | %s | L%dH%d %.3f | %+.3f | %d of %zu |\n", r.label.c_str(),
                  r.seed, (*ind)["layer"].get<int>(), (*ind)["head"].get<int>(),
                  (*ind)["answer_induction"].get<double>(), ablation, (*prev)["layer"].get<int>(),
                  (*prev)["head"].get<int>(), (*prev)["previous_token"].get<double>(),
                  a["in_context_score"].get<double>(), dead, a["heads"].size());
    rows += row;
    for (const auto& line : a.value("skipped", nlohmann::json::array()))
      skipped += "- " + r.label + " s" + std::to_string(r.seed) + ", " + line.get<std::string>() + "\n";
  }
  if (rows.empty()) return;
  md << "\nInside the models (`mixlab analyze`, each run's `analysis/`): the head with the highest answer-induction "
        "score "
        "(mixing from a scored position to the token after its token's earlier occurrence) and the accuracy change "
        "when it is "
        "zero-ablated; the top previous-token head; in-context score = late minus early loss on repeated random "
        "sequences:\n\n"
        "| run | top answer-induction head | its ablation | top previous-token head | in-context score | dead heads |\n"
        "|---|---|---|---|---|---|\n"
     << rows
     << "\nFor recurrent mixers (mamba, gla, linear attention) a \"head\" is a channel group and its map the group's "
        "average "
        "implied mixing: a low induction score there does not show that no induction mechanism exists (averaging can "
        "cancel "
        "it); the ablation column, which removes the group's output, is the test that does not depend on that lens.\n";
  for (const auto& r : runs)
    if (r.task == task && !r.analysis_error.empty())
      skipped += "- " + r.label + " s" + std::to_string(r.seed) + ": analysis failed: " + r.analysis_error + "\n";
  if (!skipped.empty()) md << "\nAnalyses skipped:\n\n" << skipped;
}

// One row per selected run with analysis/over_training/over_training.json: the induction score and in-context score at
// the first and last snapshot, and the phase-change verdict of each (experiments/analysis/phase_change.h).
void WriteDynamicsSummary(std::ostream& md, const std::vector<Run>& runs, const std::string& task) {
  std::string rows;
  for (const auto& selected : SelectedAnalyses(runs, task, "analysis/over_training/over_training.json")) {
    const Run* run = selected.first;
    const nlohmann::json& a = selected.second;
    const Run& r = *run;
    if (!a.contains("phase_changes") || a["snapshots"].empty()) continue;
    const auto& first = a["snapshots"].front();
    const auto& last = a["snapshots"].back();
    auto verdict = [&](const char* key) {
      const auto& c = a["phase_changes"][key];
      char cell[256];
      std::snprintf(cell, sizeof cell, "%s, steps %d-%d (%.0f%% of range, z %.1f)",
                    c["detected"].get<bool>() ? "**yes**" : "no", c["from_step"].get<int>(), c["to_step"].get<int>(),
                    100 * c["share"].get<double>(), c["z"].get<double>());
      return std::string(cell);
    };
    char row[1024];
    std::snprintf(row, sizeof row, "| %s s%d | %.3f -> %.3f | %s | %+.3f -> %+.3f | %s | %s | %+.3f -> %+.3f | %s |\n",
                  r.label.c_str(), r.seed, first["max_induction"].get<double>(), last["max_induction"].get<double>(),
                  verdict("max_induction").c_str(), first["in_context_score"].get<double>(),
                  last["in_context_score"].get<double>(), verdict("in_context_drop").c_str(),
                  a["phase_changes"]["max_induction"]["coincides_with_in_context_drop"].get<bool>() ? "yes" : "no",
                  first["text_in_context_score"].get<double>(), last["text_in_context_score"].get<double>(),
                  verdict("text_in_context_drop").c_str());
    rows += row;
  }
  if (rows.empty()) return;
  md << "\nTraining dynamics (`mixlab analyze --over-training`, each run's `analysis/over_training/`): the best head's "
        "induction "
        "score on repeated random sequences, the in-context score on them (second half minus first half loss) and on "
        "the task's "
        "own sequences (last tenth minus second tenth, Olsson's score) at the first and last snapshot; a "
        "phase change is a window of a tenth of the snapshots that follows a plateau, holds at least half the curve's "
        "range and "
        "rises at least 4 spreads above the other intervals' changes (experiments/analysis/phase_change.h):\n\n"
        "| run | induction score | phase change in it | in-context score | phase change (drop) | together | text "
        "in-context score | "
        "phase change (drop) |\n|---|---|---|---|---|---|---|---|\n"
     << rows;
}

// The report's opening: what was compared, how it was trained and what the columns mean.
void WriteReportHeader(std::ostream& md, const std::vector<Run>& runs, const CompareOptions& o, const TrainOptions& t,
                       double wall_seconds) {
  md << "# mixlab compare\n\n"
     << (o.preset.empty() ? "" : "Preset `" + o.preset + "`. ") << "Tasks `" << o.tasks << "`; variants `" << o.mixers
     << "` x positions `" << o.positions << "`" << (o.sweep.empty() ? "" : " x `" + o.sweep + "`") << "; " << o.seeds
     << " seed(s); learning rates `" << (o.lrs.empty() ? LearningRateText(t.lr) : o.lrs)
     << "` (the best per variant on validation accuracy). Training length " << t.train_len << ", " << t.steps
     << " steps of batch " << t.batch << " (AdamW, " << t.warmup << " warmup steps, cosine decay to " << t.min_lr_ratio
     << " x lr, weight decay " << t.weight_decay << ", clip " << t.clip << "). " << runs.size() << " runs, wall time "
     << int(wall_seconds) << " s.\n\n";
  if (!runs.empty())
    md << "Model (first run; each variant's layers are in its config.json): " << runs[0].spec.model.Summary() << ", "
       << runs[0].spec.model.layers.size() << " layers. Validation on " << t.val_answers
       << " answers per length, test on " << t.test_answers << ".\n\n";
  md << "Test accuracy is measured on the held-out test split at every evaluation length, on n scored "
     << "answers (a fixed set, --test-answers): one seed shows the accuracy and its 95% Wilson interval, several seeds "
        "the mean ± "
     << "standard deviation over seeds and each seed's value; "
     << "steps / tokens to 99% are the first validation step with accuracy >= 0.99 at the training length; mean loss "
        "is the "
     << "area under the training-loss curve per step (lower = faster convergence); state is the decoding state of the "
        "whole model "
     << "at the training length (floats).\n\n";
}

// The variants of `task`, in the order their runs were listed.
std::vector<std::string> TaskLabels(const std::vector<Run>& runs, const std::string& task) {
  std::vector<std::string> labels;
  for (const auto& r : runs)
    if (r.task == task && std::find(labels.begin(), labels.end(), r.label) == labels.end()) labels.push_back(r.label);
  return labels;
}

// The majority answer's accuracy on each length's test set: what a model that ignores its input reaches.
void WriteChance(std::ostream& md, const std::vector<Run>& runs, const std::string& task, const TrainOptions& t) {
  std::string baselines;  // the majority answer's accuracy on each length's test set: what a model that ignores its
                          // input reaches
  for (size_t li = 0; li < t.eval_lens.size(); ++li)
    for (const auto& r : runs)
      if (r.task == task && li < r.result.test.size()) {
        char cell[64];
        std::snprintf(cell, sizeof cell, "%s%.3f @%d", baselines.empty() ? "" : ", ", r.result.test[li].majority,
                      t.eval_lens[li]);
        baselines += cell;
        break;
      }
  if (!baselines.empty())
    md << "Chance: always giving the most frequent answer of each test set scores " << baselines << ".\n\n";
}

// One row per variant (its selected learning rate): test accuracy at every length, convergence, cost; then the
// --eval-sweep table.
void WriteResultsTable(std::ostream& md, const std::vector<Run>& runs, const std::string& task, const TrainOptions& t) {
  md << "| variant | lr |";
  for (size_t li = 0; li < t.eval_lens.size(); ++li) {
    int64_t n = 0;  // the test set's answers at this length (the same set for every run of the task)
    for (const auto& r : runs)
      if (r.task == task && li < r.result.test.size()) n = r.result.test[li].scored;
    md << " acc @" << t.eval_lens[li] << (n ? " (n=" + std::to_string(n) + ")" : "") << " |";
  }
  md << " steps to 99% | tokens to 99% | mean loss | bits/token @" << t.train_len
     << " | params | state | tokens/s | train s |\n|---|---|";
  for (size_t i = 0; i < t.eval_lens.size() + 8; ++i) md << "---|";
  md << "\n";
  const std::vector<std::string> labels = TaskLabels(runs, task);
  std::vector<std::string> sweep_rows;
  for (const auto& label : labels) {
    std::vector<const Run*> group;
    for (const auto& r : runs)
      if (r.task == task && r.label == label && r.selected) group.push_back(&r);
    if (group.empty()) continue;
    md << "| " << label << " | " << LearningRateText(group[0]->lr) << " |";
    for (size_t li = 0; li < t.eval_lens.size(); ++li) {
      std::vector<const EvalResult*> evals;
      for (auto* r : group)
        if (li < r->result.test.size()) evals.push_back(&r->result.test[li]);
      md << " " << AccuracyCell(evals) << " |";
    }
    std::vector<double> steps, tokens, loss, bits, tok_s, secs;
    for (auto* r : group) {
      if (r->result.steps_to_99 >= 0)
        steps.push_back(r->result.steps_to_99), tokens.push_back(double(r->result.tokens_to_99));
      loss.push_back(r->result.mean_train_loss);
      if (!r->result.test.empty()) bits.push_back(r->result.test[0].loss / std::log(2.0));
      tok_s.push_back(r->result.tokens_per_second);
      secs.push_back(r->result.train_seconds);
    }
    const std::string reached = " (" + std::to_string(steps.size()) + "/" + std::to_string(group.size()) + ")";
    md << " " << (steps.empty() ? "not reached" : MeanSpread(steps, "%.0f") + reached) << " | "
       << (tokens.empty() ? "-" : MeanSpread(tokens, "%.3g")) << " | " << MeanSpread(loss, "%.4f") << " | "
       << MeanSpread(bits, "%.3f") << " | " << group[0]->result.params << " | " << group[0]->state_floats << " | "
       << MeanSpread(tok_s, "%.0f") << " | " << MeanSpread(secs, "%.0f") << " |\n";
    for (size_t si = 0; si < group[0]->result.sweep.size(); ++si) {
      std::string row = "| " + label + " | " + group[0]->result.sweep[si].first + " |";
      for (int len : t.eval_lens) {  // a swept value the task cannot generate at a length has no entry there: "-"
        std::vector<const EvalResult*> evals;
        for (auto* r : group)
          if (si < r->result.sweep.size())
            for (const auto& e : r->result.sweep[si].second)
              if (e.length == len) evals.push_back(&e);
        row += " " + AccuracyCell(evals, "-") + " |";
      }
      sweep_rows.push_back(row);
    }
  }
  if (!sweep_rows.empty()) {
    md << "\nTest accuracy for each value of `" << t.eval_sweep.substr(0, t.eval_sweep.find('='))
       << "`:\n\n| variant | value |";
    for (int len : t.eval_lens) md << " acc @" << len << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < t.eval_lens.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& row : sweep_rows) md << row << "\n";
  }
}

// Validation accuracy at the training length for every learning rate tried, the chosen one in bold.
void WriteLearningRateTable(std::ostream& md, const std::vector<Run>& runs, const std::string& task,
                            const CompareOptions& o, const TrainOptions& t) {
  if (o.lrs.empty()) return;
  md << "\nValidation accuracy at the training length per learning rate (on " << t.val_answers
     << " answers; the chosen one in bold):\n\n| variant |";
  const auto lrs = SplitList(o.lrs, ',', "--lrs");
  for (const auto& lr : lrs) md << " lr " << lr << " |";
  md << "\n|---|";
  for (size_t i = 0; i < lrs.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& label : TaskLabels(runs, task)) {
    md << "| " << label << " |";
    for (const auto& lr_text : lrs) {
      std::vector<const EvalResult*> evals;
      bool chosen = false;
      for (const auto& r : runs)
        if (r.task == task && r.label == label && r.lr == std::stof(lr_text))
          for (const auto& e : r.result.validation)
            if (e.length == t.train_len) evals.push_back(&e), chosen = r.selected;
      const std::string cell = AccuracyCell(evals, "-");
      md << " " << (chosen ? "**" + cell + "**" : cell) << " |";
    }
    md << "\n";
  }
}

void WriteTaskFigures(std::ostream& md, const std::string& dir, const std::string& task, const TrainOptions& t) {
  md << "![loss](loss_" << task << ".png)\n![accuracy vs length](accuracy_vs_length_" << task << ".png)\n";
  std::error_code ec;  // not drawn for tasks with one scored position per sequence
  if (std::filesystem::exists(dir + "/accuracy_vs_position_" + task + ".png", ec))
    md << "![accuracy vs position](accuracy_vs_position_" << task << ".png)\n";
  if (t.eval_sweep.rfind(task + ".", 0) == 0)
    md << "![accuracy vs " << t.eval_sweep.substr(0, t.eval_sweep.find('=')) << "](accuracy_vs_sweep_" << task
       << ".png)\n";
  md << "\n";
}

// Plot notes, the load the speeds were measured under, provenance and where the raw numbers are.
void WriteReportFooter(std::ostream& md, const std::vector<Run>& runs, const TrainOptions& t,
                       const std::string& plot_note) {
  if (!plot_note.empty()) md << "Plots: " << plot_note << "\n";
  double low_load = 1e9, high_load = -1;
  for (const auto& r : runs)
    if (r.result.load_average >= 0)
      low_load = std::min(low_load, r.result.load_average), high_load = std::max(high_load, r.result.load_average);
  if (high_load >= 0) {
    char load[200];
    std::snprintf(load, sizeof load, "%.1f-%.1f on %ld cores", low_load, high_load,
                  long(sysconf(_SC_NPROCESSORS_ONLN)));
    md << "\ntokens/s and train s are wall-clock figures under the load seen (1-minute load average at the end of each "
          "run: "
       << load << "); compare speeds with `bench/` on a quiet machine, not with this column.\n";
  }
  const nlohmann::json provenance = Provenance(t.threads);
  md << "\nProvenance: " << VersionLine() << ", " << provenance["date"].get<std::string>() << ", "
     << provenance["cpu"].get<std::string>() << ", " << t.threads << " threads per run.\n";
  md << "\nRaw numbers: `results.csv` (one row per run x metric); per-step metrics: each run's `metrics.jsonl` (see "
        "`runs.json`).\n";
}

void WriteReport(const std::string& dir, const std::vector<Run>& runs, const CompareOptions& o, const TrainOptions& t,
                 const std::string& plot_note, double wall_seconds) {
  std::ostringstream md;
  WriteReportHeader(md, runs, o, t, wall_seconds);
  for (const auto& task : SplitList(o.tasks, ',', "--tasks")) {
    md << "## " << task << "\n\n";
    WriteChance(md, runs, task, t);
    WriteResultsTable(md, runs, task, t);
    WriteLearningRateTable(md, runs, task, o, t);
    WriteHeadSummary(md, runs, task);
    WriteDynamicsSummary(md, runs, task);
    md << "\n";
    if (plot_note.empty()) WriteTaskFigures(md, dir, task, t);
  }
  WriteReportFooter(md, runs, t, plot_note);
  WriteFileAtomic(dir + "/report.md", md.str());
}

// The preset named on the command line, found before parsing so its values can sit under every other flag.
OptionMap PresetFlags(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--preset" && i + 1 < argc) return FindPreset(argv[i + 1]).flags;
    if (a.rfind("--preset=", 0) == 0) return FindPreset(a.substr(9)).flags;
  }
  return {};
}

// experiment.json records every run's config; a directory holding another experiment is refused without --force.
// train's single-run flags that compare replaces with a list would be silently ignored: refuse them, naming the list.
void RefuseSingleRunFlags(const TrainOptions& train, const ModelOptions& model) {
  const TrainOptions t;
  const ModelOptions m;
  const std::pair<bool, const char*> given[] = {
      {train.task != t.task, "--task: compare trains every task of --tasks"},
      {model.mixer != m.mixer, "--mixer: compare trains every variant of --mixers"},
      {model.layers != m.layers, "--layers: per-layer hybrids are --mixers entries joined by '+'"},
      {model.pos != m.pos, "--pos: compare crosses variants with --positions (or VARIANT@POS)"}};
  for (const auto& [set, why] : given)
    if (set) throw UsageError(std::string(why) + "; see `mixlab compare --help`");
}

// Run directories are named by their config (a readable part and a hash of the whole), so an experiment directory
// can grow: a compare with more variants, seeds or learning rates trains only the runs it does not hold yet. Only a
// directory compare did not write (no experiment.json) is refused without --force.
void ClaimDirectory(const std::string& out, const std::vector<Run>& runs, bool force) {
  nlohmann::json experiment = nlohmann::json::array();
  for (const auto& r : runs) experiment.push_back(Run(r).spec.ToJson());
  const std::string path = out + "/experiment.json";
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!force && fs::exists(out, ec) && !fs::is_empty(out, ec) && !fs::exists(path, ec))
    throw UsageError(
        "'" + out +
        "' holds files not written by mixlab compare; choose another --out or pass --force to write into it");
  CreateDirectories(out);
  WriteFileAtomic(path, experiment.dump(1) + "\n");
}

// Defaults sized so every mixer family trains MQAR and induction in about 10 minutes on 2 cores: short training
// sequences (32), evaluated up to 8x longer; at d_model 128 attention leaves the MQAR plateau within 200 steps at
// lr 1e-3 (measured), where d_model 64 did not reach 99% in 800 steps at any rate tried.
void SetCompareDefaults(TrainOptions& train, ModelOptions& model) {
  train.train_len = 32;
  train.eval_lens = {32, 64, 128, 256};
  train.steps = 300;
  train.batch = 64;
  train.warmup = 50;
  train.lr = 1e-3f;
  train.eval_every = 100;
  model.d_model = 128;
}

// --lrs as numbers, or the single --lr.
std::vector<float> LearningRates(const CompareOptions& o, const TrainOptions& train) {
  std::vector<float> lrs = {};
  for (const auto& lr : o.lrs.empty() ? std::vector<std::string>{} : SplitList(o.lrs, ',', "--lrs")) {
    char* end = nullptr;
    lrs.push_back(std::strtof(lr.c_str(), &end));
    if (*end != '\0')
      throw UsageError("--lrs: '" + lr + "' is not a number; give comma-separated learning rates, e.g. 1e-3,3e-3");
    if (!(lrs.back() > 0 && lrs.back() <= 10)) throw UsageError("--lrs: " + lr + " is outside (0, 10]");
  }
  if (lrs.empty()) lrs.push_back(train.lr);
  return lrs;
}

// What every run of the experiment shares; PlanRun fills in one (task, variant, position, sweep value, lr, seed).
struct ExperimentPlan {
  const CompareOptions* o = nullptr;
  const TrainOptions* train = nullptr;
  const ModelOptions* model = nullptr;
  const ParsedFlags* flags = nullptr;
  std::string out = "", sweep_flag = "", sweep_task = "";
  std::vector<std::string> sweep_values{""};
  std::vector<float> lrs = {};
};

ExperimentPlan MakePlan(const CompareOptions& o, const TrainOptions& train, const ModelOptions& model,
                        const ParsedFlags& flags) {
  ExperimentPlan plan{&o, &train, &model, &flags};
  // --out names the experiment directory; a preset's default is its own (runs/<preset>)
  plan.out = !train.out.empty() ? train.out : o.preset.empty() ? "runs/compare" : "runs/" + o.preset;
  plan.lrs = LearningRates(o, train);
  if (!o.sweep.empty()) {
    const auto eq = o.sweep.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--sweep '" + o.sweep + "': expected FLAG=v1,v2,...");
    plan.sweep_flag = o.sweep.substr(0, eq);
    plan.sweep_values = SplitList(o.sweep.substr(eq + 1), ',', "--sweep values");
  }
  const auto tasks = SplitList(o.tasks, ',', "--tasks");
  plan.sweep_task = train.eval_sweep.substr(0, train.eval_sweep.find('.'));
  if (!train.eval_sweep.empty() && std::find(tasks.begin(), tasks.end(), plan.sweep_task) == tasks.end())
    throw UsageError("--eval-sweep '" + train.eval_sweep + "' names task '" + plan.sweep_task +
                     "', which is not among --tasks " + o.tasks);
  return plan;
}

// One run's spec, validated (task lengths, memory) and given its directory.
Run PlanRun(const ExperimentPlan& plan, const std::string& task, const std::string& variant,
            const std::string& pos_flag, const std::string& sweep_value, float lr, int seed) {
  const std::string pos = ResolvePosition(pos_flag, variant);
  Run r;
  r.task = task, r.variant = variant, r.pos = pos, r.lr = lr, r.seed = seed;
  r.sweep_value = plan.sweep_flag.empty() ? "" : plan.sweep_flag + "=" + sweep_value;
  r.label = variant + " " + pos + (r.sweep_value.empty() ? "" : " " + r.sweep_value);
  TrainOptions t = *plan.train;
  ModelOptions m = *plan.model;
  ParsedFlags f = *plan.flags;
  t.task = task, t.seed = r.seed, t.lr = lr;
  if (plan.sweep_task != task) t.eval_sweep.clear();  // the evaluation sweep belongs to one task
  SetOptions(m, {{"pos", pos}}, "--");
  const auto slash = variant.find('/');
  std::string seq = variant.substr(0, slash);
  if (seq.find('+') == std::string::npos) {
    m.mixer = seq;  // every layer (--n-layers of them)
  } else {
    std::replace(seq.begin(), seq.end(), '+', ',');
    m.layers = seq;  // a hybrid: one mixer per layer
  }
  if (slash != std::string::npos) {
    std::string channel = variant.substr(slash + 1);
    if (channel.find('+') == std::string::npos) m.channel = channel;
    else std::replace(channel.begin(), channel.end(), '+', ','), m.channels = channel;
  }
  if (!plan.sweep_flag.empty()) ApplySweep(plan.sweep_flag, sweep_value, t, m, f);
  r.spec = BuildRunSpec(t, m, f, false);
  ValidateRun(r.spec, *MakeTask(task, r.spec.task_options));
  CheckMemory(r.spec);
  std::string name = task + "-" + variant + "-" + pos + (r.sweep_value.empty() ? "" : "-" + r.sweep_value) +
                     (plan.lrs.size() > 1 ? "-lr" + LearningRateText(lr) : "") + "-s" + std::to_string(r.seed);
  for (char& c : name)
    if (c == ':' || c == '=' || c == '+' || c == '/' || c == ',') c = '_';
  r.spec.train.out = plan.out + "/" + name + "-" + r.spec.ConfigId();
  const auto declared = LanguageModel::Declared(r.spec.model);
  for (int l = 0; l < declared->n_layers(); ++l) {
    const auto d = declared->mixer(l).Describe(t.train_len);
    r.state_floats += d.state_floats_fixed + d.state_floats_per_token * t.train_len;
  }
  return r;
}

// Every run of the experiment, built before any training so a bad combination fails first.
std::vector<Run> PlanRuns(const ExperimentPlan& plan) {
  const CompareOptions& o = *plan.o;
  std::vector<Run> runs;
  for (const auto& task : SplitList(o.tasks, ',', "--tasks"))
    for (const auto& entry : SplitList(o.mixers, ',', "--mixers"))
      for (const auto& [variant, pos_flag] : VariantPositions(entry, o.positions))
        for (const auto& sweep_value : plan.sweep_values)
          for (float lr : plan.lrs)
            for (int s = 0; s < o.seeds; ++s)
              runs.push_back(PlanRun(plan, task, variant, pos_flag, sweep_value, lr, plan.train->seed + s));
  std::set<std::string>
      directories;  // duplicates in a list ("softmax,softmax", "1e-3,0.001") would overwrite each other
  for (const auto& r : runs)
    if (!directories.insert(r.spec.train.out).second)
      throw UsageError("two runs would share the directory '" + r.spec.train.out + "' (" + r.task + " " + r.label +
                       "); remove the duplicate from --mixers, --positions, --lrs or --sweep");
  return runs;
}

// Trains (or skips, when finished earlier) and analyses one run; later_runs_seconds estimates the time of the runs
// after it (-1: unknown).
void TrainAndAnalyze(Run& r, const std::string& prefix, double later_runs_seconds, const CompareOptions& o) {
  r.result = Train(r.spec, {.progress_prefix = prefix, .later_runs_seconds = later_runs_seconds, .resume = o.resume});
  if (!o.analyze || r.result.diverged) return;
  std::cerr << prefix << ": analysing the trained model (head scores, ablations, logit lens)\n";
  try {  // one run's analysis never costs the sweep: the failure goes into the report
    AnalyzeRun(r.result.run_dir + "/model.safetensors", o.plots, r.spec.train.threads);
    if (r.spec.train.snapshot_every > 0) AnalyzeRunOverTraining(r.result.run_dir, o.plots, r.spec.train.threads);
  } catch (const std::exception& e) {
    r.analysis_error = e.what();
    std::cerr << prefix << ": analysis failed, the sweep goes on: " << e.what() << "\n";
  }
}

// Trains (or skips, when finished earlier) and analyses every run; returns the wall time in seconds. Under mpirun the
// ranks take the runs one at a time as they become idle (SweepScheduler); each run trains in one process, exactly as
// in a serial compare, and rank 0 then reads every run's results from its directory.
double TrainRuns(std::vector<Run>& runs, const ExperimentPlan& plan) {
  const CompareOptions& o = *plan.o;
  const Communicator& world = Communicator::World();
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  const std::string rank = world.distributed() ? "rank " + std::to_string(world.rank()) + " " : "";
  int trained = 0, finished = -1;
  std::string report;  // about the run finished last: why its analysis failed, if it did
  SweepScheduler scheduler(world, int(runs.size()));
  for (int i; (i = scheduler.Next(finished, report)) >= 0; finished = i) {
    report.clear();
    Run& r = runs[i];
    // The runs after this one, at the mean time of those trained so far (unknown before the first), over the ranks.
    const double later_runs_seconds = trained ? seconds() / trained * double(runs.size() - i - 1) / world.size() : -1;
    const std::string prefix = rank + "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "] " + r.task +
                               " " + r.label + (plan.lrs.size() > 1 ? " lr " + LearningRateText(r.lr) : "") + " s" +
                               std::to_string(r.seed);
    if (LoadFinished(r)) {
      std::cerr << prefix << ": finished earlier with the same config, skipped\n";
      continue;
    }
    TrainAndAnalyze(r, prefix, later_runs_seconds, o);
    report = r.analysis_error;
    ++trained;
    std::string accs;
    for (const auto& e : r.result.test)
      accs += " T=" + std::to_string(e.length) + ":" + std::to_string(e.accuracy).substr(0, 5);
    std::fprintf(stderr, "%s: done,%s%s; experiment ETA %.0fs\n", prefix.c_str(), r.result.diverged ? " diverged" : "",
                 accs.c_str(), seconds() / trained * double(runs.size() - i - 1) / world.size());
  }
  if (world.distributed() && world.root()) {  // the runs the other ranks trained, from their directories
    const auto reports = scheduler.Finish();
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!LoadFinished(runs[i], true))
        throw UsageError("run '" + runs[i].spec.train.out + "' has no readable results after the sweep; every rank " +
                         "must write to the same --out (a shared filesystem)");
      if (const auto it = reports.find(int(i)); it != reports.end()) runs[i].analysis_error = it->second;
    }
  }
  return seconds();
}

// The plots (through plot_report.py), or why there are none.
std::string DrawReportPlots(const CompareOptions& o, const std::string& out) {
  if (!o.plots) return "disabled with --plots false";
  const std::vector<std::string> cmd = PlotCommand("plot_report.py", out);
  if (RunProgram(cmd) != 0)
    return "not drawn (python3-matplotlib missing or the plot script failed; run `" + CommandLine(cmd) + "`)";
  return "";
}

}  // namespace

int CompareCommand(int argc, char** argv) {
  CompareOptions o;
  TrainOptions train;
  ModelOptions model;
  SetCompareDefaults(train, model);
  std::vector<FlagGroup> groups;
  groups.push_back({"experiment", &o, "", nullptr});
  for (auto& g : RunFlagGroups(train, model)) groups.push_back(std::move(g));
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("compare",
                        "Train every task x variant x positional encoding x learning rate x seed and write a report.",
                        argc, argv, groups, flags, PresetFlags(argc, argv)))
    return 0;
  RefuseSingleRunFlags(train, model);
  const ExperimentPlan plan = MakePlan(o, train, model, flags);
  std::vector<Run> runs = PlanRuns(plan);
  const Communicator& world = Communicator::World();  // under mpirun, the ranks share the runs out
  if (o.dry_run) {
    if (!world.root()) return 0;
    for (const auto& r : runs)
      std::printf("%s  (%s %s, seed %d)\n", r.spec.train.out.c_str(), r.task.c_str(), r.label.c_str(), r.seed);
    std::printf("%zu runs; nothing trained (--dry-run)\n", runs.size());
    return 0;
  }
  std::unique_ptr<DirectoryLock> lock;
  if (world.root()) {
    ClaimDirectory(plan.out, runs, o.force);
    lock = std::make_unique<DirectoryLock>(plan.out);  // one compare per experiment directory at a time
  }
  world.Barrier();  // no rank writes into the directory before rank 0 has claimed it
  const double wall = TrainRuns(runs, plan);
  if (!world.root()) return 0;  // rank 0 writes the report
  SelectLearningRates(runs);
  WriteTables(plan.out, runs);
  WriteReport(plan.out, runs, o, train, DrawReportPlots(o, plan.out), wall);
  std::printf("report: %s/report.md\n", plan.out.c_str());
  if (const std::string why = WriteHtmlPage("report", plan.out); !why.empty())
    std::fprintf(stderr, "mixlab compare: %s\n", why.c_str());
  else std::printf("interactive report: %s/report.html\n", plan.out.c_str());
  return 0;
}

}  // namespace mixlab
