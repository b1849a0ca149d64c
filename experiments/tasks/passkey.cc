// Passkey retrieval (Mohtashami and Jaggi 2023): a cyclic filler "text" (filler tokens 10..10+F-1 in a fixed order
// from a random phase), a key marker followed by a passkey of `digits` digits (0-9) at a chosen depth, and at the
// end a query marker after which the model reproduces the passkey digit by digit (teacher forced). depth is the
// passkey's position as a fraction of the filler, or -1 for uniform at random. Scored on the passkey digits.
#include <cmath>

#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct PasskeyOptions : Options {
  int digits = 5;
  int filler = 6;
  float depth = -1.0f;
  void Visit(OptionVisitor& v) override {
    v.Int("digits", digits, "passkey length in digits", 1, 64);
    v.Int("filler", filler, "distinct tokens in the repeating filler sentence", 1, 1000);
    v.Float("depth", depth, "passkey position as a fraction of the filler (0 = start, 1 = end); -1 = uniform", -1.0f,
            1.0f);
  }
};

class PasskeyTask : public Task {
 public:
  explicit PasskeyTask(const PasskeyOptions& o) : o_(o) {
    if (o.depth < 0 && o.depth != -1.0f)
      throw UsageError("task 'passkey': depth must be in [0, 1] or -1, got " + std::to_string(o.depth));
  }
  std::string Name() const override { return "passkey"; }
  int Vocab() const override { return 10 + o_.filler + 2; }
  void CheckLength(int T) const override {
    if (T < 2 * o_.digits + 2)
      throw UsageError("task 'passkey' with " + std::to_string(o_.digits) + " digits needs sequence length >= " +
                       std::to_string(2 * o_.digits + 2) + ", got " + std::to_string(T));
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    const int n = o_.digits, key = 10 + o_.filler, query = key + 1;
    const int text = T - n;  // filler with the key marker and passkey inside, then query + answers
    for (int b = 0; b < B; ++b) {
      int32_t* tok = batch.tokens.data() + int64_t(b) * T;
      const int64_t phase = rng.Int(0, o_.filler);
      for (int t = 0; t < text; ++t) tok[t] = int32_t(10 + (phase + t) % o_.filler);
      const int slots = text - (n + 1);  // start positions of [key, digits] inside the text
      const int at = o_.depth < 0 ? int(rng.Int(0, slots + 1)) : int(std::lround(o_.depth * slots));
      tok[at] = key;
      for (int i = 0; i < n; ++i) tok[at + 1 + i] = int32_t(rng.Int(0, 10));
      tok[text] = query;
      for (int i = 0; i < n; ++i) {
        if (i + 1 < n) tok[text + 1 + i] = tok[at + 1 + i];
        batch.targets[int64_t(b) * T + text + i] = tok[at + 1 + i];
        batch.mask[int64_t(b) * T + text + i] = 1.0f;
      }
    }
    return batch;
  }

 private:
  PasskeyOptions o_;
};

}  // namespace

TaskInfo PasskeyTaskInfo() {
  return TaskEntry<PasskeyTask, PasskeyOptions>(
      "passkey", "passkey retrieval: digits hidden at a depth in filler, asked for at the end");
}

}  // namespace mixlab
