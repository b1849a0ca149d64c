// mixlab analyze: what the heads (or channel groups) of a trained model do, through every mixer's mixing matrix.
// Writes analysis.json, one CSV per head score (layers x heads), and PNG figures drawn by plot_analysis.py.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "experiments/analysis/ablation.h"
#include "experiments/analysis/analysis.h"
#include "experiments/analysis/phase_change.h"
#include "experiments/analysis/subprocess.h"
#include "experiments/cli/commands.h"
#include "experiments/cli/flags.h"
#include "experiments/cli/run_builder.h"
#include "experiments/run/memory_check.h"
#include "models/file_io.h"

namespace mixlab {

namespace {

struct AnalyzeOptions : Options {
  std::string checkpoint, over_training, out;
  int length = 0, samples = 16, answers = 0, batch = 0, threads = 2;
  std::string ablation = "zero";
  bool prune = true, plots = true;
  bool quiet = false;  // no per-head lines (compare); not a flag
  void Visit(OptionVisitor& v) override {
    v.String("checkpoint", checkpoint, "RUN/model.safetensors (also accepted as the first argument)");
    v.String("over-training", over_training,
             "RUN directory trained with --snapshot-every: head scores, entropy and in-context score of every snapshot "
             "against the step");
    v.String("out", out, "output directory; empty = RUN/analysis (RUN/analysis/over_training with --over-training)");
    v.Int("length", length, "sequence length of the probes; 0 = the run's training length", 0, 1 << 16);
    v.Int("samples", samples, "task sequences (and repeated random sequences) the head scores average over", 1,
          1 << 16);
    v.Int("answers", answers,
          "scored answers per evaluation (baseline, each ablation, each snapshot); 0 = the run's --test-answers, the "
          "set its final test scored",
          0, 1 << 24);
    v.Int("batch", batch, "sequences per evaluation batch; 0 = the run's --batch", 0, 1 << 20);
    v.Choice("ablation", ablation, "how a removed head is replaced", {"zero", "mean"});
    v.Bool("prune", prune, "draw the greedy pruning curve (quadratic in the number of heads)");
    v.Bool("plots", plots, "draw PNG figures with python3-matplotlib");
    v.Int("threads", threads, "OpenMP threads", 1, 1024);
  }
};

// Heads whose maps are near-uniform or whose output is near zero.
constexpr double kDeadEntropyRatio = 0.97, kDeadOutputShare = 0.02, kDuplicateSimilarity = 0.95;

nlohmann::json MatrixJson(const RowMatrix& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t t = 0; t < m.rows(); ++t)
    rows.push_back(std::vector<float>(m.row(t).data(), m.row(t).data() + m.cols()));
  return rows;
}

// One line on stderr per phase (a long --length takes minutes); compare's analyses stay quiet.
void Progress(const AnalyzeOptions& o, const std::string& phase) {
  if (!o.quiet) std::fprintf(stderr, "mixlab analyze: %s\n", phase.c_str());
}

// The probe length: --length, else the run's training length; the task must generate it.
int ProbeLength(const AnalyzeOptions& o, const RunSpec& spec, const Task& task) {
  const int T = o.length ? o.length : spec.train.train_len;
  task.CheckLength(T);
  if (T < 4) throw UsageError("--length " + std::to_string(T) + " is too short; the induction probe needs at least 4");
  return T;
}

void DrawFigures(const AnalyzeOptions& o, const std::string& out, bool over_training) {
  std::fflush(stdout);
  if (!o.plots) return;
  std::vector<std::string> cmd = PlotCommand("plot_analysis.py", out);
  if (over_training) cmd.push_back("--over-training");
  if (RunProgram(cmd) != 0)
    std::fprintf(stderr, "mixlab analyze: figures not drawn; run `%s`\n", CommandLine(cmd).c_str());
  else if (!o.quiet) std::printf("drew the figures into %s\n", out.c_str());
}

// The ablation settings of a checkpoint's analysis: the run's test set, batch and seed, and the heads each layer's
// mixer lets analysis remove (0 where it declares no head output projection).
AblationSetup MakeAblationSetup(const AnalyzeOptions& o, const LoadedRun& run, const Task& task, int T) {
  AblationSetup setup;
  setup.task = &task;
  setup.length = T;
  setup.answers = o.answers ? o.answers : run.spec.train.test_answers;
  setup.batch = o.batch ? o.batch : run.spec.train.batch;
  setup.seed = uint64_t(run.spec.train.seed);
  setup.mode = o.ablation == "mean" ? AblationMode::kMean : AblationMode::kZero;
  setup.heads_per_layer = AblatableHeads(*run.model);
  return setup;
}

// One line per layer whose heads analysis cannot remove: what was skipped and why.
std::vector<std::string> SkippedAnalyses(LanguageModel& model, const HeadSurvey& survey, const AblationSetup& setup) {
  std::vector<std::string> skipped;
  for (int l = 0; l < int(survey.mean.size()); ++l) {
    if (survey.mean[l].empty()) continue;
    const int maps = int(survey.mean[l].size());
    if (setup.heads_per_layer[l] == 0)
      skipped.push_back(
          "layer " + std::to_string(l) + " (" + model.mixer(l).Name() +
          "): no per-head output projection declared, so ablation, output shares and pruning skip its heads");
    else if (setup.heads_per_layer[l] != maps)
      throw std::logic_error("layer " + std::to_string(l) + " (" + model.mixer(l).Name() + ") exports " +
                             std::to_string(maps) + " mixing maps but declares " +
                             std::to_string(setup.heads_per_layer[l]) + " head groups");
  }
  return skipped;
}

void WriteExpertRoles(const AnalyzeOptions& o, const HeadSurvey& survey, const std::string& out, nlohmann::json& j) {
  if (survey.expert_roles.empty()) return;
  std::ostringstream roles_csv;
  roles_csv << "layer,role,expert,fraction\n";
  for (const auto& [layer, roles] : survey.expert_roles)
    for (const auto& [role, row] : roles) {
      j["expert_roles"][std::to_string(layer)][role] = row;
      std::string shares;
      for (size_t e = 0; e < row.size(); ++e) {
        roles_csv << layer << "," << role << "," << e << "," << row[e] << "\n";
        shares += " " + std::to_string(row[e]).substr(0, 5);
      }
      if (!o.quiet) std::printf("  moe layer %d: %-12s tokens per expert%s\n", layer, role.c_str(), shares.c_str());
    }
  WriteFileAtomic(out + "/moe_roles.csv", roles_csv.str());
}

// One row per head: its scores, what removing it costs (null where the layer cannot be ablated), whether it looks
// dead or duplicated; and the first task sample's map of each head (top-left 128 x 128) per layer.
void HeadRows(const AnalyzeOptions& o, LanguageModel& model, const HeadSurvey& survey, const AblationSetup& setup,
              const EvalResult& base, nlohmann::json& j) {
  const auto shares = HeadOutputShares(model, setup);
  nlohmann::json heads = nlohmann::json::array(), maps = nlohmann::json::array();
  int flat = 0;
  for (size_t l = 0; l < survey.mean.size(); ++l) {
    nlohmann::json layer_maps = nlohmann::json::array();
    const bool ablatable = setup.heads_per_layer[l] > 0;
    for (size_t h = 0; h < survey.mean[l].size(); ++h, ++flat) {
      const HeadScores& s = survey.mean[l][h];
      const std::string& mixer = survey.first[l].mixer;
      nlohmann::json row = {{"layer", l}, {"head", h}, {"mixer", mixer}};
      for (const auto& [name, field] : ScoreFields()) row[name] = s.*field;
      std::string ablation_text = " | not ablatable";
      if (ablatable) {
        const EvalResult ablated = EvaluateAblated(model, setup, {{int(l), int(h)}});
        row["ablated_accuracy"] = ablated.accuracy;
        row["accuracy_change"] = ablated.accuracy - base.accuracy;
        row["loss_change"] = ablated.loss - base.loss;
        row["output_share"] = shares[l][h];
        row["helps_when_removed"] =
            ablated.accuracy > base.accuracy || (ablated.accuracy == base.accuracy && ablated.loss < base.loss);
        char text[64];
        std::snprintf(text, sizeof text, " | ablated acc %.4f (%+.4f)", ablated.accuracy,
                      ablated.accuracy - base.accuracy);
        ablation_text = text;
      } else {
        for (const char* key :
             {"ablated_accuracy", "accuracy_change", "loss_change", "output_share", "helps_when_removed"})
          row[key] = nullptr;
      }
      row["dead"] = s.entropy_ratio > kDeadEntropyRatio || (ablatable && shares[l][h] < kDeadOutputShare);
      nlohmann::json duplicates = nlohmann::json::array();
      for (int other = 0; other < int(survey.similarity.size()); ++other)
        if (other != flat && survey.similarity[flat][other] > kDuplicateSimilarity) duplicates.push_back(other);
      row["duplicates"] = duplicates;
      heads.push_back(row);
      const RowMatrix& m = survey.first[l].task_maps[h];
      const int64_t shown = std::min<int64_t>(m.rows(), 128);
      layer_maps.push_back(MatrixJson(m.topLeftCorner(shown, shown)));
      if (!o.quiet)
        std::printf(
            "  layer %zu head %zu %-8s prev %.3f dup %.3f ind %.3f answer-ind %.3f entropy %.2f (%.2f) dist %.1f sink "
            "%.3f%s%s\n",
            l, h, mixer.c_str(), s.previous_token, s.duplicate_token, s.induction, s.answer_induction, s.entropy,
            s.entropy_ratio, s.mean_distance, s.sink_mass, ablation_text.c_str(),
            row["dead"].get<bool>() ? " dead" : "");
    }
    maps.push_back(layer_maps);
  }
  j["heads"] = heads;
  j["maps"] = maps;
}

// Standard base64 of bytes.
std::string Base64(const std::vector<uint8_t>& bytes) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = uint32_t(bytes[i]) << 16 | (i + 1 < bytes.size() ? uint32_t(bytes[i + 1]) << 8 : 0) |
                       (i + 2 < bytes.size() ? uint32_t(bytes[i + 2]) : 0);
    out += digits[n >> 18 & 63];
    out += digits[n >> 12 & 63];
    out += i + 1 < bytes.size() ? digits[n >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? digits[n & 63] : '=';
  }
  return out;
}

