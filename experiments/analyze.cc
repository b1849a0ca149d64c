// mixlab analyze: what the heads (or channel groups) of a trained model do, through every mixer's mixing matrix.
// Writes analysis.json, one CSV per head score (layers x heads), and PNG figures drawn by plot_analysis.py.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "experiments/ablation.h"
#include "experiments/analysis.h"
#include "experiments/commands.h"
#include "experiments/flags.h"
#include "experiments/run_builder.h"

namespace mixlab {

namespace {

struct AnalyzeOptions : Options {
  std::string checkpoint, out;
  int length = 0, samples = 16, eval_batches = 4, batch = 0, threads = 2;
  std::string ablation = "zero";
  bool prune = true, plots = true;
  void Visit(OptionVisitor& v) override {
    v.String("checkpoint", checkpoint, "RUN/model.safetensors (also accepted as the first argument)");
    v.String("out", out, "output directory; empty = RUN/analysis");
    v.Int("length", length, "sequence length of the probes; 0 = the run's training length", 0, 1 << 16);
    v.Int("samples", samples, "task sequences (and repeated random sequences) the head scores average over", 1, 1 << 16);
    v.Int("eval-batches", eval_batches, "test batches per ablation evaluation", 1, 1 << 16);
    v.Int("batch", batch, "sequences per evaluation batch; 0 = the run's --batch", 0, 1 << 20);
    v.Choice("ablation", ablation, "how a removed head is replaced", {"zero", "mean"});
    v.Bool("prune", prune, "draw the greedy pruning curve (quadratic in the number of heads)");
    v.Bool("plots", plots, "draw PNG figures with python3-matplotlib");
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
  }
};

// Heads whose maps are near-uniform or whose output is near zero.
constexpr double kDeadEntropyRatio = 0.97, kDeadOutputShare = 0.02, kDuplicateSimilarity = 0.95;

const std::vector<std::pair<const char*, double HeadScores::*>> kScores = {
    {"previous_token", &HeadScores::previous_token}, {"duplicate_token", &HeadScores::duplicate_token},
    {"induction", &HeadScores::induction},           {"entropy", &HeadScores::entropy},
    {"entropy_ratio", &HeadScores::entropy_ratio},   {"mean_distance", &HeadScores::mean_distance},
    {"sink_mass", &HeadScores::sink_mass}};

nlohmann::json MatrixJson(const RowMatrix& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t t = 0; t < m.rows(); ++t) rows.push_back(std::vector<float>(m.row(t).data(), m.row(t).data() + m.cols()));
  return rows;
}

}  // namespace

