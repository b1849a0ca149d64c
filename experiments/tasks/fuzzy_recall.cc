// MAD fuzzy in-context recall (Poli et al. 2024): keys and values are motifs of 1..k_motif and 1..v_motif distinct
// adjacent tokens (keys from [0, n/2), values from [n/2, n), n = vocab - 2), so a key may be a prefix of another.
// Pairs fill the sequence (a repeated key keeps its value; the probe pair is placed at a random point), then the
// copy prefix (vocab - 1), the probe key and its value; the front is padded with vocab - 2. Training draws key
// sizes at random and trains on every next token; evaluation uses keys of the largest size and scores the probe
// value's tokens. MAD's defaults: vocab 16, motifs up to 3.
#include <map>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct FuzzyRecallOptions : Options {
  int vocab = 16;
  int k_motif = 3;
  int v_motif = 3;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary including the copy prefix and the pad token", 6, 1 << 20);
    v.Int("k-motif", k_motif, "largest number of tokens in a key", 1, 64);
    v.Int("v-motif", v_motif, "largest number of tokens in a value", 1, 64);
  }
};

using Motif = std::vector<int32_t>;

class FuzzyRecallTask : public Task {
 public:
  explicit FuzzyRecallTask(const FuzzyRecallOptions& o) : o_(o) {
    const int half = (o.vocab - 2) / 2;
    if (o.k_motif > half || o.v_motif > (o.vocab - 2) - half)
      throw UsageError("task 'fuzzy-recall': motifs of distinct tokens need k-motif <= " + std::to_string(half) +
                       " and v-motif <= " + std::to_string(o.vocab - 2 - half) + " at vocab " +
                       std::to_string(o.vocab));
  }
  std::string Name() const override { return "fuzzy-recall"; }
  int Vocab() const override { return o_.vocab; }
  int MaxPair() const { return o_.k_motif + o_.v_motif; }
  void CheckLength(int T) const override {
    if (T < 4 * MaxPair())
      throw UsageError("task 'fuzzy-recall' needs sequence length >= 4 * (k-motif + v-motif) = " +
                       std::to_string(4 * MaxPair()) + ", got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int n = o_.vocab - 2, half = n / 2;
    const bool train = split == Split::kTrain;
    auto key_size = [&] { return train ? int(rng.Int(1, o_.k_motif + 1)) : o_.k_motif; };
    for (int b = 0; b < B; ++b) {
      std::map<Motif, Motif> kv;
      const Motif probe_k = DistinctMotif(0, half, key_size(), rng),
                  probe_v = DistinctMotif(half, n, int(rng.Int(1, o_.v_motif + 1)), rng);
      kv[probe_k] = probe_v;
      const int probe_len = int(probe_k.size() + probe_v.size());
      const int limit = T - probe_len - MaxPair();                  // pairs are added while the sequence is shorter
      const int probe_at = int(rng.Int(0, limit - MaxPair() + 1));  // early enough to be placed before the limit
      bool probe_added = false;
      std::vector<int32_t> seq;
      while (int(seq.size()) < limit) {
        Motif k, v;
        if (!probe_added && int(seq.size()) >= probe_at) {
          k = probe_k;
        } else {
          k = DistinctMotif(0, half, key_size(), rng);
        }
        auto it = kv.find(k);
        v = it != kv.end() ? it->second : (kv[k] = DistinctMotif(half, n, int(rng.Int(1, o_.v_motif + 1)), rng));
        probe_added |= k == probe_k;
        seq.insert(seq.end(), k.begin(), k.end());
        seq.insert(seq.end(), v.begin(), v.end());
      }
      seq.push_back(o_.vocab - 1);
      seq.insert(seq.end(), probe_k.begin(), probe_k.end());
      seq.insert(seq.end(), probe_v.begin(), probe_v.end());
      std::vector<int32_t> padded(size_t(T + 1) - seq.size(), o_.vocab - 2);
      padded.insert(padded.end(), seq.begin(), seq.end());
      std::vector<bool> scored(padded.size(), false);
      for (size_t i = padded.size() - probe_v.size(); i < padded.size(); ++i) scored[i] = true;
      FillNextToken(batch, b, padded, scored, split);
    }
    return batch;
  }

 private:
  // `size` distinct tokens from [lo, hi), in random order.
  static Motif DistinctMotif(int lo, int hi, int size, Rng& rng) {
    Motif pool(hi - lo);
    for (int i = 0; i < hi - lo; ++i) pool[i] = lo + i;
    for (int i = 0; i < size; ++i) std::swap(pool[i], pool[rng.Int(i, hi - lo)]);
    pool.resize(size);
    return pool;
  }
  FuzzyRecallOptions o_;
};

}  // namespace

TaskInfo FuzzyRecallTaskInfo() {
  return TaskEntry<FuzzyRecallTask, FuzzyRecallOptions>("fuzzy-recall",
                                                        "MAD fuzzy in-context recall: multi-token keys and values");
}

}  // namespace mixlab
