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

#include "experiments/run/interrupt.h"
#include "experiments/run/memory_check.h"
#include "experiments/run/provenance.h"
#include "experiments/run/run_resume.h"
#include "mixers/ops/ops.h"
#include "mixers/ops/usage_error.h"
#include "models/adamw.h"
#include "models/checkpoint.h"
#include "models/file_io.h"
#include "models/json_text.h"

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
    if (!finite(model.residual(l + 1)))
      return "the output of layers." + std::to_string(l) + " (after its channel mixer)";
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
    throw UsageError("--eval-sweep '" + o.eval_sweep + "': expected " + prefix +
                     "OPTION=v1,v2,... with an option of task '" + o.task + "' (see `mixlab list`)");
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
      by_position.push_back(e.bin_scored[b] ? nlohmann::json(double(e.bin_correct[b]) / double(e.bin_scored[b]))
                                            : nlohmann::json());
    const auto [low, high] = WilsonInterval(e.correct, e.scored);
    j[std::to_string(e.length)] = {{"loss", e.loss},
                                   {"accuracy", e.accuracy},
                                   {"ci95", {low, high}},
                                   {"bits_per_token", e.loss / std::log(2.0)},
                                   {"scored", e.scored},
                                   {"correct", e.correct},
                                   {"sequences", e.sequences},
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
  return {{"run_dir", run_dir},
          {"steps_done", steps_done},
          {"diverged", diverged},
          {"divergence", divergence},
          {"train_seconds", train_seconds},
          {"tokens_per_second", tokens_per_second},
          {"warm_tokens_per_second", warm_tokens_per_second},
          {"params", params},
          {"steps_to_99", steps_to_99},
          {"tokens_to_99", tokens_to_99},
          {"mean_train_loss", mean_train_loss},
          {"resumed_from", resumed_from},
          {"peak_rss_mb", peak_rss_mb},
          {"peak_rss_per_run", peak_rss_per_run},
          {"load_average", load_average},
          {"ranks", ranks},
          {"provenance", Provenance(threads)},
          {"test", EvalJson(test)},
          {"validation", EvalJson(validation)},
          {"sweep", sweep_json}};
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
  r.ranks = j.value("ranks", 1);
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
      if (std::none_of(spec.train.eval_lens.begin(), spec.train.eval_lens.end(),
                       [&](int T) { return CanGenerate(*swept, T); }))
        throw UsageError("--eval-sweep " + spec.train.task + "." + option + "=" + value +
                         " cannot be generated at any --eval-lens length; " +
                         "raise the evaluation lengths or drop that value");
    }
  }
}

namespace {

// One training run, one concern per method: Resume (weights, moments, data stream and metrics from the last
// checkpoint), Step (forward, loss, finiteness, backward, AdamW), Log, Validate, Save (the checkpoint pair), Snapshot,
// and Finish (figures, test, sweep, results.json).
//
// Data-parallel over R ranks with K = --grad-accum: every rank draws the step's whole batch from the same seeded stream
// and trains on its shard, the micro-batches rank * K .. rank * K + K - 1 of the R * K equal ones. Each micro-batch's
// gradient is computed from zero and added to the previous ones in order; the ranks' sums are added in rank order
// (Communicator::SumInRankOrder). So R ranks and R micro-batches in one process give the same bits. Everything after
// the reduction (finiteness, clipping, AdamW, schedule) is then identical on every rank; rank 0 alone writes files.
class TrainingRun {
 public:
  TrainingRun(RunSpec& spec, const TrainHooks& hooks)
      : spec_(spec),
        o_(spec.train),
        hooks_(hooks),
        comm_(hooks.comm ? *hooks.comm : Communicator::Single()),
        task_(MakeTask(o_.task, spec.task_options)),
        spec_json_(spec.ToJson()) {
    ValidateRun(spec, *task_);
    micro_batches_ = comm_.size() * o_.grad_accum;
    if (o_.batch % micro_batches_ != 0)
      throw UsageError("--batch " + std::to_string(o_.batch) + " does not divide into " + std::to_string(comm_.size()) +
                       " rank(s) x --grad-accum " + std::to_string(o_.grad_accum) +
                       " micro-batches; give a --batch that is a multiple of " + std::to_string(micro_batches_));
    omp_set_num_threads(o_.threads);
    result_.run_dir = o_.out.empty() ? "runs/" + spec.DefaultRunName() : o_.out;
    CheckMemory(spec);
    ResetPeakResidentMemory(&result_.peak_rss_per_run);
    result_.threads = o_.threads;
    if (comm_.root()) {
      CreateDirectories(result_.run_dir);
      lock_ = std::make_unique<DirectoryLock>(result_.run_dir);
    }
    ckpt_ = result_.run_dir + "/model.safetensors";
    metrics_file_ = result_.run_dir + "/metrics.jsonl";
    model_ = std::make_unique<LanguageModel>(spec.model);
    model_->Initialize(uint64_t(o_.seed));
    result_.params = model_->params().size();
    optimizer_ = std::make_unique<AdamW>(model_->params(), OptimizerConfig());
    data_ = SplitRng(uint64_t(o_.seed), Split::kTrain, o_.train_len);
  }

