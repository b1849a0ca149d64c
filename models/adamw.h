// AdamW (Loshchilov and Hutter 2019) over the flat parameter buffer: decoupled weight decay applied only to
// parameters declared with weight_decay (not norms, biases, embeddings); linear warmup then cosine decay to
// min_lr_ratio * lr; global gradient-norm clipping.
#pragma once
#include <cstdint>
#include <vector>

#include "models/param_store.h"

namespace mixlab {

struct AdamWConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;
  float clip = 1.0f;  // 0 = no clipping
  int warmup = 100;
  int total_steps = 1000;
  float min_lr_ratio = 0.1f;
};

// Global L2 norm of a gradient buffer (accumulated in double, deterministic).
float GradientNorm(const float* g, int64_t n);

class AdamW {
 public:
  AdamW(ParamStore& store, const AdamWConfig& config);
  // Learning rate at step (0-based).
  float LearningRate(int step) const;
  // Clips, updates, and returns the global gradient norm before clipping.
  float Step(int step) { return Step(step, GradientNorm(store_.grads(), store_.size())); }
  // The same, given that norm (a caller that already computed it to check the gradients).
  float Step(int step, float grad_norm);
  Buffer& first_moment() { return m_; }
  Buffer& second_moment() { return v_; }

 private:
  ParamStore& store_;
  AdamWConfig config_;
  struct DecayRun {
    int64_t begin, end;  // [begin, end) of the flat buffer
    bool decay;
  };
  Buffer m_, v_;
  std::vector<DecayRun> runs_;  // in order, covering the whole buffer
};

}  // namespace mixlab