// samples.json: the first task samples' tokens and every head's normalised map on them, each map T x T bytes
// (round(255 x weight), row-major) in base64: what analysis.html and report.html draw over the tokens. Up to
// kShownSamples (4) samples at T <= 128 and fewer beyond (one at T >= 256), so a page stays a few MB per run even at T
// 512.
void WriteShownSamples(const HeadSurvey& survey, int T, const std::string& out) {
  const size_t shown =
      std::max<size_t>(1, std::min<size_t>(survey.shown.size(), kShownSamples * 128 * 128 / (int64_t(T) * T)));
  nlohmann::json samples = nlohmann::json::array();
  for (size_t i = 0; i < shown && i < survey.shown.size(); ++i) {
    const ShownSample& s = survey.shown[i];
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& layer : s.maps) {
      nlohmann::json heads = nlohmann::json::array();
      for (const RowMatrix& m : layer) {
        std::vector<uint8_t> bytes(size_t(m.rows()) * m.cols());
        for (int64_t r = 0; r < m.rows(); ++r)
          for (int64_t c = 0; c < m.cols(); ++c)
            bytes[size_t(r * m.cols() + c)] = uint8_t(std::lround(std::clamp(m(r, c), 0.0f, 1.0f) * 255.0f));
        heads.push_back(Base64(bytes));
      }
      layers.push_back(heads);
    }
    samples.push_back({{"tokens", s.tokens}, {"mask", s.mask}, {"maps", layers}});
  }
  WriteFileAtomic(out + "/samples.json", nlohmann::json{{"length", T}, {"samples", samples}}.dump() + "\n");
}

