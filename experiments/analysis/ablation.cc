#include "experiments/analysis/ablation.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "mixers/head_groups.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

namespace {

// The kHeadOutput projection (rows, D) of layer l's sequence mixer and the number of heads its rows split into;
// w == nullptr when the mixer declares none.
struct OutputProjection {
  float* w = nullptr;
  int64_t rows = 0, cols = 0;
  int groups = 0;
};

OutputProjection FindOutputProjection(LanguageModel& model, int l) {
  auto& store = model.params();
  const std::string prefix = "layers." + std::to_string(l) + ".mixer.";
  for (int i = 0; i < int(store.params().size()); ++i) {
    const auto& p = store.params()[i];
    if (p.spec.role == ParamRole::kHeadOutput && p.name.rfind(prefix, 0) == 0)
      return {store.Ref(i).value, p.spec.shape[0], p.spec.shape[1], p.spec.head_groups};
  }
  return {};
}

void ZeroHeadRows(const OutputProjection& p, int head) { ::mixlab::ZeroHeadRows(p.w, p.rows, p.cols, p.groups, head); }

// The projection of layer l, refusing a layer without one (callers ablate only AblatableHeads()).
OutputProjection RequireOutputProjection(LanguageModel& model, int l) {
  const auto p = FindOutputProjection(model, l);
  if (!p.w)
    throw UsageError("layer " + std::to_string(l) + " (" + model.mixer(l).Name() +
                     ") declares no per-head output projection (ParamRole::kHeadOutput); its heads cannot be ablated");
  return p;
}

std::vector<double> MeanRow(const float* y, int64_t rows, int64_t D) {
  std::vector<double> m(D, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t d = 0; d < D; ++d) m[d] += y[r * D + d];
  for (auto& v : m) v /= double(std::max<int64_t>(rows, 1));
  return m;
}

}  // namespace

std::vector<int> AblatableHeads(LanguageModel& model) {
  std::vector<int> heads;
  for (int l = 0; l < model.n_layers(); ++l) heads.push_back(FindOutputProjection(model, l).groups);
  return heads;
}

Batch AblationBatch(const AblationSetup& s) {
  Rng rng = SplitRng(s.seed, Split::kValidation, s.length);
  return s.task->Sample(s.batch, s.length, rng, Split::kValidation);
}

Ablation::Ablation(LanguageModel& model, const AblationSetup& setup, const std::vector<HeadId>& removed)
    : model_(model), saved_(model.params().values(), model.params().values() + model.params().size()) {
  std::map<int, std::vector<int>> by_layer;
  for (const auto& [l, h] : removed) by_layer[l].push_back(h);
  const int64_t D = model.d_model();
  if (setup.mode == AblationMode::kMean) {
    // Offsets from clean upstream layers: ablate one layer at a time on the validation batch.
    const Batch b = AblationBatch(setup);
    const int64_t N = int64_t(b.B) * b.T;
    model.Forward(b.tokens.data(), b.B, b.T);
    std::map<int, std::vector<double>> clean;
    for (const auto& [l, heads] : by_layer) clean[l] = MeanRow(model.mixer_output(l), N, D);
    std::map<int, std::vector<float>> offsets;
    for (const auto& [l, heads] : by_layer) {
      const auto proj = RequireOutputProjection(model, l);
      for (int h : heads) ZeroHeadRows(proj, h);
      model.Forward(b.tokens.data(), b.B, b.T);
      const auto ablated = MeanRow(model.mixer_output(l), N, D);
      std::vector<float> offset(D);
      for (int64_t d = 0; d < D; ++d) offset[d] = float(clean[l][d] - ablated[d]);
      offsets[l] = std::move(offset);
      std::copy(saved_.begin(), saved_.end(), model.params().values());
    }
    for (auto& [l, offset] : offsets) model.SetMixerOffset(l, std::move(offset));
  }
  for (const auto& [l, heads] : by_layer) {
    const auto proj = RequireOutputProjection(model, l);
    for (int h : heads) ZeroHeadRows(proj, h);
  }
}

Ablation::~Ablation() {
  std::copy(saved_.begin(), saved_.end(), model_.params().values());
  for (int l = 0; l < model_.n_layers(); ++l) model_.SetMixerOffset(l, {});
}

EvalResult EvaluateAblated(LanguageModel& model, const AblationSetup& setup, const std::vector<HeadId>& removed) {
  Ablation ablation(model, setup, removed);
  return Evaluate(model, *setup.task, setup.length, setup.answers, setup.batch, setup.seed, Split::kTest);
}

std::vector<std::vector<double>> HeadOutputShares(LanguageModel& model, const AblationSetup& setup) {
  const Batch b = AblationBatch(setup);
  const int64_t ND = int64_t(b.B) * b.T * model.d_model();
  std::vector<std::vector<double>> shares(model.n_layers());
  model.Forward(b.tokens.data(), b.B, b.T);
  std::vector<std::vector<float>> clean;
  for (int l = 0; l < model.n_layers(); ++l) clean.emplace_back(model.mixer_output(l), model.mixer_output(l) + ND);
  for (int l = 0; l < model.n_layers(); ++l) {
    double total = 0;
    for (int64_t i = 0; i < ND; ++i) total += double(clean[l][i]) * clean[l][i];
    for (int h = 0; h < setup.heads_per_layer[l]; ++h) {
      Ablation ablation(model,
                        {.task = setup.task,
                         .length = setup.length,
                         .batch = setup.batch,
                         .seed = setup.seed,
                         .heads_per_layer = setup.heads_per_layer},
                        {{l, h}});
      model.Forward(b.tokens.data(), b.B, b.T);
      const float* y = model.mixer_output(l);
      double diff = 0;
      for (int64_t i = 0; i < ND; ++i) diff += double(clean[l][i] - y[i]) * (clean[l][i] - y[i]);
      shares[l].push_back(total > 0 ? std::sqrt(diff / total) : 0.0);
    }
  }
  return shares;
}

std::vector<PruningPoint> GreedyPruning(LanguageModel& model, const AblationSetup& setup) {
  std::vector<HeadId> remaining, removed;
  for (int l = 0; l < int(setup.heads_per_layer.size()); ++l)
    for (int h = 0; h < setup.heads_per_layer[l]; ++h) remaining.push_back({l, h});
  const double total = double(remaining.size());
  const EvalResult base =
      Evaluate(model, *setup.task, setup.length, setup.answers, setup.batch, setup.seed, Split::kTest);
  std::vector<PruningPoint> curve{{0.0, base.accuracy, base.loss, {-1, -1}}};
  while (!remaining.empty()) {
    size_t best = 0;
    EvalResult best_result;
    for (size_t i = 0; i < remaining.size(); ++i) {
      auto trial = removed;
      trial.push_back(remaining[i]);
      const EvalResult r = EvaluateAblated(model, setup, trial);
      if (i == 0 || r.accuracy > best_result.accuracy ||
          (r.accuracy == best_result.accuracy && r.loss < best_result.loss)) {
        best = i;
        best_result = r;
      }
    }
    removed.push_back(remaining[best]);
    remaining.erase(remaining.begin() + long(best));
    curve.push_back({double(removed.size()) / total, best_result.accuracy, best_result.loss, removed.back()});
  }
  return curve;
}

}  // namespace mixlab
