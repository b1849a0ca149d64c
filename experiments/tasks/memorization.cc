// MAD memorization (Poli et al. 2024): a fixed key -> value map, the same for every sequence and every run (drawn
// from map-seed), over keys [0, n/2) and values [n/2, n), n = vocab - 1. Each sequence is pairs (key, insert
// token = vocab - 1); at the insert token the model outputs the key's value, which it can only know from its
// weights. Scored at every insert token, in training and evaluation alike. MAD's defaults: vocab 256.
#include <numeric>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct MemorizationOptions : Options {
  int vocab = 256;
  int map_seed = 12345;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary including the insert token", 4, 1 << 20);
    v.Int("map-seed", map_seed, "seed of the fixed key -> value map (independent of --seed)", 0, 1 << 30);
  }
};

class MemorizationTask : public Task {
 public:
  explicit MemorizationTask(const MemorizationOptions& o) : o_(o) {
    const int n = o.vocab - 1, half = n / 2;
    std::vector<int32_t> values(n - half);
    std::iota(values.begin(), values.end(), half);
    Rng rng(uint64_t(o.map_seed), 0x3e3);
    for (size_t i = values.size(); i > 1; --i) std::swap(values[i - 1], values[rng.Int(0, int64_t(i))]);
    value_of_.assign(values.begin(), values.begin() + half);
  }
  std::string Name() const override { return "memorization"; }
  int Vocab() const override { return o_.vocab; }
  void CheckLength(int T) const override {
    if (T < 2 || T % 2)
      throw UsageError("task 'memorization' needs an even sequence length >= 2, got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; t += 2) {
        const size_t i = size_t(b) * T + t;
        const int key = int(rng.Int(0, int64_t(value_of_.size())));
        batch.tokens[i] = key;
        batch.tokens[i + 1] = o_.vocab - 1;
        batch.targets[i + 1] = value_of_[key];
        batch.mask[i + 1] = 1.0f;
      }
    return batch;
  }

 private:
  MemorizationOptions o_;
  std::vector<int32_t> value_of_;
};

}  // namespace

TaskInfo MemorizationTaskInfo() {
  return TaskEntry<MemorizationTask, MemorizationOptions>(
      "memorization", "MAD memorization: a fixed key-value map learned in the weights");
}

}  // namespace mixlab