nlohmann::json LogitLensJson(LanguageModel& model, const RunSpec& spec, const Task& task, int T) {
  Rng lens_rng = SplitRng(uint64_t(spec.train.seed) + 1, Split::kTest, T);
  Batch lens_sample = task.Sample(1, T, lens_rng, Split::kTest);
  nlohmann::json lens = nlohmann::json::array();
  for (const auto& r : LogitLens(model, lens_sample.tokens, lens_sample.mask))
    lens.push_back({{"layer", r.layer},
                    {"entropy", r.entropy},
                    {"kl_to_final", r.kl_to_final},
                    {"final_top1_rank", r.final_top1_rank},
                    {"top_tokens", r.top_tokens}});
  return lens;
}

// One CSV per head score: layers x heads (layers with fewer heads leave their last cells empty).
void WriteScoreCsvs(const HeadSurvey& survey, const std::string& out) {
  size_t width = 0;
  for (const auto& l : survey.mean) width = std::max(width, l.size());
  for (const auto& [name, field] : ScoreFields()) {
    std::ostringstream csv;
    csv << "layer";
    for (size_t h = 0; h < width; ++h) csv << ",head" << h;
    csv << "\n";
    for (size_t l = 0; l < survey.mean.size(); ++l) {
      csv << l;
      for (size_t h = 0; h < width; ++h) {
        csv << ",";
        if (h < survey.mean[l].size()) csv << survey.mean[l][h].*field;
      }
      csv << "\n";
    }
    WriteFileAtomic(out + "/" + name + ".csv", csv.str());
  }
}

