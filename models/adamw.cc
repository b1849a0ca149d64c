#include "models/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace mixlab {

float GradientNorm(const float* g, int64_t n) {
  // Partial sums over fixed blocks, added in order: the same result for any number of threads.
  constexpr int64_t kBlock = 1 << 14;
  std::vector<double> partial((n + kBlock - 1) / kBlock, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < int64_t(partial.size()); ++b) {
    const int64_t end = std::min(n, (b + 1) * kBlock);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b * kBlock; i < end; ++i) s += double(g[i]) * g[i];
    partial[b] = s;
  }
  double s = 0;
  for (double p : partial) s += p;
  return float(std::sqrt(s));
}

AdamW::AdamW(ParamStore& store, const AdamWConfig& config)
    : store_(store), config_(config), m_(store.size(), 0.0f), v_(store.size(), 0.0f) {
  // Runs of the flat buffer (parameters are stored back to back) with one decay flag.
  for (const auto& p : store.params()) {
    const int64_t begin = p.offset, end = p.offset + p.spec.Numel();
    if (!runs_.empty() && runs_.back().decay == p.spec.weight_decay && runs_.back().end == begin)
      runs_.back().end = end;
    else runs_.push_back({begin, end, p.spec.weight_decay});
  }
}

float AdamW::LearningRate(int step) const {
  const auto& c = config_;
  if (step < c.warmup) return c.lr * float(step + 1) / float(c.warmup);
  const int decay_steps = std::max(1, c.total_steps - c.warmup);
  const float progress = std::min(1.0f, float(step - c.warmup) / float(decay_steps));
  const float cosine = 0.5f * (1.0f + std::cos(float(M_PI) * progress));
  return c.lr * (c.min_lr_ratio + (1.0f - c.min_lr_ratio) * cosine);
}

float AdamW::Step(int step, float norm) {
  const int64_t n = store_.size();
  float* w = store_.values();
  float* g = store_.grads();
  const float clip_scale = (config_.clip > 0 && norm > config_.clip) ? config_.clip / norm : 1.0f;
  const float lr = LearningRate(step);
  const float b1 = config_.beta1, b2 = config_.beta2;
  const float bc1 = 1.0f - std::pow(b1, float(step + 1)), bc2 = 1.0f - std::pow(b2, float(step + 1));
  const float wd = config_.weight_decay, eps = config_.eps;
  float* m = m_.data();
  float* v = v_.data();
  // One parallel region: each thread updates its contiguous share of the buffer, run by run, so the decay factor is
  // a constant of each inner loop.
#pragma omp parallel
  {
    const int thread = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t lo = n * thread / threads, hi = n * (thread + 1) / threads;
    for (const DecayRun& run : runs_) {
      const int64_t begin = std::max(lo, run.begin), end = std::min(hi, run.end);
      const float decay = run.decay ? wd : 0.0f;
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const float gi = g[i] * clip_scale;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
        w[i] -= lr * (update + decay * w[i]);
      }
    }
  }
  return norm;
}

}  // namespace mixlab