int AnalyzeCommand(int argc, char** argv) {
  AnalyzeOptions o;
  if (argc > 1 && argv[1][0] != '-') {  // mixlab analyze CHECKPOINT [flags]
    o.checkpoint = argv[1];
    argv[1] = argv[0];
    --argc, ++argv;
  }
  std::vector<FlagGroup> groups;
  groups.push_back({"analysis", &o, "", nullptr});
  ParsedFlags flags;
  if (!ParseFlagsOrHelp("analyze", "Head scores, ablations, pruning, redundancy and logit lens of a checkpoint.", argc,
                        argv, groups, flags))
    return 0;
  LoadedRun run = LoadRun(o.checkpoint);
  LanguageModel& model = *run.model;
  auto task = MakeTask(run.spec.train.task, run.spec.task_options);
  const int T = o.length ? o.length : run.spec.train.train_len;
  task->CheckLength(T);
  if (T < 4) throw UsageError("--length " + std::to_string(T) + " is too short; the induction probe needs at least 4");
  omp_set_num_threads(o.threads);
  const std::string out = o.out.empty() ? std::filesystem::path(o.checkpoint).parent_path().append("analysis").string() : o.out;
  std::filesystem::create_directories(out);
  std::printf("analyze %s (step %s): %s on %s, T=%d\n", o.checkpoint.c_str(), run.step.c_str(), run.spec.model.Summary().c_str(),
              run.spec.train.task.c_str(), T);

  // Head scores averaged over samples; maps and similarities from every sample.
  Rng rng = SplitRng(uint64_t(run.spec.train.seed), Split::kTest, T);
  std::vector<LayerAnalysis> first, mean;
  std::vector<std::vector<double>> similarity;
  std::map<std::string, double> channel_stats;
  for (int i = 0; i < o.samples; ++i) {
    Batch sample = task->Sample(1, T, rng, Split::kTest);
    auto layers = AnalyzeHeads(model, sample.tokens, RepeatedRandomSequence(T / 2, model.vocab(), rng));
    model.Forward(sample.tokens.data(), 1, T);
    for (int l = 0; l < model.n_layers(); ++l)
      for (const auto& [k, v] : model.channel(l).Stats()) channel_stats["layers." + std::to_string(l) + "." + k] += v / o.samples;
    auto sim = MapSimilarity(layers);
    if (i == 0) {
      first = layers;
      mean = layers;
      similarity.assign(sim.size(), std::vector<double>(sim.size(), 0.0));
      for (auto& l : mean)
        for (auto& h : l.heads) h = HeadScores{};
    }
    for (size_t a = 0; a < sim.size(); ++a)
      for (size_t b = 0; b < sim.size(); ++b) similarity[a][b] += sim[a][b] / o.samples;
    for (size_t l = 0; l < layers.size(); ++l)
      for (size_t h = 0; h < layers[l].heads.size(); ++h)
        for (const auto& [name, field] : kScores) mean[l].heads[h].*field += layers[l].heads[h].*field / o.samples;
  }

  AblationSetup setup;
  setup.task = task.get();
  setup.length = T;
  setup.batches = o.eval_batches;
  setup.batch = o.batch ? o.batch : run.spec.train.batch;
  setup.seed = uint64_t(run.spec.train.seed);
  setup.mode = o.ablation == "mean" ? AblationMode::kMean : AblationMode::kZero;
  for (const auto& l : mean) setup.heads_per_layer.push_back(int(l.heads.size()));
  const EvalResult base = Evaluate(model, *task, T, setup.batches, setup.batch, setup.seed, Split::kTest);
  const auto shares = HeadOutputShares(model, setup);

  nlohmann::json j;
  j["checkpoint"] = o.checkpoint;
  j["step"] = run.step;
  j["task"] = run.spec.train.task;
  j["model"] = run.spec.model.Summary();
  j["length"] = T;
  j["samples"] = o.samples;
  j["ablation"] = o.ablation;
  j["baseline"] = {{"accuracy", base.accuracy}, {"loss", base.loss}};
  j["channel_stats"] = channel_stats;
  nlohmann::json heads = nlohmann::json::array(), maps = nlohmann::json::array();
  int flat = 0;
  for (size_t l = 0; l < mean.size(); ++l) {
    nlohmann::json layer_maps = nlohmann::json::array();
    for (size_t h = 0; h < mean[l].heads.size(); ++h, ++flat) {
      const HeadScores& s = mean[l].heads[h];
      nlohmann::json row = {{"layer", l}, {"head", h}, {"mixer", mean[l].mixer}};
      for (const auto& [name, field] : kScores) row[name] = s.*field;
      const EvalResult ablated = EvaluateAblated(model, setup, {{int(l), int(h)}});
      row["ablated_accuracy"] = ablated.accuracy;
      row["accuracy_change"] = ablated.accuracy - base.accuracy;
      row["loss_change"] = ablated.loss - base.loss;
      row["output_share"] = shares[l][h];
      row["helps_when_removed"] = ablated.accuracy > base.accuracy || (ablated.accuracy == base.accuracy && ablated.loss < base.loss);
      row["dead"] = s.entropy_ratio > kDeadEntropyRatio || shares[l][h] < kDeadOutputShare;
      nlohmann::json duplicates = nlohmann::json::array();
      for (int other = 0; other < int(similarity.size()); ++other)
        if (other != flat && similarity[flat][other] > kDuplicateSimilarity) duplicates.push_back(other);
      row["duplicates"] = duplicates;
      heads.push_back(row);
      const RowMatrix& m = first[l].task_maps[h];
      const int64_t shown = std::min<int64_t>(m.rows(), 128);
      layer_maps.push_back(MatrixJson(m.topLeftCorner(shown, shown)));
      std::printf("  layer %zu head %zu %-8s prev %.3f dup %.3f ind %.3f entropy %.2f (%.2f) dist %.1f sink %.3f | "
                  "ablated acc %.4f (%+.4f)%s\n",
                  l, h, mean[l].mixer.c_str(), s.previous_token, s.duplicate_token, s.induction, s.entropy, s.entropy_ratio,
                  s.mean_distance, s.sink_mass, ablated.accuracy, ablated.accuracy - base.accuracy,
                  row["dead"].get<bool>() ? " dead" : "");
    }
    maps.push_back(layer_maps);
  }
  j["heads"] = heads;
  j["similarity"] = similarity;
  j["maps"] = maps;
  std::printf("  baseline test accuracy %.4f loss %.4f at T=%d\n", base.accuracy, base.loss, T);

  if (o.prune) {
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& p : GreedyPruning(model, setup))
      curve.push_back({{"fraction", p.fraction}, {"accuracy", p.accuracy}, {"loss", p.loss}, {"layer", p.removed.first},
                       {"head", p.removed.second}});
    j["pruning"] = curve;
  }

  Rng lens_rng = SplitRng(uint64_t(run.spec.train.seed) + 1, Split::kTest, T);
  Batch lens_sample = task->Sample(1, T, lens_rng, Split::kTest);
  nlohmann::json lens = nlohmann::json::array();
  for (const auto& r : LogitLens(model, lens_sample.tokens, lens_sample.mask))
    lens.push_back({{"layer", r.layer}, {"entropy", r.entropy}, {"kl_to_final", r.kl_to_final},
                    {"final_top1_rank", r.final_top1_rank}, {"top_tokens", r.top_tokens}});
  j["logit_lens"] = lens;

  std::ofstream(out + "/analysis.json") << j.dump(1) << "\n";
  for (const auto& [name, field] : kScores) {
    std::ofstream csv(out + "/" + name + ".csv");
    size_t width = 0;
    for (const auto& l : mean) width = std::max(width, l.heads.size());
    csv << "layer";
    for (size_t h = 0; h < width; ++h) csv << ",head" << h;
    csv << "\n";
    for (size_t l = 0; l < mean.size(); ++l) {  // layers with fewer heads leave their last cells empty
      csv << l;
      for (size_t h = 0; h < width; ++h) {
        csv << ",";
        if (h < mean[l].heads.size()) csv << mean[l].heads[h].*field;
      }
      csv << "\n";
    }
  }
  std::printf("wrote %s/analysis.json and one CSV per score\n", out.c_str());
  std::fflush(stdout);
  if (o.plots) {
    const std::string cmd = "/usr/bin/python3 " MIXLAB_SOURCE_DIR "/experiments/plot_analysis.py '" + out + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "mixlab analyze: figures not drawn; run `%s`\n", cmd.c_str());
    else std::printf("drew maps.png, scores.png, pruning.png, similarity.png, logit_lens.png\n");
  }
  return 0;
}

}  // namespace mixlab