  TrainResult Run() {
    if (hooks_.resume && comm_.root()) Resume();
    ShareStartingPoint();
    if (comm_.root()) OpenMetrics();
    tty_ = !quiet() && isatty(fileno(stderr));
    start_ = Clock::now();
    if (o_.snapshot_every > 0 && first_step_ == 0 && comm_.root()) Snapshot(0);
    const double train_time_before = train_time_;  // a resumed run's earlier seconds
    for (int step = first_step_; step < o_.steps; ++step) {
      if (InterruptRequested()) throw Interrupted();
      if (!Step(step)) break;
      const bool last = step + 1 == o_.steps;
      if (((step + 1) % o_.log_every == 0 || last) && comm_.root()) Log(step);
      if (o_.snapshot_every > 0 && (step + 1) % o_.snapshot_every == 0 && comm_.root()) Snapshot(step + 1);
      if ((o_.eval_every > 0 && (step + 1) % o_.eval_every == 0) || last) ValidateAndSave(step + 1);
    }
    if (tty_) std::cerr << "\n";
    Finish(train_time_before);
    return result_;
  }

 private:
  AdamWConfig OptimizerConfig() const {
    AdamWConfig ac;
    ac.lr = o_.lr;
    ac.beta2 = o_.beta2;
    ac.weight_decay = o_.weight_decay;
    ac.clip = o_.clip;
    ac.warmup = o_.warmup;
    ac.total_steps = o_.steps;
    ac.min_lr_ratio = o_.min_lr_ratio;
    return ac;
  }

  // Bit-exact continuation: weights, AdamW moments, the step, the running loss, and the data stream replayed to that
  // step.
  void Resume() {
    if (std::filesystem::exists(ckpt_)) {
      auto meta = ReadCheckpointMetadata(ckpt_);
      if (!meta.count("run"))
        throw UsageError("cannot resume run '" + result_.run_dir + "': its checkpoint holds no run config");
      first_step_ = ParseStep(meta, ckpt_);
      CheckResumable(RunSpec::Canonical(ParseJsonText(meta["run"], "checkpoint '" + ckpt_ + "' run config")),
                     spec_json_, first_step_, result_.run_dir);
      const std::string optimizer_file = OptimizerFile(result_.run_dir, first_step_);
      LoadCheckpointInto(ckpt_, *model_);
      auto opt_meta = LoadOptimizerState(optimizer_file, optimizer_->first_moment(), optimizer_->second_moment());
      if (ParseStep(opt_meta, optimizer_file) != first_step_)
        throw UsageError("cannot resume run '" + result_.run_dir + "': '" + optimizer_file + "' is not from step " +
                         std::to_string(first_step_));
      train_time_ = ParseDouble(opt_meta, "train_seconds", optimizer_file);
      loss_sum_ = ParseDouble(opt_meta, "loss_sum", optimizer_file);
      const MetricsSoFar so_far = ReadMetrics(metrics_file_, first_step_, o_.train_len);
      kept_metrics_ = so_far.lines;
      result_.steps_to_99 = so_far.steps_to_99;
      result_.resumed_from = result_.steps_done = first_step_;
      have_checkpoint_ = true;
      RemoveStaleFiles(result_.run_dir, first_step_);
    } else if (ReadMetrics(metrics_file_, o_.steps, o_.train_len).has_validation) {
      throw UsageError("cannot resume run '" + result_.run_dir + "': its metrics record checkpoints but '" + ckpt_ +
                       "' is missing; restore it, or drop --resume to start over");
    } else if (std::filesystem::exists(metrics_file_)) {
      std::cerr << "mixlab: " << result_.run_dir
                << " has no checkpoint yet (stopped before its first); starting it from step 0\n";
    }
  }

