// Copy: a random prefix of copy_len tokens from [0, vocab), a separator (id = vocab), then the model
// reproduces the prefix token by token. copy_len = 0 uses half the sequence. Scored on the copied tokens.
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct CopyOptions : Options {
  int vocab = 16;
  int copy_len = 0;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "content tokens (the separator is one more)", 2, 1 << 20);
    v.Int("copy-len", copy_len, "tokens to copy; 0 = half the sequence length", 0, 1 << 20);
  }
};

class CopyTask : public Task {
 public:
  explicit CopyTask(const CopyOptions& o) : o_(o) {}
  std::string Name() const override { return "copy"; }
  int Vocab() const override { return o_.vocab + 1; }
  int Length(int T) const { return o_.copy_len ? o_.copy_len : T / 2; }
  void CheckLength(int T) const override {
    if (T < 2 || T < 2 * Length(T))
      throw UsageError("task 'copy' needs sequence length >= 2 * copy-len (" + std::to_string(2 * Length(T)) +
                       " and >= 2), got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int L = Length(T);
    for (int b = 0; b < B; ++b) {
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      int32_t* tgt = batch.targets.data() + int64_t(b) * T;
      for (int i = 0; i < L; ++i) tok[i] = int32_t(rng.Int(0, o_.vocab));
      tok[L] = o_.vocab;
      for (int i = 0; i + 1 < L; ++i) tok[L + 1 + i] = tok[i];
      for (int i = 0; i < L; ++i) {
        tgt[L + i] = tok[i];
        batch.mask[int64_t(b) * T + L + i] = 1.0f;
      }
    }
    return batch;
  }

 private:
  CopyOptions o_;
};

}  // namespace

TaskInfo CopyTaskInfo() { return TaskEntry<CopyTask, CopyOptions>("copy", "copy a random prefix after a separator"); }

}  // namespace mixlab
