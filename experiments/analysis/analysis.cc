#include "experiments/analysis/analysis.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "experiments/run/evaluate.h"

namespace mixlab {

RowMatrix NormalizeRows(const RowMatrix& m) {
  RowMatrix a = m.cwiseAbs();
  for (int64_t t = 0; t < a.rows(); ++t) {
    const float sum = a.row(t).sum();
    if (sum > 0) a.row(t) /= sum;
  }
  return a;
}

void ScoreGeneral(const RowMatrix& a, HeadScores& s) {
  const int64_t T = a.rows();
  double prev = 0, entropy = 0, ratio = 0, distance = 0, sink = 0;
  for (int64_t t = 1; t < T; ++t) {
    prev += a(t, t - 1);
    sink += a(t, 0);
    double h = 0, d = 0;
    for (int64_t j = 0; j <= t; ++j) {
      if (a(t, j) > 0) h -= a(t, j) * std::log(double(a(t, j)));
      d += a(t, j) * double(t - j);
    }
    entropy += h;
    ratio += h / std::log(double(t + 1));
    distance += d;
  }
  const double rows = double(std::max<int64_t>(1, T - 1));
  s.previous_token = prev / rows;
  s.entropy = entropy / rows;
  s.entropy_ratio = ratio / rows;
  s.mean_distance = distance / rows;
  s.sink_mass = sink / rows;
}

void ScoreRepeated(const RowMatrix& a, int period, HeadScores& s) {
  double dup = 0, ind = 0;
  int n = 0;
  for (int64_t t = period; t < a.rows(); ++t, ++n) {
    dup += a(t, t - period);
    ind += a(t, t - period + 1);
  }
  s.duplicate_token = n ? dup / n : 0;
  s.induction = n ? ind / n : 0;
}

void ScoreAnswerInduction(const RowMatrix& a, const std::vector<int32_t>& tokens, const std::vector<float>& mask,
                          HeadScores& s) {
  double sum = 0;
  int n = 0;
  for (int64_t t = 1; t < a.rows(); ++t) {
    if (mask[t] == 0) continue;
    int64_t prev = t - 1;
    while (prev >= 0 && tokens[prev] != tokens[t]) --prev;
    if (prev < 0 || prev + 1 >= t) continue;  // no earlier occurrence, or its successor is t itself
    sum += a(t, prev + 1);
    ++n;
  }
  s.answer_induction = n ? sum / n : 0;
}

namespace {

// Normalised maps of every layer's mixer for one sequence (B = 1) already run through model.Forward.
std::vector<std::vector<RowMatrix>> LayerMaps(LanguageModel& model, int T) {
  std::vector<int32_t> positions(T);
  std::iota(positions.begin(), positions.end(), 0);
  std::vector<std::vector<RowMatrix>> maps;
  for (int l = 0; l < model.n_layers(); ++l) {
    auto raw = model.mixer(l).Mixing(model.mixer_input(l), positions.data(), T);
    std::vector<RowMatrix> normed;
    for (const auto& m : raw) normed.push_back(NormalizeRows(m));
    maps.push_back(std::move(normed));
  }
  return maps;
}

}  // namespace

std::vector<LayerAnalysis> AnalyzeHeads(LanguageModel& model, const std::vector<int32_t>& task_tokens,
                                        const std::vector<float>& task_mask, const std::vector<int32_t>& repeated) {
  const int T = int(task_tokens.size()), R = int(repeated.size());
  model.Forward(task_tokens.data(), 1, T);
  auto task_maps = LayerMaps(model, T);
  model.Forward(repeated.data(), 1, R);
  auto repeat_maps = LayerMaps(model, R);
  std::vector<LayerAnalysis> out;
  for (int l = 0; l < model.n_layers(); ++l) {
    LayerAnalysis la;
    la.layer = l;
    la.mixer = model.mixer(l).Name();
    for (size_t h = 0; h < task_maps[l].size(); ++h) {
      HeadScores s;
      ScoreGeneral(task_maps[l][h], s);
      ScoreAnswerInduction(task_maps[l][h], task_tokens, task_mask, s);
      ScoreRepeated(repeat_maps[l][h], R / 2, s);
      la.heads.push_back(s);
    }
    la.task_maps = std::move(task_maps[l]);
    out.push_back(std::move(la));
  }
  return out;
}

std::vector<double> LogSoftmax(const float* z, int V) {
  const float m = *std::max_element(z, z + V);
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(double(z[v] - m));
  std::vector<double> out(V);
  for (int v = 0; v < V; ++v) out[v] = double(z[v] - m) - std::log(sum);
  return out;
}

std::vector<LensLayer> LogitLens(LanguageModel& model, const std::vector<int32_t>& tokens,
                                 const std::vector<float>& mask) {
  const int T = int(tokens.size()), V = model.vocab();
  model.Forward(tokens.data(), 1, T);
  std::vector<float> final_logits(model.logits(), model.logits() + int64_t(T) * V), lens(final_logits.size());
  std::vector<LensLayer> out;
  std::vector<double> lp, fp;
  for (int l = 0; l <= model.n_layers(); ++l) {
    model.LogitLens(l, lens.data());
    LensLayer r;
    r.layer = l;
    int n = 0, last = -1;
    for (int t = 0; t < T; ++t) {
      if (mask[t] == 0) continue;
      lp = LogSoftmax(lens.data() + int64_t(t) * V, V);
      fp = LogSoftmax(final_logits.data() + int64_t(t) * V, V);
      const int final_top = int(std::max_element(fp.begin(), fp.end()) - fp.begin());
      double h = 0, kl = 0;
      int rank = 0;
      for (int v = 0; v < V; ++v) {
        h -= std::exp(lp[v]) * lp[v];
        kl += std::exp(fp[v]) * (fp[v] - lp[v]);
        rank += lp[v] > lp[final_top];
      }
      r.entropy += h, r.kl_to_final += kl, r.final_top1_rank += rank;
      ++n, last = t;
    }
    if (n) r.entropy /= n, r.kl_to_final /= n, r.final_top1_rank /= n;
    if (last >= 0) {
      std::vector<int> order(V);
      std::iota(order.begin(), order.end(), 0);
      const float* z = lens.data() + int64_t(last) * V;
      std::partial_sort(order.begin(), order.begin() + std::min(5, V), order.end(),
                        [z](int a, int b) { return z[a] > z[b]; });
      r.top_tokens.assign(order.begin(), order.begin() + std::min(5, V));
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace mixlab

namespace mixlab {

std::vector<std::vector<double>> MapSimilarity(const std::vector<LayerAnalysis>& layers) {
  std::vector<const RowMatrix*> maps;
  for (const auto& l : layers)
    for (const auto& m : l.task_maps) maps.push_back(&m);
  const size_t n = maps.size();
  std::vector<std::vector<double>> sim(n, std::vector<double>(n, 0.0));
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const double dot = double((maps[i]->array() * maps[j]->array()).sum());
      const double norms = double(maps[i]->norm()) * double(maps[j]->norm());
      sim[i][j] = norms > 0 ? dot / norms : 0.0;
    }
  return sim;
}

// Next-token loss at every position of one sequence, from the logits of the last Forward.
std::vector<double> PositionLosses(const LanguageModel& model, const int32_t* targets, int T) {
  const int V = model.vocab();
  std::vector<double> nll(T);
  for (int t = 0; t < T; ++t) {
    const float* z = model.logits() + int64_t(t) * V;
    const float m = *std::max_element(z, z + V);
    double sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(double(z[v] - m));
    nll[t] = std::log(sum) - double(z[targets[t]] - m);
  }
  return nll;
}

double TextInContextScore(LanguageModel& model, const Batch& sample) {
  const int T = sample.T;
  model.Forward(sample.tokens.data(), 1, T);
  const auto nll = PositionLosses(model, sample.targets.data(), T);
  auto mean = [&](int from, int to) {
    return std::accumulate(nll.begin() + from, nll.begin() + to, 0.0) / std::max(1, to - from);
  };
  return mean(T - T / 10, T) - mean(T / 10, T / 5);
}

double InContextScore(LanguageModel& model, const std::vector<int32_t>& repeated) {
  const int T = int(repeated.size()), half = T / 2;
  model.Forward(repeated.data(), 1, T);
  const auto nll = PositionLosses(model, repeated.data() + 1, T - 1);  // position t predicts repeated[t + 1]
  // targets in the first half (t + 1 < half) cannot be copied from context
  const double early = std::accumulate(nll.begin(), nll.begin() + std::max(0, half - 1), 0.0);
  const double late = std::accumulate(nll.begin() + std::max(0, half - 1), nll.end(), 0.0);
  return late / std::max(1, T - half) - early / std::max(1, half - 1);
}

const std::vector<std::pair<const char*, double HeadScores::*>>& ScoreFields() {
  static const std::vector<std::pair<const char*, double HeadScores::*>> fields = {
      {"previous_token", &HeadScores::previous_token},
      {"duplicate_token", &HeadScores::duplicate_token},
      {"induction", &HeadScores::induction},
      {"answer_induction", &HeadScores::answer_induction},
      {"entropy", &HeadScores::entropy},
      {"entropy_ratio", &HeadScores::entropy_ratio},
      {"mean_distance", &HeadScores::mean_distance},
      {"sink_mass", &HeadScores::sink_mass}};
  return fields;
}

HeadSurvey SurveyHeads(LanguageModel& model, const Task& task, int T, int samples, uint64_t seed) {
  Rng rng = SplitRng(seed, Split::kTest, T);
  HeadSurvey survey;
  const std::vector<int32_t> alphabet = TaskAlphabet(task, T, seed);
  for (int i = 0; i < samples; ++i) {
    Batch sample = task.Sample(1, T, rng, Split::kTest);
    const auto repeated = RepeatedRandomSequence(T / 2, alphabet, rng);
    auto layers = AnalyzeHeads(model, sample.tokens, sample.mask, repeated);
    model.Forward(sample.tokens.data(), 1, T);
    for (int l = 0; l < model.n_layers(); ++l) {
      for (const auto& [k, v] : model.channel(l).Stats())
        survey.channel_stats["layers." + std::to_string(l) + "." + k] += v / samples;
      const auto routes = model.channel(l).Routes();
      for (int t = 0; t < int(routes.size()); ++t)
        for (int e : routes[t]) {
          auto& row = survey.expert_roles[l][task.Role(sample, 0, t)];
          if (int(row.size()) <= e) row.resize(e + 1, 0.0);
          row[e] += 1;
        }
    }
    survey.in_context += InContextScore(model, repeated) / samples;
    if (task.Head() == "lm") survey.text_in_context += TextInContextScore(model, sample) / samples;
    const auto sim = MapSimilarity(layers);
    if (i == 0) {
      survey.similarity.assign(sim.size(), std::vector<double>(sim.size(), 0.0));
      for (const auto& l : layers) survey.mean.emplace_back(l.heads.size());
    }
    for (size_t a = 0; a < sim.size(); ++a)
      for (size_t b = 0; b < sim.size(); ++b) survey.similarity[a][b] += sim[a][b] / samples;
    for (size_t l = 0; l < layers.size(); ++l)
      for (size_t h = 0; h < layers[l].heads.size(); ++h)
        for (const auto& [name, field] : ScoreFields()) survey.mean[l][h].*field += layers[l].heads[h].*field / samples;
    if (i < kShownSamples) {
      ShownSample shown{sample.tokens, sample.mask, {}};
      for (const auto& l : layers) shown.maps.push_back(l.task_maps);
      survey.shown.push_back(std::move(shown));
    }
    if (i == 0) survey.first = std::move(layers);
  }
  for (auto& [layer, roles] : survey.expert_roles) {
    size_t experts = 0;
    for (const auto& [role, row] : roles) experts = std::max(experts, row.size());
    for (auto& [role, row] : roles) {
      row.resize(experts, 0.0);
      const double total = std::accumulate(row.begin(), row.end(), 0.0);
      for (auto& x : row) x /= total;
    }
  }
  return survey;
}

std::vector<int32_t> RepeatedRandomSequence(int half, const std::vector<int32_t>& alphabet, Rng& rng) {
  std::vector<int32_t> seq(2 * size_t(half));
  for (int i = 0; i < half; ++i) seq[i] = seq[i + half] = alphabet[rng.Int(0, int64_t(alphabet.size()))];
  return seq;
}

std::vector<int32_t> RepeatedRandomSequence(int half, int vocab, Rng& rng) {
  std::vector<int32_t> alphabet(vocab);
  std::iota(alphabet.begin(), alphabet.end(), 0);
  return RepeatedRandomSequence(half, alphabet, rng);
}

std::vector<int32_t> TaskAlphabet(const Task& task, int T, uint64_t seed) {
  Rng rng(seed ^ 0xa1fabe7ULL);  // its own stream: the survey's draws do not depend on it
  const Batch sample = task.Sample(16, T, rng, Split::kValidation);
  std::vector<int32_t> alphabet(sample.tokens);
  std::sort(alphabet.begin(), alphabet.end());
  alphabet.erase(std::unique(alphabet.begin(), alphabet.end()), alphabet.end());
  return alphabet;
}

}  // namespace mixlab
