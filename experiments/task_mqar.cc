// Multi-query associative recall (Arora et al. 2023, Zoology). A sequence opens with n_pairs key-value
// pairs (keys from the lower half of the vocabulary, distinct; values from the upper half); the rest is
// filler (token 0) with every key asked again once at a random even offset. The target at a query is the
// value bound to that key earlier; only those positions are scored.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "experiments/task.h"
#include "mixers/tensor.h"

namespace mixlab {
namespace {

struct MqarOptions : Options {
  int vocab = 16;
  int pairs = 4;
  std::string placement = "power-law";
  float alpha = 0.1f;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary size (keys: [1, vocab/2), values: [vocab/2, vocab)); Zoology uses 8192, which at CPU budgets leaves small models on a long 1/pairs plateau", 8, 1 << 20);
    v.Int("pairs", pairs, "key-value pairs per sequence (each queried once)", 1, 1 << 16);
    v.Choice("placement", placement, "where queries fall in the remaining sequence", {"uniform", "power-law"});
    v.Float("alpha", alpha, "power-law exponent for query gaps (Zoology uses 0.01..0.1; smaller favours near gaps)", 0.001f, 10.0f);
  }
};

class MqarTask : public Task {
 public:
  explicit MqarTask(const MqarOptions& o) : o_(o) {
    if (o.pairs > o.vocab / 2 - 1)
      throw UsageError("task 'mqar': --mqar.pairs " + std::to_string(o.pairs) + " needs at least that many distinct keys; --mqar.vocab " +
                       std::to_string(o.vocab) + " gives " + std::to_string(o.vocab / 2 - 1));
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

  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int P = o_.pairs, half = o_.vocab / 2;
    const int slots = (T - 2 * P) / 2;  // query slots at offsets 2P + 2*slot
    std::vector<double> weights(slots);
    for (int s = 0; s < slots; ++s)
      weights[s] = o_.placement == "uniform" ? 1.0 : std::pow(double(s + 1), -o_.alpha);
    std::vector<int> keys(half - 1);
    for (int b = 0; b < B; ++b) {
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      int32_t* tgt = batch.targets.data() + int64_t(b) * T;
      float* mask = batch.mask.data() + int64_t(b) * T;
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
      std::vector<double> w = weights;
      for (int i = 0; i < P; ++i) {
        double total = 0;
        for (double x : w) total += x;
        double r = rng.Uniform() * total;
        int s = 0;
        while (s < slots - 1 && (r -= w[s]) > 0) ++s;
        while (w[s] == 0) s = (s + 1) % slots;
        w[s] = 0;
        const int pos = 2 * P + 2 * s;
        tok[pos] = keys[i];
        tgt[pos] = values[i];
        mask[pos] = 1.0f;
      }
    }
    return batch;
  }

 private:
  MqarOptions o_;
};

}  // namespace

TaskInfo MqarTaskInfo() {
  return TaskEntry<MqarTask, MqarOptions>("mqar", "multi-query associative recall (Zoology)");
}

}  // namespace mixlab