  // Rank 0's starting point (fresh or resumed: weights, moments, step, running figures) on every rank, and the data
  // stream advanced to the first step.
  void ShareStartingPoint() {
    if (comm_.distributed()) {
      ParamStore& store = model_->params();
      comm_.Broadcast(store.values(), store.size());
      comm_.Broadcast(optimizer_->first_moment().data(), int64_t(optimizer_->first_moment().size()));
      comm_.Broadcast(optimizer_->second_moment().data(), int64_t(optimizer_->second_moment().size()));
      double figures[] = {double(first_step_), train_time_, loss_sum_, double(result_.steps_to_99),
                          double(have_checkpoint_)};
      comm_.Broadcast(figures, 5);
      first_step_ = int(figures[0]);
      train_time_ = figures[1];
      loss_sum_ = figures[2];
      result_.steps_to_99 = int(figures[3]);
      have_checkpoint_ = figures[4] != 0;
      result_.resumed_from = result_.steps_done = first_step_;
      if (!comm_.root() && first_step_ > 0) model_->RestoreTrainedSteps(first_step_);
    }
    for (int s = 0; s < first_step_; ++s) task_->Sample(o_.batch, o_.train_len, data_, Split::kTrain);
  }

  bool quiet() const { return hooks_.quiet || !comm_.root(); }
  bool WillLog(int step) const { return comm_.root() && ((step + 1) % o_.log_every == 0 || step + 1 == o_.steps); }

  // The mixers' statistics of the last forward (e.g. MoE expert load, router entropy, dropped tokens), by layer; the
  // metrics line logs those of the step's first micro-batch.
  nlohmann::json MixerStats() const {
    nlohmann::json all = nlohmann::json::object();
    for (int l = 0; l < model_->n_layers(); ++l)
      for (const auto& [mixer, slot] :
           {std::pair<Mixer*, const char*>{&model_->mixer(l), "mixer"}, {&model_->channel(l), "channel"}})
        if (auto stats = mixer->Stats(); !stats.empty()) all["layers." + std::to_string(l) + "." + slot] = stats;
    return all;
  }

  void OpenMetrics() {
    WriteFileAtomic(result_.run_dir + "/config.json", spec_json_.dump(2) + "\n");
    if (first_step_ > 0) {  // the lines up to the checkpoint, replaced atomically: a crash here loses nothing
      std::string text;
      for (const auto& line : kept_metrics_) text += line + "\n";
      WriteFileAtomic(metrics_file_, text);
    }
    metrics_ = std::make_unique<AppendFile>(metrics_file_, first_step_ == 0);
  }

  // Why the loss is not finite: the first non-finite parameter, else where the last forward first produced NaN/Inf.
  std::string NonFiniteLoss(const Batch& micro) const {
    const std::string tensor = FirstNonFinite(model_->params(), model_->params().values());
    return "non-finite loss" + (tensor.empty() ? " (all parameters finite; first non-finite activation: " +
                                                     FirstNonFiniteActivation(*model_, micro.B, micro.T) + ")"
                                               : " (parameter " + tensor + " is non-finite)");
  }

