#include "experiments/run/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "experiments/run/memory_check.h"
#include "experiments/run/provenance.h"
#include "experiments/run/run_resume.h"
#include "models/adamw.h"
#include "models/checkpoint.h"
#include "models/file_io.h"
#include "models/json_text.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string FormatDuration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

// Name of the first parameter whose entries in `buffer` (values or gradients) hold NaN/Inf, or "".
std::string FirstNonFinite(const ParamStore& store, const float* buffer) {
  for (const auto& p : store.params())
    for (int64_t i = 0; i < p.spec.Numel(); ++i)
      if (!std::isfinite(buffer[p.offset + i])) return p.name;
  return "";
}

// Where the first activation of the last forward pass that holds NaN/Inf was produced, or "".
std::string FirstNonFiniteActivation(const LanguageModel& model, int64_t B, int64_t T) {
  const int64_t n = B * T * model.config().d_model;
  const auto finite = [n](const float* x) { return std::all_of(x, x + n, [](float v) { return std::isfinite(v); }); };
  if (!finite(model.residual(0))) return "the embeddings";
  for (int l = 0; l < model.n_layers(); ++l) {
    if (!finite(model.mixer_output(l))) return "the output of layers." + std::to_string(l) + ".mixer";
    if (!finite(model.residual(l + 1))) return "the output of layers." + std::to_string(l) + " (after its channel mixer)";
  }
  return "the logits";
}

// A resume that trained no step (the run had finished) keeps the figures of the training that happened: throughput,
// peak memory and load from the earlier results.json, so resuming a finished run changes nothing.
void KeepTrainingFigures(const std::string& path, TrainResult& result) {
  std::ifstream in(path);
  try {
    const TrainResult old = TrainResult::FromJson(nlohmann::json::parse(in));
    result.tokens_per_second = old.tokens_per_second;
    result.warm_tokens_per_second = old.warm_tokens_per_second;
    result.peak_rss_mb = old.peak_rss_mb;
    result.load_average = old.load_average;
  } catch (const nlohmann::json::exception&) {  // no readable earlier results: keep this process's figures
  }
}

// (name, values) of --eval-sweep "task.option=v1,v2"; refuses an option the task does not have.
std::pair<std::string, std::vector<std::string>> ParseSweep(const TrainOptions& o, const OptionMap& task_options) {
  const auto eq = o.eval_sweep.find('=');
  const std::string name = o.eval_sweep.substr(0, eq);
  const std::string prefix = o.task + ".";
  if (eq == std::string::npos || name.rfind(prefix, 0) != 0 || !task_options.count(name.substr(prefix.size())))
    throw UsageError("--eval-sweep '" + o.eval_sweep + "': expected " + prefix + "OPTION=v1,v2,... with an option of task '" +
                     o.task + "' (see `mixlab list`)");
  return {name.substr(prefix.size()), SplitList(o.eval_sweep.substr(eq + 1), ',', "--eval-sweep values")};
}

// Whether the task can generate sequences of length T (CheckLength does not throw).
bool CanGenerate(const Task& task, int T) {
  try {
    task.CheckLength(T);
    return true;
  } catch (const UsageError&) {
    return false;
  }
}

}  // namespace

nlohmann::json EvalJson(const std::vector<EvalResult>& evals) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& e : evals) {
    nlohmann::json by_position = nlohmann::json::array();
    for (int b = 0; b < kPositionBins; ++b)
      by_position.push_back(e.bin_scored[b] ? nlohmann::json(double(e.bin_correct[b]) / double(e.bin_scored[b])) : nlohmann::json());
    const auto [low, high] = WilsonInterval(e.correct, e.scored);
    j[std::to_string(e.length)] = {{"loss", e.loss},         {"accuracy", e.accuracy}, {"ci95", {low, high}},
                                   {"bits_per_token", e.loss / std::log(2.0)},
                                   {"scored", e.scored},     {"correct", e.correct},   {"sequences", e.sequences},
                                   {"majority_baseline", e.majority},
                                   {"accuracy_by_position", by_position}};
  }
  return j;
}

