#include "experiments/analysis/response_map.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "experiments/analysis/analysis.h"
#include "mixers/ops/rng.h"
#include "models/adamw.h"

namespace mixlab {

Edit ParseEdit(const std::string& name) {
  if (name == "insert") return Edit::kInsert;
  if (name == "replace") return Edit::kReplace;
  if (name == "repeat") return Edit::kRepeat;
  throw UsageError("unknown edit '" + name + "'; allowed: insert, replace, repeat");
}

EditedSequence ApplyEdit(const std::vector<int32_t>& context, const std::vector<int32_t>& fragment, Edit edit, int at) {
  const int C = int(context.size()), F = int(fragment.size());
  if (F == 0) throw UsageError("the fragment is empty");
  if (F > C)
    throw UsageError("the fragment (" + std::to_string(F) + " tokens) is longer than the context (" +
                     std::to_string(C) + ")");
  const int last = edit == Edit::kReplace ? C - F : C;
  if (at < 0 || at > last)
    throw UsageError("--at " + std::to_string(at) + " is outside [0, " + std::to_string(last) + "] for this edit");
  EditedSequence e;
  auto keep = [&](int from, int to) {
    for (int i = from; i < to; ++i) e.tokens.push_back(context[i]), e.origin.push_back(i);
  };
  auto put_fragment = [&] {
    e.fragment.clear();
    for (int32_t t : fragment)
      e.fragment.push_back(int(e.tokens.size())), e.tokens.push_back(t), e.origin.push_back(-1);
  };
  keep(0, at);
  put_fragment();
  if (edit == Edit::kRepeat) put_fragment();
  keep(edit == Edit::kReplace ? at + F : at, C);
  return e;
}

double JensenShannon(std::vector<double> p, std::vector<double> q) {
  const double sp = std::accumulate(p.begin(), p.end(), 0.0), sq = std::accumulate(q.begin(), q.end(), 0.0);
  if (sp <= 0 || sq <= 0) return 0.0;
  double js = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double a = p[i] / sp, b = q[i] / sq, m = 0.5 * (a + b);
    if (a > 0) js += 0.5 * a * std::log(a / m);
    if (b > 0) js += 0.5 * b * std::log(b / m);
  }
  return js;
}

namespace {

struct Trace {
  std::vector<std::vector<RowMatrix>> maps;        // [layer][head], normalised
  std::vector<std::vector<float>> residual, lens;  // [layer]: output of layer l (T, D) and its lens logits (T, V)
};

Trace Run(LanguageModel& model, const std::vector<int32_t>& tokens) {
  const int T = int(tokens.size());
  std::vector<int32_t> positions(T);
  std::iota(positions.begin(), positions.end(), 0);
  model.Forward(tokens.data(), 1, T);
  Trace tr;
  const int64_t TD = int64_t(T) * model.d_model(), TV = int64_t(T) * model.vocab();
  for (int l = 0; l < model.n_layers(); ++l) {
    std::vector<RowMatrix> normed;
    for (const auto& m : model.mixer(l).Mixing(model.mixer_input(l), positions.data(), T))
      normed.push_back(NormalizeRows(m));
    tr.maps.push_back(std::move(normed));
    tr.residual.emplace_back(model.residual(l + 1), model.residual(l + 1) + TD);
    tr.lens.emplace_back(TV);
    model.LogitLens(l + 1, tr.lens.back().data());
  }
  return tr;
}

// Mean next-token loss of (B, T) tokens where mask (empty = everywhere) is set.
double MeanLoss(LanguageModel& model, const std::vector<int32_t>& tokens, int B, const std::vector<float>& mask) {
  const int T = int(tokens.size()) / B;
  std::vector<int32_t> targets(tokens.size(), 0);
  std::vector<float> m(tokens.size(), 0.0f);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t + 1 < T; ++t) {
      targets[size_t(b) * T + t] = tokens[size_t(b) * T + t + 1];
      m[size_t(b) * T + t] = mask.empty() ? 1.0f : mask[size_t(b) * T + t];
    }
  model.Forward(tokens.data(), B, T);
  return model.Loss(targets.data(), m.data()) - model.last_aux_loss();
}

}  // namespace

