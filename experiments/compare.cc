// mixlab compare: the same tasks, data, budget and seeds for several mixers and positional encodings, then
// one report (report.md, results.csv, runs.json and matplotlib plots). A repeated compare skips runs whose
// directory already holds results for an identical config.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "experiments/commands.h"
#include "experiments/run_builder.h"
#include "experiments/trainer.h"
#include "mixers/tensor.h"

namespace mixlab {
namespace {

struct CompareOptions : Options {
  std::string tasks = "mqar,induction";
  std::string mixers = "softmax";
  std::string positions = "none,learned,sinusoidal,rope,alibi";
  int seeds = 1;
  bool plots = true;
  void Visit(OptionVisitor& v) override {
    v.String("tasks", tasks, "comma-separated tasks");
    v.String("mixers", mixers, "comma-separated model variants; each NAME[:opt=value...], '+' joins one mixer per layer (hybrids)");
    v.String("positions", positions, "comma-separated positional encodings to cross with every mixer");
    v.Int("seeds", seeds, "seeds per combination (0 .. seeds-1 added to --seed)", 1, 1000);
    v.Bool("plots", plots, "draw PNG plots with python3-matplotlib");
  }
};

struct Run {
  std::string task, mixer, pos, variant;
  int seed;
  RunSpec spec;
  TrainResult result;
};

// Loads a finished run whose config matches, so repeated compares skip it.
bool LoadFinished(Run& run) {
  const std::string dir = run.spec.train.out;
  std::ifstream cfg(dir + "/config.json"), res(dir + "/results.json");
  if (!cfg || !res) return false;
  try {
    if (nlohmann::json::parse(cfg) != run.spec.ToJson()) return false;
    const auto j = nlohmann::json::parse(res);
    if (j.at("diverged").get<bool>()) return false;
    TrainResult& r = run.result;
    r.run_dir = dir;
    r.steps_done = j.at("steps_done");
    r.train_seconds = j.at("train_seconds");
    r.tokens_per_second = j.at("tokens_per_second");
    r.params = j.at("params");
    r.steps_to_99 = j.at("steps_to_99");
    for (const auto& [len, e] : j.at("test").items())
      r.test.push_back({std::stoi(len), e.at("loss").get<double>(), e.at("accuracy").get<double>(), 0});
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::string MeanSpread(const std::vector<double>& v, const char* fmt) {
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

// results.csv (one row per run x metric) and runs.json (where each run's metrics.jsonl is), read by the plots.
void WriteTables(const std::string& dir, const std::vector<Run>& runs, const TrainOptions& t) {
  std::ofstream csv(dir + "/results.csv");
  csv << "task,variant,mixer,pos,seed,metric,length,value\n";
  nlohmann::json index = nlohmann::json::array();
  for (const auto& r : runs) {
    auto row = [&](const std::string& metric, int len, double v) {
      csv << r.task << "," << r.variant << "," << r.mixer << "," << r.pos << "," << r.seed << "," << metric << ","
          << len << "," << v << "\n";
    };
    for (const auto& e : r.result.test) {
      row("test_accuracy", e.length, e.accuracy);
      row("test_loss", e.length, e.loss);
    }
    row("steps_to_99", t.train_len, r.result.steps_to_99);
    row("tokens_per_s", t.train_len, r.result.tokens_per_second);
    row("params", 0, double(r.result.params));
    row("train_seconds", 0, r.result.train_seconds);
    index.push_back({{"task", r.task}, {"variant", r.variant}, {"seed", r.seed}, {"run_dir", r.result.run_dir}});
  }
  std::ofstream(dir + "/runs.json") << index.dump(2) << "\n";
}

void WriteReport(const std::string& dir, const std::vector<Run>& runs, const CompareOptions& o, const TrainOptions& t,
                 const std::string& plot_note) {
  std::ofstream md(dir + "/report.md");
  md << "# mixlab compare\n\n"
     << "Tasks `" << o.tasks << "`, variants `" << o.mixers << "` x positions `" << o.positions << "`, " << o.seeds
     << " seed(s). Training length " << t.train_len << ", " << t.steps << " steps of batch " << t.batch << ", lr " << t.lr
     << ". Test accuracy is measured on the held-out test split at every evaluation length (mean ± std over seeds).\n\n";
  for (const auto& task : SplitList(o.tasks, ',')) {
    md << "## " << task << "\n\n| variant |";
    for (int len : t.eval_lens) md << " acc @" << len << " |";
    md << " steps to 99% | params | tokens/s |\n|---|";
    for (size_t i = 0; i < t.eval_lens.size() + 3; ++i) md << "---|";
    md << "\n";
    std::vector<std::string> variants;
    for (const auto& r : runs)
      if (r.task == task && std::find(variants.begin(), variants.end(), r.variant) == variants.end()) variants.push_back(r.variant);
    for (const auto& v : variants) {
      std::vector<const Run*> group;
      for (const auto& r : runs)
        if (r.task == task && r.variant == v) group.push_back(&r);
      md << "| " << v << " |";
      for (size_t li = 0; li < t.eval_lens.size(); ++li) {
        std::vector<double> acc;
        for (auto* r : group)
          if (li < r->result.test.size()) acc.push_back(r->result.test[li].accuracy);
        md << " " << (acc.empty() ? "diverged" : MeanSpread(acc, "%.3f")) << " |";
      }
      std::vector<double> steps, tok;
      int reached = 0;
      for (auto* r : group) {
        if (r->result.steps_to_99 >= 0) steps.push_back(r->result.steps_to_99), ++reached;
        tok.push_back(r->result.tokens_per_second);
      }
      md << " " << (steps.empty() ? "not reached" : MeanSpread(steps, "%.0f") + " (" + std::to_string(reached) + "/" + std::to_string(group.size()) + ")")
         << " | " << group[0]->result.params << " | " << MeanSpread(tok, "%.0f") << " |\n";
    }
    md << "\n";
    if (plot_note.empty())
      md << "![loss](loss_" << task << ".png)\n![accuracy vs length](accuracy_vs_length_" << task << ".png)\n\n";
  }
  if (!plot_note.empty()) md << "Plots: " << plot_note << "\n";
  md << "\nRaw numbers: `results.csv` (one row per run x metric); per-step metrics: each run's `metrics.jsonl` (see `runs.json`).\n";
}

}  // namespace

int CompareCommand(int argc, char** argv) {
  CompareOptions o;
  TrainOptions train;
  ModelOptions model;
  train.steps = 1500;  // defaults that let softmax attention clear MQAR's and induction's plateaus
  train.batch = 64;
  train.warmup = 200;
  train.eval_lens = {64, 128, 256, 512};
  train.eval_every = 250;
  std::vector<FlagGroup> groups;
  groups.push_back({"experiment", &o, "", nullptr});
  for (auto& g : RunFlagGroups(train, model)) groups.push_back(std::move(g));
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("compare", "Train every task x variant x positional encoding x seed and write a report.", argc,
                        argv, groups, flags))
    return 0;
  const std::string out = train.out.empty() ? "runs/compare" : train.out;  // --out names the experiment directory
  // Build every spec first, so a bad combination fails before any training.
  std::vector<Run> runs;
  for (const auto& task : SplitList(o.tasks, ','))
    for (const auto& variant : SplitList(o.mixers, ','))
      for (const auto& pos : SplitList(o.positions, ','))
        for (int s = 0; s < o.seeds; ++s) {
          Run r{task, variant, pos, variant + "/" + pos, train.seed + s, {}, {}};
          TrainOptions t = train;
          t.task = task;
          t.seed = r.seed;
          ModelOptions m = model;
          OptionMap pos_value{{"pos", pos}};
          SetOptions(m, pos_value, "--");
          if (variant.find('+') == std::string::npos) {
            m.mixer = variant;  // every layer (--n-layers of them)
          } else {
            m.layers = variant;  // a hybrid: one mixer per layer
            std::replace(m.layers.begin(), m.layers.end(), '+', ',');
          }
          r.spec = BuildRunSpec(t, m, flags, false);
          auto task_obj = MakeTask(task, r.spec.task_options);
          ValidateRun(r.spec, *task_obj);
          std::string name = task + "-" + variant + "-" + pos + "-s" + std::to_string(r.seed);
          for (char& c : name)
            if (c == ':' || c == '=' || c == '+') c = '_';
          r.spec.train.out = out + "/" + name;
          runs.push_back(std::move(r));
        }
  std::filesystem::create_directories(out);
  const auto start = std::chrono::steady_clock::now();
  int trained = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    Run& r = runs[i];
    const std::string prefix = "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "] " + r.task + " " + r.variant + " s" + std::to_string(r.seed);
    if (LoadFinished(r)) {
      std::cerr << prefix << ": finished earlier with the same config, skipped\n";
      continue;
    }
    r.result = Train(r.spec, {.progress_prefix = prefix});
    ++trained;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string accs;
    for (const auto& e : r.result.test) accs += " T=" + std::to_string(e.length) + ":" + std::to_string(e.accuracy).substr(0, 5);
    std::fprintf(stderr, "%s: done,%s%s; experiment ETA %.0fs\n", prefix.c_str(), r.result.diverged ? " diverged" : "",
                 accs.c_str(), elapsed / trained * double(runs.size() - i - 1));
  }
  WriteTables(out, runs, train);
  std::string plot_note;
  if (o.plots) {
    const std::string cmd = "/usr/bin/python3 " MIXLAB_SOURCE_DIR "/experiments/plot_report.py '" + out + "'";
    if (std::system(cmd.c_str()) != 0) plot_note = "not drawn (python3-matplotlib missing or the plot script failed; run `" + cmd + "`)";
  } else {
    plot_note = "disabled with --plots false";
  }
  WriteReport(out, runs, o, train, plot_note);
  std::printf("report: %s/report.md\n", out.c_str());
  return 0;
}

}  // namespace mixlab
