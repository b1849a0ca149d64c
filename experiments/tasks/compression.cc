// MAD compression (Poli et al. 2024): T - 1 random content tokens, each replaced by a noise token with probability
// frac_noise, then the compression token (vocab - 1). The model reads the sequence with its mixers and must
// reconstruct every content token from the one vector at the compression token: it is built with MAD's
// compression decoder (ModelConfig head "compression", models/compression_decoder.h) instead of the LM head.
// Scored at every content position (noise positions carry nothing to reconstruct). MAD's defaults: vocab 16, T 32,
// no noise.
#include "experiments/tasks/task.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {
namespace {

struct CompressionOptions : Options {
  int vocab = 16;
  int noise_vocab = 0;
  float frac_noise = 0.0f;
  void Visit(OptionVisitor& v) override {
    v.Int("vocab", vocab, "vocabulary including the compression token and the noise tokens", 3, 1 << 20);
    v.Int("noise-vocab", noise_vocab, "noise tokens (taken from the vocabulary)", 0, 1 << 20);
    v.Float("frac-noise", frac_noise, "probability that a content token is replaced by a noise token", 0.0f, 0.99f);
  }
};

class CompressionTask : public Task {
 public:
  explicit CompressionTask(const CompressionOptions& o) : o_(o), content_(o.vocab - 1 - o.noise_vocab) {
    if (content_ < 1)
      throw UsageError("task 'compression': --compression.noise-vocab " + std::to_string(o.noise_vocab) +
                       " leaves no content tokens in --compression.vocab " + std::to_string(o.vocab) +
                       " (one is the compression token)");
    if (o.frac_noise > 0 && o.noise_vocab == 0)
      throw UsageError("task 'compression': --compression.frac-noise > 0 needs --compression.noise-vocab > 0");
  }
  std::string Name() const override { return "compression"; }
  int Vocab() const override { return o_.vocab; }
  std::string Head() const override { return "compression"; }
  void CheckLength(int T) const override {
    if (T < 2) throw UsageError("task 'compression' needs sequence length >= 2, got " + std::to_string(T));
  }
  std::string Role(const Batch& batch, int b, int t) const override {
    if (t == batch.T - 1) return "compression";
    return batch.mask[size_t(b) * batch.T + t] != 0 ? "content" : "noise";
  }
  Batch Sample(int B, int T, Rng& rng, Split) const override {
    CheckLength(T);
    Batch batch(B, T);
    for (int b = 0; b < B; ++b) {
      for (int t = 0; t < T - 1; ++t) {
        const size_t i = size_t(b) * T + t;
        const bool noise = o_.frac_noise > 0 && rng.Uniform() < o_.frac_noise;
        batch.tokens[i] = noise ? int32_t(content_ + rng.Int(0, o_.noise_vocab)) : int32_t(rng.Int(0, content_));
        batch.targets[i] = batch.tokens[i];
        batch.mask[i] = noise ? 0.0f : 1.0f;
      }
      const size_t last = size_t(b) * T + T - 1;
      batch.tokens[last] = batch.targets[last] = o_.vocab - 1;
    }
    return batch;
  }

 private:
  CompressionOptions o_;
  int content_;
};

}  // namespace

TaskInfo CompressionTaskInfo() {
  return TaskEntry<CompressionTask, CompressionOptions>(
      "compression", "MAD compression: reconstruct the whole sequence from the model's last position");
}

}  // namespace mixlab
