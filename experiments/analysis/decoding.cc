#include "experiments/analysis/decoding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace mixlab {

namespace {

constexpr float kBanned = -std::numeric_limits<float>::infinity();

std::vector<double> Softmax(const float* z, int V) {
  const float m = *std::max_element(z, z + V);
  std::vector<double> p(V);
  double sum = 0;
  if (m == kBanned) return std::vector<double>(V, 1.0 / V);  // every token banned: fall back to uniform
  for (int v = 0; v < V; ++v) sum += p[v] = z[v] == kBanned ? 0.0 : std::exp(double(z[v] - m));
  for (auto& x : p) x /= sum;
  return p;
}

int Argmax(const std::vector<float>& z) { return int(std::max_element(z.begin(), z.end()) - z.begin()); }

// Entropy, top-1 probability and nucleus size of the model's own distribution.
DecodeStep Describe(const float* logits, int V, const DecodeSettings& s) {
  const auto p = Softmax(logits, V);
  DecodeStep d;
  for (double x : p)
    if (x > 0) d.entropy -= x * std::log(x);
  d.top1_prob = *std::max_element(p.begin(), p.end());
  d.nucleus_size = int(NucleusSet(p, s.top_p < 1 ? s.top_p : 0.9).size());
  return d;
}

int Choose(std::vector<float> z, const DecodeSettings& s, Rng& rng) {
  if (s.temperature <= 0) return Argmax(z);
  const int V = int(z.size());
  for (auto& x : z) x /= s.temperature;
  if (s.top_k > 0 && s.top_k < V) {
    std::vector<float> sorted = z;
    std::nth_element(sorted.begin(), sorted.begin() + (s.top_k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[s.top_k - 1];
    for (auto& x : z)
      if (x < kth) x = kBanned;
  }
  auto p = Softmax(z.data(), V);
  const auto keep = NucleusSet(p, s.top_p);
  double mass = 0;
  for (int v : keep) mass += p[v];
  double u = rng.Uniform() * mass;
  for (int v : keep)
    if ((u -= p[v]) <= 0) return v;
  return keep.back();
}

// Beam search through Step: every beam owns a decoding state; a kept candidate continues a clone of its parent's.
// Without an end token all beams grow together, so length normalisation only rescales the scores.
std::vector<DecodeStep> BeamSearch(LanguageModel& model, const std::vector<int32_t>& prompt, int n_new,
                                   const DecodeSettings& s) {
  struct Beam {
    std::vector<int32_t> seq;
    std::vector<DecodeStep> steps;
    double logp = 0;
    std::unique_ptr<LanguageModel::DecodeState> state;
    std::vector<float> logits;  // for the next token
  };
  const int V = model.vocab();
  auto advance = [&](Beam& b, int32_t token) {
    const int32_t position = int32_t(b.seq.size());
    model.Step(&token, &position, 1, b.logits.data(), *b.state);
    b.seq.push_back(token);
  };
  std::vector<Beam> beams(1);
  beams[0].state = model.NewDecodeState(1);
  beams[0].logits.resize(V);
  for (int32_t t : prompt) advance(beams[0], t);
  for (int step = 0; step < n_new; ++step) {
    struct Candidate {
      int beam, token;
      double logp;
    };
    std::vector<Candidate> candidates;
    for (int b = 0; b < int(beams.size()); ++b) {
      std::vector<float> z = beams[b].logits;
      PenaliseHistory(z, beams[b].seq, s);
      const auto p = Softmax(z.data(), V);
      for (int v = 0; v < V; ++v)
        if (p[v] > 0) candidates.push_back({b, v, beams[b].logp + std::log(p[v])});
    }
    const double norm = std::pow(double(step + 1), double(s.length_alpha));
    const size_t keep = std::min(candidates.size(), size_t(s.beam_width));
    std::partial_sort(candidates.begin(), candidates.begin() + long(keep), candidates.end(),
                      [&](const auto& a, const auto& b) {
                        if (a.logp / norm != b.logp / norm) return a.logp / norm > b.logp / norm;
                        return a.beam != b.beam ? a.beam < b.beam
                                                : a.token < b.token;  // ties: lowest beam, then lowest token (= argmax)
                      });
    std::vector<Beam> next(keep);
    for (size_t i = 0; i < keep; ++i) {
      const Beam& parent = beams[candidates[i].beam];
      Beam& child = next[i];
      child.seq = parent.seq;
      child.steps = parent.steps;
      child.logp = candidates[i].logp;
      child.state = LanguageModel::CloneDecodeState(*parent.state);
      child.logits.resize(V);
      DecodeStep d = Describe(parent.logits.data(), V, s);
      d.token = candidates[i].token;
      child.steps.push_back(d);
      advance(child, candidates[i].token);
    }
    beams = std::move(next);
  }
  return beams[0].steps;
}

}  // namespace

std::vector<int> NucleusSet(const std::vector<double>& probs, double p) {
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  std::vector<int> set;
  double mass = 0;
  for (int v : order) {
    if (probs[v] <= 0) break;
    set.push_back(v);
    mass += probs[v];
    if (mass >= p - 1e-12) break;
  }
  return set;
}

void PenaliseHistory(std::vector<float>& logits, const std::vector<int32_t>& history, const DecodeSettings& s) {
  if (s.repetition_penalty != 1) {
    for (int32_t t : std::set<int32_t>(history.begin(), history.end()))
      logits[t] = logits[t] > 0 ? logits[t] / s.repetition_penalty : logits[t] * s.repetition_penalty;
  }
  const int n = s.no_repeat_ngram;
  if (n <= 0 || int(history.size()) < n - 1) return;
  const size_t H = history.size();
  for (size_t i = 0; i + size_t(n) <= H; ++i)  // an earlier n-gram whose first n-1 tokens equal the current suffix
    if (std::equal(history.begin() + long(i), history.begin() + long(i) + n - 1, history.end() - (n - 1)))
      logits[history[i + n - 1]] = kBanned;
}

std::vector<DecodeStep> Generate(LanguageModel& model, const std::vector<int32_t>& prompt, int n_new,
                                 const DecodeSettings& s) {
  const int V = model.vocab();
  std::vector<DecodeStep> steps;
  if (s.beam_width > 0) return BeamSearch(model, prompt, n_new, s);
  Rng rng(s.seed, 0xdec0de);
  auto state = model.NewDecodeState(1);
  std::vector<float> logits(V);
  std::vector<int32_t> seq;
  auto feed = [&](int32_t token) {
    const int32_t position = int32_t(seq.size());
    model.Step(&token, &position, 1, logits.data(), *state);
    seq.push_back(token);
  };
  for (int32_t t : prompt) feed(t);
  for (int i = 0; i < n_new; ++i) {
    DecodeStep d = Describe(logits.data(), V, s);
    std::vector<float> z = logits;
    PenaliseHistory(z, seq, s);
    d.token = Choose(std::move(z), s, rng);
    steps.push_back(d);
    feed(d.token);
  }
  return steps;
}

}  // namespace mixlab
