// Multi-query associative recall (Arora et al. 2023, Zoology). A sequence opens with n_pairs key-value
// pairs (keys from the lower half of the vocabulary, distinct; values from the upper half); the rest is
// filler (token 0) with every key asked again once at a random even offset. The target at a query is the
// value bound to that key earlier; only those positions are scored.
// Zoology trains on a mixture of (length, pairs) settings, short and easy ones included, and tests on the hard
// ones: `mixture` lists the training settings; each training sequence draws one uniformly (repeat an entry to
// weight it) and is padded after its own length with unscored filler. Validation and test use `pairs` at each
// evaluation length.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct MqarOptions : Options {
  int vocab = 16;
  int pairs = 4;
  std::string placement = "power-law";
  float alpha = 0.1f;
  std::string mixture;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab,
          "vocabulary size (keys: [1, vocab/2), values: [vocab/2, vocab)); Zoology uses 8192, which at CPU budgets "
          "leaves small models on a long 1/pairs plateau",
          8, 1 << 20);
    v.Int("pairs", pairs, "key-value pairs per sequence (each queried once)", 1, 1 << 16);
    v.Choice("placement", placement, "where queries fall in the remaining sequence", {"uniform", "power-law"});
    v.Float("alpha", alpha, "power-law exponent for query gaps (Zoology uses 0.01..0.1; smaller favours near gaps)",
            0.001f, 10.0f);
    v.String("mixture", mixture,
             "training only: LENGTH:PAIRS settings, comma-separated, one drawn per sequence (e.g. 64:4,128:8,256:16); "
             "empty = --mqar.pairs at the training length");
  }
};

struct Setting {
  int length, pairs;
};

// Parses "64:4,128:8" and checks every setting can be generated with `vocab`.
std::vector<Setting> ParseMixture(const std::string& text, int vocab) {
  std::vector<Setting> settings;
  if (text.empty()) return settings;
  for (const auto& entry : SplitList(text, ',', "--mqar.mixture")) {
    const UsageError malformed("--mqar.mixture entry '" + entry +
                               "': expected LENGTH:PAIRS with PAIRS >= 1, e.g. 64:4,128:8");
    const auto colon = entry.find(':');
    if (colon == std::string::npos) throw malformed;
    Setting s{};
    size_t used_length = 0, used_pairs = 0;
    try {
      s.length = std::stoi(entry.substr(0, colon), &used_length);
      s.pairs = std::stoi(entry.substr(colon + 1), &used_pairs);
    } catch (const std::exception&) {
      throw malformed;
    }
    if (used_length != colon || used_pairs != entry.size() - colon - 1 || s.pairs < 1) throw malformed;
    if (s.length < 4 * s.pairs)
      throw UsageError("--mqar.mixture entry '" + entry + "': " + std::to_string(s.pairs) +
                       " pairs need length >= " + std::to_string(4 * s.pairs));
    if (s.pairs > vocab / 2 - 1)
      throw UsageError("--mqar.mixture entry '" + entry + "': " + std::to_string(s.pairs) +
                       " pairs need that many distinct keys; --mqar.vocab " + std::to_string(vocab) + " gives " +
                       std::to_string(vocab / 2 - 1));
    settings.push_back(s);
  }
  return settings;
}

class MqarTask : public Task {
 public:
  explicit MqarTask(const MqarOptions& o) : o_(o), mixture_(ParseMixture(o.mixture, o.vocab)) {
    if (o.pairs > o.vocab / 2 - 1)
      throw UsageError("task 'mqar': --mqar.pairs " + std::to_string(o.pairs) +
                       " needs at least that many distinct keys; --mqar.vocab " + std::to_string(o.vocab) + " gives " +
                       std::to_string(o.vocab / 2 - 1));
  }
  std::string Name() const override { return "mqar"; }
  int Vocab() const override { return o_.vocab; }
  void CheckLength(int T) const override {
    if (T < 4 * o_.pairs)
      throw UsageError("task 'mqar' with " + std::to_string(o_.pairs) + " pairs needs sequence length >= " +
                       std::to_string(4 * o_.pairs) + ", got " + std::to_string(T));
  }

  std::string Role(const Batch& batch, int b, int t) const override {
    const size_t i = size_t(b) * batch.T + t;
    if (batch.mask[i] != 0) return "query";
    if (t < 2 * o_.pairs) return t % 2 ? "value" : "key";
    return batch.tokens[i] == 0 ? "filler" : "context";
  }

  void CheckTrainLength(int T) const override {
    if (mixture_.empty()) return CheckLength(T);
    for (const auto& s : mixture_)
      if (s.length > T)
        throw UsageError("--mqar.mixture setting " + std::to_string(s.length) + ":" + std::to_string(s.pairs) +
                         " is longer than the training length " + std::to_string(T) +
                         "; raise --train-len to at least " + std::to_string(s.length));
  }

  Batch Sample(int B, int T, Rng& rng, Split split) const override {
    const bool mixed = split == Split::kTrain && !mixture_.empty();
    mixed ? CheckTrainLength(T) : CheckLength(T);
    Batch batch(B, T);
    for (int b = 0; b < B; ++b) {
      const Setting s = mixed ? mixture_[rng.Int(0, int64_t(mixture_.size()))] : Setting{T, o_.pairs};
      const int64_t offset = int64_t(b) * T;
      FillSequence(batch.tokens.data() + offset, batch.targets.data() + offset, batch.mask.data() + offset, s, rng);
    }
    return batch;
  }

 private:
  // Writes one sequence of s.length tokens (the batch row is already filler 0, unscored, beyond it).
  void FillSequence(int32_t* tok, int32_t* tgt, float* mask, Setting s, Rng& rng) const {
    const int P = s.pairs, half = o_.vocab / 2;
    const int slots = (s.length - 2 * P) / 2;  // query slots at offsets 2P + 2*slot
    std::vector<double> weights(slots);
    for (int i = 0; i < slots; ++i) weights[i] = o_.placement == "uniform" ? 1.0 : std::pow(double(i + 1), -o_.alpha);
    std::vector<int> keys(half - 1);
    std::iota(keys.begin(), keys.end(), 1);
    for (int i = 0; i < P; ++i) std::swap(keys[i], keys[rng.Int(i, half - 1)]);  // partial shuffle: distinct keys
    std::vector<int> values(P);
    for (int i = 0; i < P; ++i) {
      values[i] = int(rng.Int(half, o_.vocab));
      tok[2 * i] = keys[i];
      tok[2 * i + 1] = values[i];
      tgt[2 * i] = values[i];  // predicting the value after its key is allowed but not scored
    }
    // choose P distinct slots, weighted, without replacement
    for (int i = 0; i < P; ++i) {
      double total = 0;
      for (double x : weights) total += x;
      double r = rng.Uniform() * total;
      int slot = 0;
      while (slot < slots - 1 && (r -= weights[slot]) > 0) ++slot;
      while (weights[slot] == 0) slot = (slot + 1) % slots;
      weights[slot] = 0;
      const int pos = 2 * P + 2 * slot;
      tok[pos] = keys[i];
      tgt[pos] = values[i];
      mask[pos] = 1.0f;
    }
  }

  MqarOptions o_;
  std::vector<Setting> mixture_;
};

}  // namespace

TaskInfo MqarTaskInfo() { return TaskEntry<MqarTask, MqarOptions>("mqar", "multi-query associative recall (Zoology)"); }

}  // namespace mixlab