  // Forward, loss and backward of this rank's micro-batches; the parameter gradients end up holding the sum over every
  // rank's micro-batches. Returns the step's loss (the same on every rank); *bad explains a non-finite loss.
  float ForwardBackward(const Batch& batch, int step, std::string* bad) {
    LanguageModel& model = *model_;
    ParamStore& store = model.params();
    ForwardMode mode{true, uint64_t(o_.seed) * 7919ULL + step, step};
    if (micro_batches_ == 1) {  // the whole batch at once
      store.ZeroGrad();
      model.Forward(batch.tokens.data(), batch.B, batch.T, mode);
      const float loss = model.Loss(batch.targets.data(), batch.mask.data());
      step_aux_loss_ = model.last_aux_loss();
      if (WillLog(step)) step_stats_ = MixerStats();
      if (std::isfinite(loss)) model.Backward();
      else *bad = NonFiniteLoss(batch);
      return loss;
    }
    const int per_micro = batch.B / micro_batches_;
    const float normalizer = MaskTotal(batch.mask.data(), int64_t(batch.mask.size()));
    float loss = 0, aux_loss = 0;
    for (int k = 0; k < o_.grad_accum; ++k) {
      const int first = (comm_.rank() * o_.grad_accum + k) * per_micro;
      const Batch micro = batch.Sequences(first, per_micro);
      mode.first_sequence = first;
      mode.aux_weight = float(per_micro) / float(batch.B);
      store.ZeroGrad();
      model.Forward(micro.tokens.data(), micro.B, micro.T, mode);
      const float part = model.Loss(micro.targets.data(), micro.mask.data(), normalizer);
      loss = k == 0 ? part : loss + part;
      aux_loss = k == 0 ? model.last_aux_loss() : aux_loss + model.last_aux_loss();
      if (k == 0 && WillLog(step)) step_stats_ = MixerStats();  // rank 0's: the batch's first micro-batch
      if (std::isfinite(part)) model.Backward();
      else if (bad->empty()) *bad = NonFiniteLoss(micro) + " in micro-batch " + std::to_string(first / per_micro);
      if (o_.grad_accum == 1) break;
      if (k == 0) accumulated_.assign(store.grads(), store.grads() + store.size());
      else
        for (int64_t i = 0; i < store.size(); ++i) accumulated_[i] += store.grads()[i];
    }
    if (o_.grad_accum > 1) std::copy(accumulated_.begin(), accumulated_.end(), store.grads());
    comm_.SumInRankOrder(store.grads(), store.size());
    // The step's loss and auxiliary loss: the ranks' sums added in rank order, as one process adds its micro-batches.
    const std::vector<double> per_rank = comm_.Gather({double(loss), double(aux_loss)});
    loss = float(per_rank[0]);
    step_aux_loss_ = float(per_rank[1]);
    for (size_t r = 1; r < per_rank.size() / 2; ++r) {
      loss += float(per_rank[2 * r]);
      step_aux_loss_ += float(per_rank[2 * r + 1]);
    }
    if (!std::isfinite(loss) && bad->empty()) *bad = "non-finite loss on another rank's shard";
    return loss;
  }

  // One optimizer step; false (and the run marked diverged) when the loss or a gradient is not finite.
  bool Step(int step) {
    Batch batch = task_->Sample(o_.batch, o_.train_len, data_, Split::kTrain);
    const auto t0 = Clock::now();
    LanguageModel& model = *model_;
    std::string bad;
    const float loss = ForwardBackward(batch, step, &bad);
    grad_norm_ = 0;
    if (!std::isfinite(loss) && bad.empty()) bad = "non-finite loss";
    if (std::isfinite(loss)) {
      // The norm is finite exactly when every gradient is; only then is the per-tensor scan skipped.
      grad_norm_ = GradientNorm(model.params().grads(), model.params().size());
      if (!std::isfinite(grad_norm_))
        bad = "non-finite gradient in " + FirstNonFinite(model.params(), model.params().grads());
    }
    if (!bad.empty()) {
      result_.diverged = true;
      result_.divergence = "step " + std::to_string(step) + ": " + bad;
      if (comm_.root()) metrics_->WriteLine(nlohmann::json{{"step", step}, {"diverged", result_.divergence}}.dump());
      if (!quiet())
        std::cerr << (tty_ ? "\n" : "") << hooks_.progress_prefix << " stopped: " << result_.divergence
                  << (have_checkpoint_ ? "; last good checkpoint kept at " + ckpt_
                                       : "; no checkpoint was written before it")
                  << "\n";
      return false;
    }
    optimizer_->Step(step, grad_norm_);
    last_step_end_ = Clock::now();
    if (hooks_.after_step) hooks_.after_step(model, step);
    train_time_ += Seconds(t0, last_step_end_);
    if (step == first_step_) first_step_time_ = Seconds(t0, last_step_end_);
    result_.steps_done = step + 1;
    window_loss_ += loss;
    loss_sum_ += loss;
    ++window_;
    return true;
  }