std::vector<EvalResult> EvalsFromJson(const nlohmann::json& j) {
  std::vector<EvalResult> out;
  for (const auto& [len, e] : j.items()) {
    EvalResult r;
    r.length = std::stoi(len);
    r.loss = e.at("loss");
    r.accuracy = e.at("accuracy");
    r.scored = e.value("scored", int64_t(0));
    r.correct = e.value("correct", std::llround(r.accuracy * double(r.scored)));
    r.sequences = e.value("sequences", int64_t(0));
    r.majority = e.value("majority_baseline", 0.0);
    out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const EvalResult& a, const EvalResult& b) { return a.length < b.length; });
  return out;
}

nlohmann::json TrainResult::ToJson() const {
  nlohmann::json sweep_json = nlohmann::json::object();
  for (const auto& [value, evals] : sweep) sweep_json[value] = EvalJson(evals);
  return {{"run_dir", run_dir},         {"steps_done", steps_done},       {"diverged", diverged},
          {"divergence", divergence},   {"train_seconds", train_seconds}, {"tokens_per_second", tokens_per_second},
          {"warm_tokens_per_second", warm_tokens_per_second},
          {"params", params},           {"steps_to_99", steps_to_99},     {"tokens_to_99", tokens_to_99},
          {"mean_train_loss", mean_train_loss}, {"resumed_from", resumed_from}, {"peak_rss_mb", peak_rss_mb},
          {"peak_rss_per_run", peak_rss_per_run}, {"load_average", load_average}, {"provenance", Provenance(threads)}, {"test", EvalJson(test)},
          {"validation", EvalJson(validation)}, {"sweep", sweep_json}};
}

TrainResult TrainResult::FromJson(const nlohmann::json& j) {
  TrainResult r;
  r.run_dir = j.at("run_dir");
  r.steps_done = j.at("steps_done");
  r.diverged = j.at("diverged");
  r.divergence = j.value("divergence", "");
  r.train_seconds = j.at("train_seconds");
  r.tokens_per_second = j.at("tokens_per_second");
  r.warm_tokens_per_second = j.value("warm_tokens_per_second", 0.0);
  r.params = j.at("params");
  r.steps_to_99 = j.at("steps_to_99");
  r.tokens_to_99 = j.at("tokens_to_99");
  r.mean_train_loss = j.at("mean_train_loss");
  r.resumed_from = j.value("resumed_from", 0);
  r.peak_rss_mb = j.value("peak_rss_mb", 0.0);
  r.peak_rss_per_run = j.value("peak_rss_per_run", true);
  r.load_average = j.value("load_average", -1.0);
  r.test = EvalsFromJson(j.at("test"));
  r.validation = EvalsFromJson(j.at("validation"));
  for (const auto& [value, evals] : j.at("sweep").items()) r.sweep.push_back({value, EvalsFromJson(evals)});
  return r;
}

void ValidateRun(const RunSpec& spec, const Task& task) {
  task.CheckTrainLength(spec.train.train_len);
  for (int T : spec.train.eval_lens) task.CheckLength(T);
  std::vector<int> lengths = spec.train.eval_lens;
  lengths.push_back(spec.train.train_len);
  for (int T : lengths) {
    if (spec.model.pos == "learned" && T > spec.model.max_len)
      throw UsageError("length " + std::to_string(T) + " exceeds --max-len " + std::to_string(spec.model.max_len) +
                       " of the learned positional embedding; raise --max-len or use another --pos");
  }
  if (!spec.train.eval_sweep.empty()) {
    const auto [option, values] = ParseSweep(spec.train, spec.task_options);
    for (const auto& value : values) {
      OptionMap options = spec.task_options;
      options[option] = value;
      const auto swept = MakeTask(spec.train.task, options);  // refuses a value out of range before any training
      if (std::none_of(spec.train.eval_lens.begin(), spec.train.eval_lens.end(), [&](int T) { return CanGenerate(*swept, T); }))
        throw UsageError("--eval-sweep " + spec.train.task + "." + option + "=" + value + " cannot be generated at any --eval-lens length; " +
                         "raise the evaluation lengths or drop that value");
    }
  }
}

