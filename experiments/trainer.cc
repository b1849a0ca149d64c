#include "experiments/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "models/adamw.h"
#include "models/checkpoint.h"

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

nlohmann::json EvalJson(const std::vector<EvalResult>& evals) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& e : evals) j[std::to_string(e.length)] = {{"loss", e.loss}, {"accuracy", e.accuracy}, {"bits_per_token", e.loss / std::log(2.0)}};
  return j;
}

}  // namespace

nlohmann::json TrainResult::ToJson() const {
  return {{"run_dir", run_dir},   {"steps_done", steps_done},   {"diverged", diverged},
          {"divergence", divergence}, {"train_seconds", train_seconds}, {"tokens_per_second", tokens_per_second},
          {"params", params},     {"steps_to_99", steps_to_99}, {"test", EvalJson(test)}};
}

void ValidateRun(const RunSpec& spec, const Task& task) {
  std::vector<int> lengths = spec.train.eval_lens;
  lengths.push_back(spec.train.train_len);
  for (int T : lengths) {
    task.CheckLength(T);
    if (spec.model.pos == "learned" && T > spec.model.max_len)
      throw UsageError("length " + std::to_string(T) + " exceeds --max-len " + std::to_string(spec.model.max_len) +
                       " of the learned positional embedding; raise --max-len or use another --pos");
  }
}

TrainResult Train(RunSpec& spec, const TrainHooks& hooks) {
  const TrainOptions& o = spec.train;
  auto task = MakeTask(o.task, spec.task_options);
  ValidateRun(spec, *task);
  omp_set_num_threads(o.threads);

  TrainResult result;
  result.run_dir = o.out.empty() ? "runs/" + spec.DefaultRunName() : o.out;
  std::filesystem::create_directories(result.run_dir);
  const std::string ckpt = result.run_dir + "/model.safetensors";
  const nlohmann::json spec_json = spec.ToJson();
  {
    std::ofstream(result.run_dir + "/config.json") << spec_json.dump(2) << "\n";
  }
  std::ofstream metrics(result.run_dir + "/metrics.jsonl", std::ios::trunc);

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

  const bool tty = !hooks.quiet && isatty(fileno(stderr));
  const auto start = Clock::now();
  double train_time = 0, window_loss = 0;
  int window = 0;
  auto save = [&](int step) {
    SaveCheckpoint(ckpt, model, {{"run", spec_json.dump()}, {"step", std::to_string(step)}});
  };
  auto validate = [&](int step) {
    std::vector<EvalResult> evals;
    for (int T : o.eval_lens)
      evals.push_back(Evaluate(model, *task, T, o.eval_batches, o.batch, uint64_t(o.seed), Split::kValidation));
    metrics << nlohmann::json{{"step", step}, {"validation", EvalJson(evals)}}.dump() << "\n" << std::flush;
    for (const auto& e : evals)
      if (e.length == o.train_len && e.accuracy >= 0.99 && result.steps_to_99 < 0) result.steps_to_99 = step;
    return evals;
  };

  for (int step = 0; step < o.steps; ++step) {
    Batch batch = task->Sample(o.batch, o.train_len, data, Split::kTrain);
    const auto t0 = Clock::now();
    model.params().ZeroGrad();
    model.Forward(batch.tokens.data(), batch.B, batch.T, ForwardMode{true, uint64_t(o.seed) * 7919ULL + step, step});
    const float loss = model.Loss(batch.targets.data(), batch.mask.data());
    std::string bad;
    if (!std::isfinite(loss)) {
      const std::string tensor = FirstNonFinite(model.params(), model.params().values());
      bad = "non-finite loss" + (tensor.empty() ? std::string(" (all parameters finite)") : " (parameter " + tensor + " is non-finite)");
    }
    if (bad.empty()) {
      model.Backward();
      const std::string tensor = FirstNonFinite(model.params(), model.params().grads());
      if (!tensor.empty()) bad = "non-finite gradient in " + tensor;
    }
    if (!bad.empty()) {
      result.diverged = true;
      result.divergence = "step " + std::to_string(step) + ": " + bad;
      metrics << nlohmann::json{{"step", step}, {"diverged", result.divergence}}.dump() << "\n";
      if (!hooks.quiet) std::cerr << (tty ? "\n" : "") << hooks.progress_prefix << " stopped: " << result.divergence
                                  << "; last good checkpoint kept at " << ckpt << "\n";
      break;
    }
    const float grad_norm = optimizer.Step(step);
    const auto t1 = Clock::now();
    if (hooks.after_step) hooks.after_step(model, step);
    train_time += Seconds(t0, t1);
    result.steps_done = step + 1;
    window_loss += loss;
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
      metrics << line.dump() << "\n";
      if (!hooks.quiet) {
        const double elapsed = Seconds(start, t1);
        const double eta = elapsed / result.steps_done * (o.steps - result.steps_done);
        char line[256];
        std::snprintf(line, sizeof line, "%s step %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s", hooks.progress_prefix.c_str(),
                      step + 1, o.steps, window_loss / window, optimizer.LearningRate(step), tok_s,
                      FormatDuration(eta).c_str());
        std::cerr << (tty ? "\r\033[K" : "") << line << (tty ? "" : "\n") << std::flush;
      }
      window_loss = 0;
      window = 0;
    }
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last) {
      auto evals = validate(step + 1);
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
  result.tokens_per_second = double(result.steps_done) * o.batch * o.train_len / std::max(train_time, 1e-9);
  if (!result.diverged) {
    for (int T : o.eval_lens)
      result.test.push_back(Evaluate(model, *task, T, o.eval_batches, o.batch, uint64_t(o.seed), Split::kTest));
  }
  std::ofstream(result.run_dir + "/results.json") << result.ToJson().dump(2) << "\n";
  return result;
}

}  // namespace mixlab