int AnalyzeCheckpoint(const AnalyzeOptions& o) {
  LoadedRun run = LoadRun(o.checkpoint);
  LanguageModel& model = *run.model;
  auto task = MakeTask(run.spec.train.task, run.spec.task_options);
  const int T = ProbeLength(o, run.spec, *task);
  CheckMixingMapMemory(run.spec.model, T);
  const std::string out =
      o.out.empty() ? std::filesystem::path(o.checkpoint).parent_path().append("analysis").string() : o.out;
  CreateDirectories(out);
  if (!o.quiet)
    std::printf("analyze %s (step %s): %s on %s, T=%d\n", o.checkpoint.c_str(), run.step.c_str(),
                run.spec.model.Summary().c_str(), run.spec.train.task.c_str(), T);

  Progress(o, "surveying the heads' mixing maps at T=" + std::to_string(T) + " on " + std::to_string(o.samples) +
                  " samples");
  const HeadSurvey survey = SurveyHeads(model, *task, T, o.samples, uint64_t(run.spec.train.seed));
  const AblationSetup setup = MakeAblationSetup(o, run, *task, T);
  const std::vector<std::string> skipped = SkippedAnalyses(model, survey, setup);
  for (const auto& line : skipped) std::fprintf(stderr, "mixlab analyze: %s\n", line.c_str());
  Progress(o, "ablating each head");
  const EvalResult base = Evaluate(model, *task, T, setup.answers, setup.batch, setup.seed, Split::kTest);

  nlohmann::json j;
  j["checkpoint"] = o.checkpoint;
  j["step"] = run.step;
  j["task"] = run.spec.train.task;
  j["model"] = run.spec.model.Summary();
  j["length"] = T;
  j["samples"] = o.samples;
  j["ablation"] = o.ablation;
  j["skipped"] = skipped;
  j["baseline"] = {{"accuracy", base.accuracy}, {"loss", base.loss}};
  j["channel_stats"] = survey.channel_stats;
  j["in_context_score"] = survey.in_context;
  j["text_in_context_score"] = survey.text_in_context;
  WriteExpertRoles(o, survey, out, j);
  HeadRows(o, model, survey, setup, base, j);
  j["similarity"] = survey.similarity;
  if (!o.quiet) std::printf("  baseline test accuracy %.4f loss %.4f at T=%d\n", base.accuracy, base.loss, T);

  if (o.prune) {
    nlohmann::json curve = nlohmann::json::array();
    for (const auto& p : GreedyPruning(model, setup))
      curve.push_back({{"fraction", p.fraction},
                       {"accuracy", p.accuracy},
                       {"loss", p.loss},
                       {"layer", p.removed.first},
                       {"head", p.removed.second}});
    j["pruning"] = curve;
  }
  Progress(o, "reading the logit lens");
  j["logit_lens"] = LogitLensJson(model, run.spec, *task, T);

  WriteFileAtomic(out + "/analysis.json", j.dump(1) + "\n");
  WriteShownSamples(survey, T, out);
  WriteScoreCsvs(survey, out);
  if (!o.quiet) std::printf("wrote %s/analysis.json and one CSV per score\n", out.c_str());
  std::fflush(stdout);
  if (const std::string why = WriteHtmlPage("analysis", out); !why.empty())
    std::fprintf(stderr, "mixlab analyze: %s\n", why.c_str());
  else if (!o.quiet) std::printf("wrote %s/analysis.html (interactive)\n", out.c_str());
  DrawFigures(o, out, false);
  return 0;
}