TrainResult Train(RunSpec& spec, const TrainHooks& hooks) {
  const TrainOptions& o = spec.train;
  auto task = MakeTask(o.task, spec.task_options);
  ValidateRun(spec, *task);
  omp_set_num_threads(o.threads);

  TrainResult result;
  result.run_dir = o.out.empty() ? "runs/" + spec.DefaultRunName() : o.out;
  CheckMemory(spec);
  ResetPeakResidentMemory(&result.peak_rss_per_run);
  result.threads = o.threads;
  CreateDirectories(result.run_dir);
  const DirectoryLock lock(result.run_dir);
  const std::string ckpt = result.run_dir + "/model.safetensors";
  const std::string metrics_file = result.run_dir + "/metrics.jsonl";
  const nlohmann::json spec_json = spec.ToJson();
  LanguageModel model(spec.model);
  model.Initialize(uint64_t(o.seed));
  result.params = model.params().size();
  AdamWConfig ac;
  ac.lr = o.lr;
  ac.beta2 = o.beta2;
  ac.weight_decay = o.weight_decay;
  ac.clip = o.clip;
  ac.warmup = o.warmup;
  ac.total_steps = o.steps;
  ac.min_lr_ratio = o.min_lr_ratio;
  AdamW optimizer(model.params(), ac);
  Rng data = SplitRng(uint64_t(o.seed), Split::kTrain, o.train_len);
  double train_time = 0, loss_sum = 0, first_step_time = 0;
  int first_step = 0;
  bool have_checkpoint = false;  // a good checkpoint exists in the run directory (written or resumed from)
  std::vector<std::string> kept_metrics;
  if (hooks.resume && std::filesystem::exists(ckpt)) {
    // Bit-exact continuation: weights, AdamW moments, the step, the running loss, and the data stream replayed to that step.
    auto meta = ReadCheckpointMetadata(ckpt);
    if (!meta.count("run")) throw UsageError("cannot resume run '" + result.run_dir + "': its checkpoint holds no run config");
    first_step = ParseStep(meta, ckpt);
    CheckResumable(ParseJsonText(meta["run"], "checkpoint '" + ckpt + "' run config"), spec_json, first_step, result.run_dir);
    const std::string optimizer_file = OptimizerFile(result.run_dir, first_step);
    LoadCheckpointInto(ckpt, model);
    auto opt_meta = LoadOptimizerState(optimizer_file, optimizer.first_moment(), optimizer.second_moment());
    if (ParseStep(opt_meta, optimizer_file) != first_step)
      throw UsageError("cannot resume run '" + result.run_dir + "': '" + optimizer_file + "' is not from step " + std::to_string(first_step));
    train_time = ParseDouble(opt_meta, "train_seconds", optimizer_file);
    loss_sum = ParseDouble(opt_meta, "loss_sum", optimizer_file);
    for (int s = 0; s < first_step; ++s) task->Sample(o.batch, o.train_len, data, Split::kTrain);
    const MetricsSoFar so_far = ReadMetrics(metrics_file, first_step, o.train_len);
    kept_metrics = so_far.lines;
    result.steps_to_99 = so_far.steps_to_99;
    result.resumed_from = result.steps_done = first_step;
    have_checkpoint = true;
    RemoveStaleFiles(result.run_dir, first_step);
  } else if (hooks.resume && ReadMetrics(metrics_file, o.steps, o.train_len).has_validation) {
    throw UsageError("cannot resume run '" + result.run_dir + "': its metrics record checkpoints but '" + ckpt +
                     "' is missing; restore it, or drop --resume to start over");
  } else if (hooks.resume && std::filesystem::exists(metrics_file)) {
    std::cerr << "mixlab: " << result.run_dir << " has no checkpoint yet (stopped before its first); starting it from step 0\n";
  }
  WriteFileAtomic(result.run_dir + "/config.json", spec_json.dump(2) + "\n");
  if (first_step > 0) {  // the lines up to the checkpoint, replaced atomically: a crash here loses nothing
    std::string text;
    for (const auto& line : kept_metrics) text += line + "\n";
    WriteFileAtomic(metrics_file, text);
  }
  AppendFile metrics(metrics_file, first_step == 0);

  const bool tty = !hooks.quiet && isatty(fileno(stderr));
  const auto start = Clock::now();
  double window_loss = 0;
  int window = 0;
  // The checkpoint pair: optimizer-STEP.safetensors first, then model.safetensors (whose step names the optimizer
  // file that belongs to it), then the older optimizer files are removed. Each write is atomic, so a crash at any
  // instant leaves a model checkpoint and its own optimizer state.
  auto save = [&](int step) {
    SaveOptimizerState(OptimizerFile(result.run_dir, step), optimizer.first_moment(), optimizer.second_moment(),
                       {{"step", std::to_string(step)}, {"train_seconds", ExactDouble(train_time)}, {"loss_sum", ExactDouble(loss_sum)}});
    if (hooks.between_checkpoint_files) hooks.between_checkpoint_files();
    SaveCheckpoint(ckpt, model, {{"run", spec_json.dump()}, {"step", std::to_string(step)}});
    have_checkpoint = true;
    RemoveStaleFiles(result.run_dir, step);
  };
  auto validate = [&](int step, bool record) {
    std::vector<EvalResult> evals;
    for (int T : o.eval_lens)
      evals.push_back(Evaluate(model, *task, T, o.val_answers, EvalBatchSize(o.batch, o.train_len, T), uint64_t(o.seed),
                               Split::kValidation));
    result.validation = evals;
    if (record) metrics.WriteLine(nlohmann::json{{"step", step}, {"validation", EvalJson(evals)}}.dump());
    for (const auto& e : evals)
      if (e.length == o.train_len && e.accuracy >= 0.99 && result.steps_to_99 < 0) result.steps_to_99 = step;
    return evals;
  };

  auto snapshot = [&](int step) {  // light: weights only, for analysis over training
    char name[64];
    std::snprintf(name, sizeof name, "/snapshots/step_%08d.safetensors", step);
    CreateDirectories(result.run_dir + "/snapshots");
    SaveCheckpoint(result.run_dir + name, model, {{"run", spec_json.dump()}, {"step", std::to_string(step)}});
  };
  if (o.snapshot_every > 0 && first_step == 0) snapshot(0);

  const double train_time_before = train_time;  // a resumed run's earlier seconds
  for (int step = first_step; step < o.steps; ++step) {
    Batch batch = task->Sample(o.batch, o.train_len, data, Split::kTrain);
    const auto t0 = Clock::now();
    model.params().ZeroGrad();
    model.Forward(batch.tokens.data(), batch.B, batch.T, ForwardMode{true, uint64_t(o.seed) * 7919ULL + step, step});
    const float loss = model.Loss(batch.targets.data(), batch.mask.data());
    std::string bad;
    float grad_norm = 0;
    if (!std::isfinite(loss)) {
      const std::string tensor = FirstNonFinite(model.params(), model.params().values());
      bad = "non-finite loss" + (tensor.empty() ? " (all parameters finite; first non-finite activation: " +
                                                      FirstNonFiniteActivation(model, batch.B, batch.T) + ")"
                                                : " (parameter " + tensor + " is non-finite)");
    }
    if (bad.empty()) {
      model.Backward();
      // The norm is finite exactly when every gradient is; only then is the per-tensor scan skipped.
      grad_norm = GradientNorm(model.params().grads(), model.params().size());
      if (!std::isfinite(grad_norm))
        bad = "non-finite gradient in " + FirstNonFinite(model.params(), model.params().grads());
    }
    if (!bad.empty()) {
      result.diverged = true;
      result.divergence = "step " + std::to_string(step) + ": " + bad;
      metrics.WriteLine(nlohmann::json{{"step", step}, {"diverged", result.divergence}}.dump());
      if (!hooks.quiet)
        std::cerr << (tty ? "\n" : "") << hooks.progress_prefix << " stopped: " << result.divergence
                  << (have_checkpoint ? "; last good checkpoint kept at " + ckpt : "; no checkpoint was written before it") << "\n";
      break;
    }
    optimizer.Step(step, grad_norm);
    const auto t1 = Clock::now();
    if (hooks.after_step) hooks.after_step(model, step);
    train_time += Seconds(t0, t1);
    if (step == first_step) first_step_time = Seconds(t0, t1);
    result.steps_done = step + 1;
    window_loss += loss;
    loss_sum += loss;
    ++window;
    const bool last = step + 1 == o.steps;
    if ((step + 1) % o.log_every == 0 || last) {
      const double tok_s = double(result.steps_done) * o.batch * o.train_len / std::max(train_time, 1e-9);
      nlohmann::json line{{"step", step + 1},         {"loss", window_loss / window}, {"lr", optimizer.LearningRate(step)},
                          {"grad_norm", grad_norm}, {"tokens_per_s", tok_s},        {"aux_loss", model.last_aux_loss()}};
      for (int l = 0; l < model.n_layers(); ++l)  // e.g. MoE expert load, router entropy, dropped tokens
        for (const auto& [mixer, slot] : {std::pair<Mixer*, const char*>{&model.mixer(l), "mixer"}, {&model.channel(l), "channel"}})
          if (auto stats = mixer->Stats(); !stats.empty())
            line["stats"]["layers." + std::to_string(l) + "." + slot] = stats;
      metrics.WriteLine(line.dump());
      if (!hooks.quiet) {
        const double elapsed = Seconds(start, t1);
        const double eta = elapsed / (result.steps_done - first_step) * (o.steps - result.steps_done);
        char line[256];
        const std::string experiment =
            hooks.later_runs_seconds >= 0 ? " (experiment " + FormatDuration(eta + hooks.later_runs_seconds) + ")" : "";
        std::snprintf(line, sizeof line, "%s step %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s%s", hooks.progress_prefix.c_str(),
                      step + 1, o.steps, window_loss / window, optimizer.LearningRate(step), tok_s, FormatDuration(eta).c_str(),
                      experiment.c_str());
        std::cerr << (tty ? "\r\033[K" : "") << line << (tty ? "" : "\n") << std::flush;
      }
      window_loss = 0;
      window = 0;
    }
    if (o.snapshot_every > 0 && (step + 1) % o.snapshot_every == 0) snapshot(step + 1);
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last) {
      auto evals = validate(step + 1, true);
      bool finite = true;
      for (const auto& e : evals) finite &= std::isfinite(e.loss);
      if (finite) save(step + 1);  // a checkpoint is only ever replaced by a good one
      if (!hooks.quiet && !tty) {
        std::string s = hooks.progress_prefix + " validation @" + std::to_string(step + 1) + ":";
        for (const auto& e : evals) s += " T=" + std::to_string(e.length) + " acc " + std::to_string(e.accuracy).substr(0, 5);
        std::cerr << s << "\n";
      }
    }
  }
  if (tty) std::cerr << "\n";
  result.train_seconds = train_time;
  result.load_average = LoadAverage();
  result.tokens_per_second = double(result.steps_done) * o.batch * o.train_len / std::max(train_time, 1e-9);
  if (const int warm_steps = result.steps_done - first_step - 1; warm_steps > 0)
    result.warm_tokens_per_second = double(warm_steps) * o.batch * o.train_len /
                                    std::max(train_time - train_time_before - first_step_time, 1e-9);
  result.mean_train_loss = loss_sum / std::max(1, result.steps_done);
  if (result.steps_to_99 >= 0) result.tokens_to_99 = int64_t(result.steps_to_99) * o.batch * o.train_len;
  auto test = [&](const Task& t) {
    std::vector<EvalResult> evals;
    for (int T : o.eval_lens)
      if (CanGenerate(t, T))  // a swept value may not fit every length (MQAR's pairs); its row skips that length
        evals.push_back(Evaluate(model, t, T, o.test_answers, EvalBatchSize(o.batch, o.train_len, T), uint64_t(o.seed), Split::kTest));
    return evals;
  };
  if (!result.diverged) {
    if (result.validation.empty()) validate(result.steps_done, false);  // a finished run resumed: already in the metrics
    if (!hooks.quiet)
      std::cerr << hooks.progress_prefix << " testing at " << o.eval_lens.size() << " length(s), " << o.test_answers
                << " answers each\n";
    result.test = test(*task);
    if (!o.eval_sweep.empty()) {
      const auto [option, values] = ParseSweep(o, spec.task_options);
      for (const auto& value : values) {
        OptionMap options = spec.task_options;
        options[option] = value;
        result.sweep.push_back({option + "=" + value, test(*MakeTask(o.task, options))});
      }
    }
  }
  result.peak_rss_mb = PeakResidentMemoryMb();
  if (result.steps_done == first_step && first_step > 0) KeepTrainingFigures(result.run_dir + "/results.json", result);
  WriteFileAtomic(result.run_dir + "/results.json", result.ToJson().dump(2) + "\n");
  return result;
}

}  // namespace mixlab
