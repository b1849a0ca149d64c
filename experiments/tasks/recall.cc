// MAD in-context recall and noisy in-context recall (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
// Architectures"), following the MAD generators. Keys [0, n/2) and values [n/2, n) of n = vocab - 1 - noise_vocab
// content tokens; a sequence of key-value pairs (a repeated key keeps its value), each pair replaced by two noise
// tokens with probability frac_noise; then the copy prefix (vocab - 1), a probe key already shown, and its value.
// Trained on every next token; evaluated on the probe value. Defaults are MAD's: recall vocab 16 without noise;
// noisy recall vocab 32 with 16 noise tokens and 20% noise.
#include <map>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct RecallOptions : Options {
  int vocab = 16;
  int noise_vocab = 0;
  float frac_noise = 0.0f;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary including the copy prefix and the noise tokens", 4, 1 << 20);
    v.Int("noise-vocab", noise_vocab, "noise tokens (taken from the vocabulary)", 0, 1 << 20);
    v.Float("frac-noise", frac_noise, "probability that a pair slot holds two noise tokens instead", 0.0f, 0.99f);
  }
};
struct NoisyRecallOptions : RecallOptions {
  NoisyRecallOptions() {
    vocab = 32;
    noise_vocab = 16;
    frac_noise = 0.2f;
  }
};

class RecallTask : public Task {
 public:
  RecallTask(const RecallOptions& o, std::string name) : o_(o), name_(std::move(name)) {
    content_ = o.vocab - 1 - o.noise_vocab;
    if (content_ < 2)
      throw UsageError("task '" + name_ + "': vocab " + std::to_string(o.vocab) + " leaves " +
                       std::to_string(content_) + " key/value tokens after the copy prefix and " +
                       std::to_string(o.noise_vocab) + " noise tokens; need >= 2");
    if (o.frac_noise > 0 && o.noise_vocab == 0)
      throw UsageError("task '" + name_ + "': frac-noise > 0 needs noise-vocab > 0");
  }
  std::string Name() const override { return name_; }
  int Vocab() const override { return o_.vocab; }
  void CheckLength(int T) const override {
    if (T < 4 || T % 2)
      throw UsageError("task '" + name_ + "' needs an even sequence length >= 4, got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int half = content_ / 2, copy_prefix = o_.vocab - 1;
    const int n_pairs = (T - 2) / 2;
    for (int b = 0; b < B; ++b) {
      std::vector<int32_t> seq;
      std::map<int, int> kv;
      std::vector<int> shown;
      const int64_t not_noise = rng.Int(0, n_pairs);  // at least one real pair
      for (int i = 0; i < n_pairs; ++i) {
        if (o_.frac_noise > 0 && i != not_noise && rng.Uniform() < o_.frac_noise) {
          for (int j = 0; j < 2; ++j) seq.push_back(int32_t(content_ + rng.Int(0, o_.noise_vocab)));
          continue;
        }
        const int k = int(rng.Int(0, half));
        if (!kv.count(k)) {
          kv[k] = int(rng.Int(half, content_));
          shown.push_back(k);
        }
        seq.push_back(k);
        seq.push_back(kv[k]);
      }
      const int probe = shown[rng.Int(0, int64_t(shown.size()))];
      seq.insert(seq.end(), {copy_prefix, probe, kv[probe]});
      std::vector<bool> scored(seq.size(), false);
      scored.back() = true;
      FillNextToken(batch, b, seq, scored, split);
    }
    return batch;
  }

 private:
  RecallOptions o_;
  std::string name_;
  int content_ = 0;
};

}  // namespace

TaskInfo InContextRecallTaskInfo() {
  return TaskInfo{"in-context-recall", "MAD in-context recall: key-value pairs, then recall one key's value",
                  [] { return std::make_unique<RecallOptions>(); },
                  [](const Options& o) -> std::unique_ptr<Task> {
                    return std::make_unique<RecallTask>(static_cast<const RecallOptions&>(o), "in-context-recall");
                  }};
}

TaskInfo NoisyRecallTaskInfo() {
  return TaskInfo{"noisy-recall", "MAD noisy in-context recall: recall among noise tokens",
                  [] { return std::make_unique<NoisyRecallOptions>(); },
                  [](const Options& o) -> std::unique_ptr<Task> {
                    return std::make_unique<RecallTask>(static_cast<const RecallOptions&>(o), "noisy-recall");
                  }};
}

}  // namespace mixlab