// Training dynamics: every snapshot of a run through the same probes, against the step.
int AnalyzeOverTraining(const AnalyzeOptions& o) {
  namespace fs = std::filesystem;
  const fs::path snapshots = fs::path(o.over_training) / "snapshots";
  if (!fs::is_directory(snapshots))
    throw UsageError("--over-training '" + o.over_training +
                     "' has no snapshots/ directory (train it with --snapshot-every N)");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(snapshots))
    if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());  // step_%08d: lexicographic is numeric
  if (files.size() < 2)
    throw UsageError("--over-training '" + o.over_training + "' needs at least 2 snapshots, found " +
                     std::to_string(files.size()));
  const std::string out = o.out.empty() ? (fs::path(o.over_training) / "analysis" / "over_training").string() : o.out;
  CreateDirectories(out);

  LoadedRun first = LoadRun(files.front());
  auto task = MakeTask(first.spec.train.task, first.spec.task_options);
  const int T = ProbeLength(o, first.spec, *task);
  const uint64_t seed = uint64_t(first.spec.train.seed);
  const int batch = o.batch ? o.batch : first.spec.train.batch;
  const std::string config = first.spec.model.Summary();
  std::printf("over training: %zu snapshots of %s on %s, T=%d\n", files.size(), config.c_str(),
              first.spec.train.task.c_str(), T);

  nlohmann::json points = nlohmann::json::array();
  std::ostringstream csv;
  csv << "step,accuracy,loss,in_context_score,text_in_context_score,max_induction,max_answer_induction,mean_entropy_"
         "ratio\n";
  for (const auto& file : files) {
    LoadedRun run = LoadRun(file);
    if (run.spec.model.Summary() != config || run.spec.train.task != first.spec.train.task)
      throw UsageError("snapshot '" + file + "' comes from another config (" + run.spec.model.Summary() + ")");
    const HeadSurvey survey = SurveyHeads(*run.model, *task, T, o.samples, seed);
    const EvalResult val = Evaluate(*run.model, *task, T, o.answers ? o.answers : run.spec.train.val_answers, batch,
                                    seed, Split::kValidation);
    nlohmann::json heads = nlohmann::json::array();
    double max_induction = 0, max_answer = 0, entropy_ratio = 0;
    int n_heads = 0;
    for (size_t l = 0; l < survey.mean.size(); ++l)
      for (size_t h = 0; h < survey.mean[l].size(); ++h, ++n_heads) {
        nlohmann::json row = {{"layer", l}, {"head", h}};
        for (const auto& [name, field] : ScoreFields()) row[name] = survey.mean[l][h].*field;
        heads.push_back(row);
        max_induction = std::max(max_induction, survey.mean[l][h].induction);
        max_answer = std::max(max_answer, survey.mean[l][h].answer_induction);
        entropy_ratio += survey.mean[l][h].entropy_ratio;
      }
    entropy_ratio /= std::max(n_heads, 1);
    const int step = std::stoi(run.step);
    points.push_back({{"step", step},
                      {"accuracy", val.accuracy},
                      {"loss", val.loss},
                      {"in_context_score", survey.in_context},
                      {"text_in_context_score", survey.text_in_context},
                      {"max_induction", max_induction},
                      {"max_answer_induction", max_answer},
                      {"mean_entropy_ratio", entropy_ratio},
                      {"heads", heads}});
    csv << step << "," << val.accuracy << "," << val.loss << "," << survey.in_context << "," << survey.text_in_context
        << "," << max_induction << "," << max_answer << "," << entropy_ratio << "\n";
    std::printf(
        "  step %6d  val acc %.4f loss %.4f  in-context %+.3f (text %+.3f)  max induction %.3f  max answer-induction "
        "%.3f  entropy ratio %.3f\n",
        step, val.accuracy, val.loss, survey.in_context, survey.text_in_context, max_induction, max_answer,
        entropy_ratio);
  }
  // Phase changes: is the rise of each curve abrupt against the other intervals' changes, or gradual / noise
  // (experiments/analysis/phase_change.h)? The in-context score falls as in-context learning appears, so its drop is
  // tested.
  auto curve = [&](const char* key, double sign) {
    std::vector<double> values;
    for (const auto& p : points) values.push_back(sign * p[key].get<double>());
    return DetectPhaseChange(values);
  };
  auto phase_json = [&](const PhaseChange& p) {
    return nlohmann::json{{"detected", p.detected},
                          {"from_step", points[p.from_index]["step"]},
                          {"to_step", points[p.to_index]["step"]},
                          {"rise", p.rise},
                          {"share", p.share},
                          {"z", p.z},
                          {"spread", p.spread},
                          {"reason", p.reason}};
  };
  const PhaseChange in_context = curve("in_context_score", -1.0);
  nlohmann::json phase_changes = {{"in_context_drop", phase_json(in_context)},
                                  {"text_in_context_drop", phase_json(curve("text_in_context_score", -1.0))}};
  for (const char* key : {"max_induction", "max_answer_induction", "accuracy"}) {
    const PhaseChange p = curve(key, 1.0);
    phase_changes[key] = phase_json(p);
    phase_changes[key]["coincides_with_in_context_drop"] =
        p.detected && in_context.detected && WindowsOverlap(p, in_context);
  }
  nlohmann::json train_loss = nlohmann::json::array();
  std::ifstream metrics(fs::path(o.over_training) / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto m = nlohmann::json::parse(line, nullptr, false);
    if (!m.is_discarded() && m.contains("loss")) train_loss.push_back({m["step"], m["loss"]});
  }
  nlohmann::json j = {
      {"run", o.over_training}, {"model", config},          {"task", first.spec.train.task}, {"length", T},
      {"snapshots", points},    {"train_loss", train_loss}, {"phase_changes", phase_changes}};
  WriteFileAtomic(out + "/over_training.csv", csv.str());
  WriteFileAtomic(out + "/over_training.json", j.dump(1) + "\n");
  for (const auto& [key, change] : phase_changes.items())
    std::printf("%-21s %s between steps %d and %d (rise %+.3f, %.0f%% of the range, %.1f spreads): %s\n", key.c_str(),
                change["detected"].get<bool>() ? "PHASE CHANGE" : "no phase change", change["from_step"].get<int>(),
                change["to_step"].get<int>(), change["rise"].get<double>(), 100 * change["share"].get<double>(),
                change["z"].get<double>(), change["reason"].get<std::string>().c_str());
  std::printf("wrote %s/over_training.json and over_training.csv\n", out.c_str());
  DrawFigures(o, out, true);
  return 0;
}

}  // namespace

void AnalyzeRun(const std::string& checkpoint, bool plots, int threads) {
  AnalyzeOptions o;
  o.checkpoint = checkpoint;
  o.plots = plots;
  o.threads = threads;
  o.quiet = true;
  AnalyzeCheckpoint(o);
}

void AnalyzeRunOverTraining(const std::string& run_dir, bool plots, int threads) {
  AnalyzeOptions o;
  o.over_training = run_dir;
  o.plots = plots;
  o.threads = threads;
  AnalyzeOverTraining(o);
}

int AnalyzeCommand(int argc, char** argv) {
  AnalyzeOptions o;
  if (!ParseCheckpointCommand("analyze",
                              "Head scores, ablations, pruning, redundancy and logit lens of a checkpoint; or a run's "
                              "snapshots over training.",
                              "analysis", argc, argv, o, o.checkpoint, &o.threads))
    return 0;
  if (!o.over_training.empty()) {
    if (!o.checkpoint.empty()) throw UsageError("give either a checkpoint or --over-training RUN, not both");
    return AnalyzeOverTraining(o);
  }
  return AnalyzeCheckpoint(o);
}

}  // namespace mixlab