  // The metrics line of the steps since the last one (loss, lr, gradient norm, throughput, mixer statistics) and the
  // progress line.
  void Log(int step) {
    const double tok_s = double(result_.steps_done) * o_.batch * o_.train_len / std::max(train_time_, 1e-9);
    const double lr = optimizer_->LearningRate(step);
    nlohmann::json line{{"step", step + 1},        {"loss", window_loss_ / window_}, {"lr", lr},
                        {"grad_norm", grad_norm_}, {"tokens_per_s", tok_s},          {"aux_loss", step_aux_loss_}};
    if (!step_stats_.empty()) line["stats"] = step_stats_;
    metrics_->WriteLine(line.dump());
    if (!hooks_.quiet) {
      const double elapsed = Seconds(start_, last_step_end_);
      const double eta = elapsed / (result_.steps_done - first_step_) * (o_.steps - result_.steps_done);
      char text[256];
      const std::string experiment =
          hooks_.later_runs_seconds >= 0 ? " (experiment " + FormatDuration(eta + hooks_.later_runs_seconds) + ")" : "";
      std::snprintf(text, sizeof text, "%s step %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s%s",
                    hooks_.progress_prefix.c_str(), step + 1, o_.steps, window_loss_ / window_, lr, tok_s,
                    FormatDuration(eta).c_str(), experiment.c_str());
      std::cerr << (tty_ ? "\r\033[K" : "") << text << (tty_ ? "" : "\n") << std::flush;
    }
    window_loss_ = 0;
    window_ = 0;
  }

  std::vector<EvalResult> Validate(int step, bool record) {
    std::vector<EvalResult> evals;
    for (int T : o_.eval_lens)
      evals.push_back(Evaluate(*model_, *task_, T, o_.val_answers, EvalBatchSize(o_.batch, o_.train_len, T),
                               uint64_t(o_.seed), Split::kValidation, comm_));
    result_.validation = evals;
    if (record && comm_.root())
      metrics_->WriteLine(nlohmann::json{{"step", step}, {"validation", EvalJson(evals)}}.dump());
    for (const auto& e : evals)
      if (e.length == o_.train_len && e.accuracy >= 0.99 && result_.steps_to_99 < 0) result_.steps_to_99 = step;
    return evals;
  }

  void ValidateAndSave(int step) {
    const auto evals = Validate(step, true);
    bool finite = true;
    for (const auto& e : evals) finite &= std::isfinite(e.loss);
    if (finite && comm_.root()) Save(step);  // a checkpoint is only ever replaced by a good one
    if (finite) have_checkpoint_ = true;
    if (!quiet() && !tty_) {
      std::string s = hooks_.progress_prefix + " validation @" + std::to_string(step) + ":";
      for (const auto& e : evals)
        s += " T=" + std::to_string(e.length) + " acc " + std::to_string(e.accuracy).substr(0, 5);
      std::cerr << s << "\n";
    }
  }

  // The checkpoint pair: optimizer-STEP.safetensors first, then model.safetensors (whose step names the optimizer file
  // that belongs to it), then the older optimizer files are removed. Each write is atomic, so a crash at any instant
  // leaves a model checkpoint and its own optimizer state.
  void Save(int step) {
    SaveOptimizerState(OptimizerFile(result_.run_dir, step), optimizer_->first_moment(), optimizer_->second_moment(),
                       {{"step", std::to_string(step)},
                        {"train_seconds", ExactDouble(train_time_)},
                        {"loss_sum", ExactDouble(loss_sum_)}});
    if (hooks_.between_checkpoint_files) hooks_.between_checkpoint_files();
    SaveCheckpoint(ckpt_, *model_, {{"run", spec_json_.dump()}, {"step", std::to_string(step)}});
    have_checkpoint_ = true;
    RemoveStaleFiles(result_.run_dir, step);
  }

