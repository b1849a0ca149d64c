// Selective copying (Gu and Dao 2023, Mamba; MAD, Poli et al. 2024): n content tokens from [0, vocab - 2) scattered
// in order among blank tokens (vocab - 2), then the copy token (vocab - 1) and n blanks, at which the model
// outputs the content tokens in order. The content positions are a uniformly random ordered subset of the first
// T - n - 1 slots. Scored on the n answers. Defaults are MAD's: vocab 16, 16 tokens to copy.
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct SelectiveCopyOptions : Options {
  int vocab = 16;
  int tokens = 16;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary including the blank and copy tokens", 3, 1 << 20);
    v.Int("tokens", tokens, "content tokens to copy", 1, 1 << 20);
  }
};

class SelectiveCopyTask : public Task {
 public:
  explicit SelectiveCopyTask(const SelectiveCopyOptions& o) : o_(o) {}
  std::string Name() const override { return "selective-copy"; }
  int Vocab() const override { return o_.vocab; }
  void CheckLength(int T) const override {
    if (T < 2 * o_.tokens + 1)
      throw UsageError("task 'selective-copy' with " + std::to_string(o_.tokens) + " tokens needs sequence length >= " +
                       std::to_string(2 * o_.tokens + 1) + ", got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int n = o_.tokens, region = T - n - 1, blank = o_.vocab - 2;
    for (int b = 0; b < B; ++b) {
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      std::fill(tok, tok + T, blank);
      tok[region] = o_.vocab - 1;
      // ordered random subset of n slots of the region (selection sampling)
      int chosen = 0;
      for (int s = 0; s < region && chosen < n; ++s)
        if (rng.Uniform() * (region - s) < n - chosen) {
          const int32_t c = int32_t(rng.Int(0, o_.vocab - 2));
          tok[s] = c;
          batch.targets[int64_t(b) * T + region + 1 + chosen] = c;
          batch.mask[int64_t(b) * T + region + 1 + chosen] = 1.0f;
          ++chosen;
        }
    }
    return batch;
  }

 private:
  SelectiveCopyOptions o_;
};

}  // namespace

TaskInfo SelectiveCopyTaskInfo() {
  return TaskEntry<SelectiveCopyTask, SelectiveCopyOptions>(
      "selective-copy", "selective copying: copy the tokens scattered among blanks, in order");
}

}  // namespace mixlab
