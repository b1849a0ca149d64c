// Induction heads (as in the Mamba paper's synthetic, after Olsson et al. 2022). Random tokens from
// [0, vocab); a trigger token (id = vocab) appears once at a random position followed by the answer token;
// the sequence ends with the trigger again and the model must recall the answer. Only the final position
// is scored.
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct InductionOptions : Options {
  int vocab = 16;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "content tokens (the trigger is one more)", 2, 1 << 20);
  }
};

class InductionTask : public Task {
 public:
  explicit InductionTask(const InductionOptions& o) : o_(o) {}
  std::string Name() const override { return "induction"; }
  int Vocab() const override { return o_.vocab + 1; }
  void CheckLength(int T) const override {
    if (T < 4) throw UsageError("task 'induction' needs sequence length >= 4, got " + std::to_string(T));
  }
  std::string Role(const Batch& batch, int b, int t) const override {
    const int32_t* tok = batch.tokens.data() + size_t(b) * batch.T;
    if (batch.mask[size_t(b) * batch.T + t] != 0) return "query";
    if (tok[t] == o_.vocab) return "trigger";
    return t > 0 && tok[t - 1] == o_.vocab ? "answer" : "noise";
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int trigger = o_.vocab;
    for (int b = 0; b < B; ++b) {
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      for (int t = 0; t < T; ++t) tok[t] = int32_t(rng.Int(0, o_.vocab));
      const int p = int(rng.Int(0, T - 3));  // first trigger; its answer at p + 1 < T - 1
      tok[p] = trigger;
      tok[T - 1] = trigger;
      for (int t = 0; t < T - 1; ++t) batch.targets[int64_t(b) * T + t] = tok[t + 1];
      batch.targets[int64_t(b) * T + T - 1] = tok[p + 1];
      batch.mask[int64_t(b) * T + T - 1] = 1.0f;
    }
    return batch;
  }

 private:
  InductionOptions o_;
};

}  // namespace

TaskInfo InductionTaskInfo() {
  return TaskEntry<InductionTask, InductionOptions>("induction", "induction heads: recall the token after the trigger");
}

}  // namespace mixlab