  void Snapshot(int step) {  // light: weights only, for analysis over training
    char name[64];
    std::snprintf(name, sizeof name, "/snapshots/step_%08d.safetensors", step);
    CreateDirectories(result_.run_dir + "/snapshots");
    SaveCheckpoint(result_.run_dir + name, *model_, {{"run", spec_json_.dump()}, {"step", std::to_string(step)}});
  }

  std::vector<EvalResult> Test(const Task& t) {
    std::vector<EvalResult> evals;
    for (int T : o_.eval_lens)
      if (CanGenerate(t, T))  // a swept value may not fit every length (MQAR's pairs); its row skips that length
        evals.push_back(Evaluate(*model_, t, T, o_.test_answers, EvalBatchSize(o_.batch, o_.train_len, T),
                                 uint64_t(o_.seed), Split::kTest, comm_));
    return evals;
  }

  // Training figures, the test split (and --eval-sweep), results.json.
  void Finish(double train_time_before) {
    result_.train_seconds = train_time_;
    result_.load_average = LoadAverage();
    result_.tokens_per_second = double(result_.steps_done) * o_.batch * o_.train_len / std::max(train_time_, 1e-9);
    if (const int warm_steps = result_.steps_done - first_step_ - 1; warm_steps > 0)
      result_.warm_tokens_per_second = double(warm_steps) * o_.batch * o_.train_len /
                                       std::max(train_time_ - train_time_before - first_step_time_, 1e-9);
    result_.mean_train_loss = loss_sum_ / std::max(1, result_.steps_done);
    if (result_.steps_to_99 >= 0) result_.tokens_to_99 = int64_t(result_.steps_to_99) * o_.batch * o_.train_len;
    if (!result_.diverged) {
      if (result_.validation.empty())
        Validate(result_.steps_done, false);  // a finished run resumed: already in the metrics
      if (!quiet())
        std::cerr << hooks_.progress_prefix << " testing at " << o_.eval_lens.size() << " length(s), "
                  << o_.test_answers << " answers each\n";
      result_.test = Test(*task_);
      if (!o_.eval_sweep.empty()) {
        const auto [option, values] = ParseSweep(o_, spec_.task_options);
        for (const auto& value : values) {
          OptionMap options = spec_.task_options;
          options[option] = value;
          result_.sweep.push_back({option + "=" + value, Test(*MakeTask(o_.task, options))});
        }
      }
    }
    result_.peak_rss_mb = PeakResidentMemoryMb();
    result_.ranks = comm_.size();
    if (!comm_.root()) return;
    if (result_.steps_done == first_step_ && first_step_ > 0)
      KeepTrainingFigures(result_.run_dir + "/results.json", result_);
    WriteFileAtomic(result_.run_dir + "/results.json", result_.ToJson().dump(2) + "\n");
  }

  RunSpec& spec_;
  const TrainOptions& o_;
  const TrainHooks& hooks_;
  const Communicator& comm_;
  int micro_batches_ = 1;  // ranks x --grad-accum
  std::unique_ptr<Task> task_;
  const nlohmann::json spec_json_;
  TrainResult result_;
  std::unique_ptr<DirectoryLock> lock_;
  std::string ckpt_, metrics_file_;
  std::unique_ptr<LanguageModel> model_;
  std::unique_ptr<AdamW> optimizer_;
  Rng data_{0};
  std::unique_ptr<AppendFile> metrics_;
  std::vector<std::string> kept_metrics_;
  std::vector<float> accumulated_;
  float step_aux_loss_ = 0;  // the step's auxiliary losses (summed over its micro-batches)
  nlohmann::json step_stats_ =
      nlohmann::json::object();  // --grad-accum: the sum of this rank's micro-batch gradients so far
  int first_step_ = 0;
  bool have_checkpoint_ = false;  // a good checkpoint exists in the run directory (written or resumed from)
  bool tty_ = false;
  double train_time_ = 0, loss_sum_ = 0, first_step_time_ = 0, window_loss_ = 0;
  float grad_norm_ = 0;
  int window_ = 0;
  Clock::time_point start_, last_step_end_;
};

}  // namespace

TrainResult Train(RunSpec& spec, const TrainHooks& hooks) { return TrainingRun(spec, hooks).Run(); }

}  // namespace mixlab