ResponseMap Respond(LanguageModel& model, const std::vector<int32_t>& context, const EditedSequence& variant,
                    double threshold) {
  const Trace a = Run(model, context), b = Run(model, variant.tokens);
  const int D = model.d_model(), V = model.vocab();
  const int after = variant.fragment.back() + 1;
  std::vector<int> queries;  // shared positions after the edit (variant numbering)
  for (int q = after; q < int(variant.tokens.size()); ++q)
    if (variant.origin[q] >= 0) queries.push_back(q);
  ResponseMap r;
  for (int l = 0; l < model.n_layers(); ++l) {
    LayerResponse lr;
    for (size_t h = 0; h < b.maps[l].size(); ++h) {
      HeadResponse hr;
      const RowMatrix &ma = a.maps[l][h], &mb = b.maps[l][h];
      for (int q : queries) {
        for (int f : variant.fragment) hr.fragment_mass += mb(q, f);
        std::vector<double> p, s;
        for (int k = 0; k <= q; ++k)
          if (variant.origin[k] >= 0) p.push_back(ma(variant.origin[q], variant.origin[k])), s.push_back(mb(q, k));
        hr.js_shift += JensenShannon(p, s);
      }
      if (!queries.empty()) hr.fragment_mass /= double(queries.size()), hr.js_shift /= double(queries.size());
      lr.heads.push_back(hr);
    }
    for (int q : queries) {
      const int c = variant.origin[q];
      double diff = 0, norm = 0;
      for (int d = 0; d < D; ++d) {
        const double x = a.residual[l][size_t(c) * D + d], y = b.residual[l][size_t(q) * D + d];
        diff += (y - x) * (y - x), norm += x * x;
      }
      lr.residual_change += norm > 0 ? std::sqrt(diff / norm) : 0.0;
      const auto pa = LogSoftmax(a.lens[l].data() + size_t(c) * V, V),
                 pb = LogSoftmax(b.lens[l].data() + size_t(q) * V, V);
      for (int v = 0; v < V; ++v) lr.lens_kl += std::exp(pa[v]) * (pa[v] - pb[v]);
    }
    if (!queries.empty()) lr.residual_change /= double(queries.size()), lr.lens_kl /= double(queries.size());
    if (r.first_layer_over < 0 && lr.residual_change > threshold) r.first_layer_over = l;
    r.layers.push_back(std::move(lr));
  }
  return r;
}

FragmentTraining TrainOnFragment(LanguageModel& model, const EditedSequence& variant, const Batch& heldout, int steps,
                                 float lr, uint64_t seed) {
  ParamStore& store = model.params();
  const std::vector<float> saved(store.values(), store.values() + store.size());
  std::vector<float> fragment_mask(variant.tokens.size(), 0.0f);
  for (int f : variant.fragment)
    if (f > 0) fragment_mask[f - 1] = 1.0f;  // the prediction of each fragment token
  Rng rng(seed, 0x0b5e55ed);
  std::vector<int32_t> unrelated(heldout.tokens.size());
  auto heldout_loss = [&] {
    model.Forward(heldout.tokens.data(), heldout.B, heldout.T);
    return double(model.Loss(heldout.targets.data(), heldout.mask.data()) - model.last_aux_loss());
  };
  for (auto& t : unrelated) t = int32_t(rng.Int(0, model.vocab()));
  FragmentTraining r;
  r.fragment_before = MeanLoss(model, variant.tokens, 1, fragment_mask);
  r.heldout_before = heldout_loss();
  r.unrelated_before = MeanLoss(model, unrelated, heldout.B, {});

  AdamW optimizer(
      store,
      AdamWConfig{.lr = lr, .weight_decay = 0, .clip = 1.0f, .warmup = 0, .total_steps = steps, .min_lr_ratio = 1.0f});
  std::vector<float> all(variant.tokens.size(), 1.0f);
  for (int s = 0; s < steps; ++s) {
    store.ZeroGrad();
    MeanLoss(model, variant.tokens, 1, all);
    model.Backward();
    optimizer.Step(s);
  }
  r.fragment_after = MeanLoss(model, variant.tokens, 1, fragment_mask);
  r.heldout_after = heldout_loss();
  r.unrelated_after = MeanLoss(model, unrelated, heldout.B, {});

  std::map<std::string, std::pair<double, double>> groups;  // group -> (||dw||^2, ||w||^2)
  std::vector<std::string> order;
  for (const auto& p : store.params()) {
    const std::string group = p.name.substr(0, p.name.rfind('.'));
    if (!groups.count(group)) order.push_back(group);
    int64_t n = 1;
    for (int64_t d : p.spec.shape) n *= d;
    for (int64_t i = p.offset; i < p.offset + n; ++i) {
      const double w = saved[i], dw = double(store.values()[i]) - w;
      groups[group].first += dw * dw, groups[group].second += w * w;
    }
  }
  for (const auto& g : order)
    r.weight_change.push_back({g, groups[g].second > 0 ? std::sqrt(groups[g].first / groups[g].second) : 0.0});
  std::copy(saved.begin(), saved.end(), store.values());
  return r;
}

}  // namespace mixlab
