// Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs") and Performer (FAVOR+,
// Choromanski et al. 2021), which is the same scan with positive orthogonal random features.
//
//   q, k, v = x Wq, x Wk, x Wv (B, T, H*dh);  phi = elu(x)+1 or relu(x) (linear), or for performer
//   phi(x) = exp(W x' - |x'|^2/2 - c) / sqrt(m), x' = x / dh^(1/4) (optionally RoPE-rotated), W (m, dh) orthogonal
//   Gaussian blocks with chi-distributed row norms, c = the row max for queries (cancels in the normaliser) and 0
//   for keys (W x' - |x'|^2/2 <= |w|^2/2, bounded); W is redrawn every `redraw` training steps from the seed.
//   num_t = sum_{s<=t} (phi(q_t).phi(k_s)) v_s ;  den_t = sum_{s<=t} phi(q_t).phi(k_s)
//   o_t = num_t / (den_t + eps)  (normalize = true)  or  num_t  (normalize = false);  y = o Wo
//
// Computed chunkwise: quadratic inside a chunk of C tokens, a running dh x dh state (plus the dh key sum)
// across chunks, so cost is O(T * C * dh + T * dh^2) and memory O(T * H * dh) - no T x T buffer. The products
// inside a chunk are SmallGemm's register-blocked kernels, which skip the zero triangle of the causal mask. The
// context saves phi(q), phi(k), v, the pre-activation q, k and the normalisers; backward rescans the chunk states
// instead of storing them. Step keeps the running state, with the normaliser as one extra column of ones
// (O(1) per token).
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <vector>

#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/small_gemm.h"
#include "mixers/positional.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct LinearOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  std::string feature_map = "elu1";
  bool normalize = true;
  float eps = 1e-6f;
  int chunk = 64;
  std::string impl = "chunked";
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Choice("feature-map", feature_map, "phi applied to queries and keys", {"elu1", "relu"});
    v.Bool("normalize", normalize, "divide by the running sum of phi(q).phi(k) (+ eps)");
    v.Float("eps", eps, "added to the normaliser", 0.0f, 1.0f);
    v.Int("chunk", chunk, "tokens per chunk of the chunked scan (quadratic inside a chunk)", 1, 4096);
    v.Choice("impl", impl, "chunked scan, or the naive masked T x T reference", {"chunked", "naive"});
  }
};

struct PerformerOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  int n_features = 64;
  int redraw = 0;
  float eps = 1e-6f;
  int chunk = 64;
  float rope_base = 10000.0f;
  int seed = 0;
  std::string impl = "chunked";
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Int("n-features", n_features, "random features per head (m)", 1, 1 << 16);
    v.Int("redraw", redraw, "redraw the random features every N training steps; 0 = never", 0, 1 << 30);
    v.Float("eps", eps, "added to the normaliser", 0.0f, 1.0f);
    v.Int("chunk", chunk, "tokens per chunk of the chunked scan (quadratic inside a chunk)", 1, 4096);
    v.Float("rope-base", rope_base, "RoPE base (with --pos rope, applied to q and k before the features)", 1.0f, 1e9f);
    v.Int("seed", seed, "seed of the random features", 0, 1 << 30);
    v.Choice("impl", impl, "chunked scan, or the naive masked T x T reference", {"chunked", "naive"});
  }
};

// What the kernel needs from either option struct.
struct LinearConfig {
  int n_heads, d_head;
  std::string feature_map;  // elu1 | relu | favor
  bool normalize;
  float eps;
  int chunk;
  std::string impl;
  int n_features = 0, redraw = 0, seed = 0;
  float rope_base = 10000.0f;
};

LinearConfig ConfigOf(const LinearOptions& o) {
  return {o.n_heads, o.d_head, o.feature_map, o.normalize, o.eps, o.chunk, o.impl};
}
LinearConfig ConfigOf(const PerformerOptions& o) {
  return {o.n_heads, o.d_head, "favor", true, o.eps, o.chunk, o.impl, o.n_features, o.redraw, o.seed, o.rope_base};
}

struct LinearContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q_raw, k_raw, v, o;  // (B, T, H*dh)
  Buffer fq, fk;                 // phi(q), phi(k) (B, T, H*F)
  Buffer den;                    // (B, H, T) what each output row was divided by (1 unnormalised)
  Buffer dfq, dfk, dq, dk, dv, doutput;
  std::vector<int32_t> positions;
  RowMatrix W;  // performer's random features used by this forward
};

struct LinearState : CopyableState<LinearState> {
  int B = 0;
  Buffer S;  // (B, H, F, dh+1): sum phi(k) [v, 1]^T
};

class LinearAttention : public SequenceMixer<LinearContext, LinearState> {
 public:
  LinearAttention(const MixerDims& dims, const LinearConfig& cfg)
      : D_(dims.d_model), H_(cfg.n_heads), o_(cfg), dims_(dims) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, cfg.d_head);
    HD_ = H_ * dh_;
    favor_ = cfg.feature_map == "favor";
    elu_ = cfg.feature_map == "elu1";
    rope_ = dims.pos == "rope";
    if (rope_ && dh_ % 2 != 0) throw UsageError(dims.name + ": RoPE needs an even d-head, got " + std::to_string(dh_));
    F_ = favor_ ? cfg.n_features : dh_;
    HF_ = H_ * F_;
    if (favor_) W_ = DrawFeatures(0);
  }
  std::vector<ParamSpec> Params() const override { return QkvoParams(dims_, H_, HD_); }

  void Mix(const float* x, const int32_t* positions, int B, int T, float* y, LinearContext& c,
           const ForwardMode& mode) override {
    c.B = B;
    c.T = T;
    const int64_t N = int64_t(B) * T;
    c.x.assign(x, x + N * D_);
    c.positions.assign(positions, positions + N);
    for (auto* b : {&c.q_raw, &c.k_raw, &c.v, &c.o}) b->resize(N * HD_);
    for (auto* b : {&c.fq, &c.fk}) b->resize(N * HF_);
    c.den.resize(int64_t(B) * H_ * T);
    if (mode.training) UseDrawOfStep(mode.step);
    c.W = W_;
    LinearForward(x, P(kWq), c.q_raw.data(), N, D_, HD_);
    LinearForward(x, P(kWk), c.k_raw.data(), N, D_, HD_);
    LinearForward(x, P(kWv), c.v.data(), N, D_, HD_);
    Features(c.q_raw.data(), positions, N, true, c.W, c.fq.data());
    Features(c.k_raw.data(), positions, N, false, c.W, c.fk.data());
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      const int64_t head_d = b * T * HD_ + h * dh_, head_f = b * T * HF_ + h * F_;
      const float *q = c.fq.data() + head_f, *k = c.fk.data() + head_f, *v = c.v.data() + head_d;
      float *o = c.o.data() + head_d, *den = c.den.data() + bh * T;
      if (o_.impl == "naive") NaiveCausal(q, k, v, T, o, den);
      else ChunkedCausal(q, k, v, T, o, den);
      for (int64_t t = 0; t < T; ++t) {
        den[t] = Denominator(den[t]);
        for (int64_t j = 0; j < dh_; ++j) o[t * HD_ + j] /= den[t];
      }
    }
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(LinearContext& c, const float* dy, float* dx) override {
    const int64_t B = c.B, T = c.T, N = B * T;
    c.doutput.resize(N * HD_);  // every buffer below is written whole (per head, or elementwise), none accumulated
    for (auto* b : {&c.dfq, &c.dfk}) b->resize(N * HF_);
    for (auto* b : {&c.dq, &c.dk, &c.dv}) b->resize(N * HD_);
    LinearBackward(c.o.data(), P(kWo), dy, c.doutput.data(), G(kWo), N, HD_, D_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_, head_d = b * T * HD_ + h * dh_, head_f = b * T * HF_ + h * F_;
      // d num = do / den ; d den = -(do . o) / den (0 unnormalised), with the denominators saved by the forward.
      thread_local Buffer G, gden;
      G.resize(T * dh_);
      gden.resize(T);
      const float* den = c.den.data() + bh * T;
      for (int64_t t = 0; t < T; ++t) {
        const float *dO = c.doutput.data() + head_d + t * HD_, *O = c.o.data() + head_d + t * HD_;
        for (int64_t j = 0; j < dh_; ++j) G[t * dh_ + j] = dO[j] / den[t];
        gden[t] = o_.normalize ? -Dot(dO, O, dh_) / den[t] : 0.0f;
      }
      const float *q = c.fq.data() + head_f, *k = c.fk.data() + head_f, *v = c.v.data() + head_d;
      float *dq = c.dfq.data() + head_f, *dk = c.dfk.data() + head_f, *dv = c.dv.data() + head_d;
      if (o_.impl == "naive") NaiveCausalBackward(q, k, v, G.data(), gden.data(), T, dq, dk, dv);
      else ChunkedCausalBackward(q, k, v, G.data(), gden.data(), T, dq, dk, dv);
    }
    FeaturesBackward(c.q_raw.data(), c.positions.data(), N, true, c.W, c.fq, c.dfq, c.dq.data());
    FeaturesBackward(c.k_raw.data(), c.positions.data(), N, false, c.W, c.fk, c.dfk, c.dk.data());
    LinearBackward(c.x.data(), P(kWq), c.dq.data(), dx, G(kWq), N, D_, HD_);
    LinearBackward(c.x.data(), P(kWk), c.dk.data(), dx, G(kWk), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(kWv), c.dv.data(), dx, G(kWv), N, D_, HD_, true);
  }

  void InitState(LinearState& s, int B) const override {
    s.B = B;
    s.S.assign(int64_t(B) * H_ * F_ * (dh_ + 1), 0.0f);
  }

  void MixStep(const float* x, const int32_t* positions, float* y, LinearState& s) override {
    const int B = s.B, A = dh_ + 1;
    Buffer q(int64_t(B) * HD_), k(q.size()), v(q.size()), o(q.size()), fq(int64_t(B) * HF_), fk(fq.size());
    LinearForward(x, P(kWq), q.data(), B, D_, HD_);
    LinearForward(x, P(kWk), k.data(), B, D_, HD_);
    LinearForward(x, P(kWv), v.data(), B, D_, HD_);
    Features(q.data(), positions, B, true, W_, fq.data());
    Features(k.data(), positions, B, false, W_, fk.data());
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H_; ++h) {
        auto S = AsMatrix(s.S.data() + (int64_t(b) * H_ + h) * F_ * A, F_, A);
        Eigen::Map<const Eigen::RowVectorXf> qh(fq.data() + b * HF_ + h * F_, F_), kh(fk.data() + b * HF_ + h * F_, F_),
            vh(v.data() + b * HD_ + h * dh_, dh_);
        S.leftCols(dh_).noalias() += kh.transpose() * vh;
        S.col(dh_) += kh.transpose();
        const Eigen::RowVectorXf out = qh * S;
        Eigen::Map<Eigen::RowVectorXf>(o.data() + b * HD_ + h * dh_, dh_) = out.head(dh_) / Denominator(out[dh_]);
      }
    LinearForward(o.data(), P(kWo), y, B, HD_, D_);
  }

  // The implied kernel: M_ts = phi(q_t).phi(k_s) / (den_t + eps) (or unnormalised), s <= t.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t* positions, int T) override {
    Buffer q(int64_t(T) * HD_), k(q.size()), fq(int64_t(T) * HF_), fk(fq.size());
    LinearForward(x, P(kWq), q.data(), T, D_, HD_);
    LinearForward(x, P(kWk), k.data(), T, D_, HD_);
    Features(q.data(), positions, T, true, W_, fq.data());
    Features(k.data(), positions, T, false, W_, fk.data());
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) {
      RowMatrix M = (Feat(fq, 0, h, T) * Feat(fk, 0, h, T).transpose()).triangularView<Eigen::Lower>();
      for (int t = 0; t < T; ++t) M.row(t) /= Denominator(M.row(t).sum());
      maps.push_back(std::move(M));
    }
    return maps;
  }

  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, HD_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_fixed = int64_t(H_) * F_ * (dh_ + 1);
    const double C = std::min(o_.chunk, T);
    d.flops_per_token = 2.0 * 4 * D_ * HD_ + 2.0 * H_ * (C * (F_ + dh_ + 1) + 2.0 * F_ * (dh_ + 1)) +
                        (favor_ ? 2.0 * 2 * H_ * F_ * dh_ : 0.0);
    return d;
  }

 private:
  ConstStridedMap Feat(const Buffer& buf, int64_t b, int64_t h, int64_t T) const {
    return AsStrided(buf.data() + b * T * HF_ + h * F_, T, F_, HF_);
  }
  float Denominator(float den) const { return o_.normalize ? den + o_.eps : 1.0f; }
  static constexpr int64_t kFeatureBlock = 4096;  // elements per vectorised block of the elementwise feature maps
  float InputScale() const { return std::pow(float(dh_), -0.25f); }

  // Orthogonal random features (m, dh): Gaussian blocks orthogonalised by QR, rows rescaled to the norms of
  // independent Gaussian vectors (the paper's "regularised" ORF), from (seed, layer, draw).
  // The features of training step `step`'s draw (redraw > 0: draw step / redraw).
  void UseDrawOfStep(int64_t step) {
    if (!favor_ || o_.redraw <= 0) return;
    const int64_t draw = step / o_.redraw;
    if (draw != draw_) W_ = DrawFeatures(draw_ = draw);
  }

  // Loaded weights trained for `steps` steps: the last training forward ran at step steps - 1.
  void RestoreTrainedSteps(int64_t steps) override { UseDrawOfStep(std::max<int64_t>(steps - 1, 0)); }

  RowMatrix DrawFeatures(int64_t draw) const {
    Rng rng(uint64_t(o_.seed) * 1000003ULL + uint64_t(dims_.layer_index), uint64_t(draw));
    RowMatrix W(F_, dh_);
    for (int r0 = 0; r0 < F_; r0 += dh_) {
      Eigen::MatrixXf G(dh_, dh_);
      for (int i = 0; i < dh_; ++i)
        for (int j = 0; j < dh_; ++j) G(i, j) = float(rng.Normal());
      const Eigen::HouseholderQR<Eigen::MatrixXf> qr(G);
      const Eigen::MatrixXf Q = qr.householderQ();
      for (int i = 0; i < dh_ && r0 + i < F_; ++i) {
        double norm2 = 0;
        for (int j = 0; j < dh_; ++j) norm2 += std::pow(rng.Normal(), 2);
        // sign(R_ii) makes Q Haar-distributed; without it each column has a fixed-sign coordinate and the
        // estimator of exp(q.k) is biased (measured: 7% off softmax attention at any number of features)
        const float sign = qr.matrixQR()(i, i) < 0 ? -1.0f : 1.0f;
        W.row(r0 + i) = Q.col(i).transpose() * (sign * float(std::sqrt(norm2)));
      }
    }
    return W;
  }

  // phi of raw (N, HD) into out (N, H*F).
  void Features(const float* raw, const int32_t* positions, int64_t N, bool query, const RowMatrix& W,
                float* out) const {
    if (!favor_) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < N * HD_; i += kFeatureBlock) {
        const int64_t n = std::min(kFeatureBlock, N * HD_ - i);
        const auto r = Eigen::Map<const Eigen::ArrayXf>(raw + i, n);
        auto o = Eigen::Map<Eigen::ArrayXf>(out + i, n);
        if (elu_) o = r.min(0.0f).exp() + r.max(0.0f);  // x + 1 above 0, exp(x) below, without a (scalar) select
        else o = r.max(0.0f);
      }
      return;
    }
    Buffer xs(raw, raw + N * HD_);
    if (rope_) ApplyRope(xs.data(), positions, N, H_, dh_, o_.rope_base, false);
    const float scale = InputScale(), norm = 1.0f / std::sqrt(float(F_));
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int h = 0; h < H_; ++h) {
        Eigen::Map<Eigen::VectorXf> xv(xs.data() + n * HD_ + h * dh_, dh_);
        xv *= scale;
        Eigen::Map<Eigen::VectorXf> f(out + n * HF_ + h * F_, F_);
        f.noalias() = W * xv;
        const float shift = 0.5f * xv.squaredNorm() + (query ? f.maxCoeff() : 0.0f);
        f = ((f.array() - shift).exp() * norm).matrix();
      }
  }

  // draw (N, HD) = d raw from d phi (N, H*F), given phi itself.
  void FeaturesBackward(const float* raw, const int32_t* positions, int64_t N, bool query, const RowMatrix& W,
                        const Buffer& phi, const Buffer& dphi, float* draw) const {
    if (!favor_) {  // elu+1: phi' = 1 above 0, exp(x) below; relu: 1 or 0
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < N * HD_; i += kFeatureBlock) {
        const int64_t n = std::min(kFeatureBlock, N * HD_ - i);
        const auto r = Eigen::Map<const Eigen::ArrayXf>(raw + i, n),
                   g = Eigen::Map<const Eigen::ArrayXf>(dphi.data() + i, n);
        auto d = Eigen::Map<Eigen::ArrayXf>(draw + i, n);
        if (elu_) d = g * r.min(0.0f).exp();
        else d = (r > 0).select(g, 0.0f);
      }
      return;
    }
    Buffer xs(raw, raw + N * HD_);
    if (rope_) ApplyRope(xs.data(), positions, N, H_, dh_, o_.rope_base, false);
    const float scale = InputScale();
#pragma omp parallel
    {
      // Each thread's scratch, allocated once: a heap vector per row and head made the threads queue in free().
      Eigen::VectorXf xv(dh_), wg(dh_);
      Eigen::ArrayXf g(F_);
#pragma omp for schedule(static)
      for (int64_t n = 0; n < N; ++n)
        for (int h = 0; h < H_; ++h) {
          // phi_j = exp(w_j.x' - |x'|^2/2 - c)/sqrt(m), c a per-row constant: d x' = W^T (dphi*phi) - x' sum(dphi*phi)
          xv = Eigen::Map<const Eigen::VectorXf>(xs.data() + n * HD_ + h * dh_, dh_) * scale;
          g = Eigen::Map<const Eigen::ArrayXf>(dphi.data() + n * HF_ + h * F_, F_) *
              Eigen::Map<const Eigen::ArrayXf>(phi.data() + n * HF_ + h * F_, F_);
          wg.noalias() = W.transpose() * g.matrix();
          Eigen::Map<Eigen::VectorXf>(draw + n * HD_ + h * dh_, dh_) = (wg - xv * g.sum()) * scale;
        }
    }
    if (rope_) ApplyRope(draw, positions, N, H_, dh_, o_.rope_base, true);
  }

  // One head. q, k (T, F) with rows ld_f apart; v, num (T, dh) with rows ld_d apart.
  //   num_t = sum_{s<=t} (q_t . k_s) v_s ;  den_t = sum_{s<=t} q_t . k_s  (before Denominator)
  void NaiveCausal(const float* q, const float* k, const float* v, int64_t T, float* num, float* den) const {
    const RowMatrix Am =
        (AsStrided(q, T, F_, HF_) * AsStrided(k, T, F_, HF_).transpose()).triangularView<Eigen::Lower>();
    AsStrided(num, T, dh_, HD_).noalias() = Am * AsStrided(v, T, dh_, HD_);
    VectorMap(den, T) = Am.rowwise().sum();
  }

  // The same in chunks of C: Am = tril(q_c k_c^T) inside a chunk; across chunks the state S = sum k_s v_s^T
  // (F, dh) and the key sum z = sum k_s (F).
  void ChunkedCausal(const float* q, const float* k, const float* v, int64_t T, float* num, float* den) const {
    const int64_t C = std::min<int64_t>(o_.chunk, T), F = F_, dh = dh_, ldf = HF_, ldd = HD_;
    thread_local Buffer S, z, kt, Am;
    S.assign(F * dh, 0.0f);
    z.assign(F, 0.0f);
    kt.resize(F * C);
    Am.resize(C * C);
    for (int64_t t0 = 0; t0 < T; t0 += C) {
      const int64_t n = std::min(C, T - t0);
      const float *qc = q + t0 * ldf, *kc = k + t0 * ldf, *vc = v + t0 * ldd;
      float* nc = num + t0 * ldd;
      MaskedScores(qc, kc, n, kt.data(), Am.data());
      for (int64_t i = 0; i < n; ++i) den[t0 + i] = RowSum(Am.data() + i * n, i + 1) + Dot(qc + i * ldf, z.data(), F);
      SmallGemm(n, dh, n, Am.data(), n, 1, vc, ldd, nc, ldd, false, Band::kLowerA);
      SmallGemm(n, dh, F, qc, ldf, 1, S.data(), dh, nc, ldd, true);
      SmallGemm(F, dh, n, kc, 1, ldf, vc, ldd, S.data(), dh, true);
      for (int64_t s = 0; s < n; ++s) AddRow(kc + s * ldf, 1.0f, z.data(), F);
    }
  }

  // Am (n, n) = tril(q_c k_c^T), zero above the diagonal; kt (F, n) receives k_c^T.
  void MaskedScores(const float* qc, const float* kc, int64_t n, float* kt, float* Am) const {
    AsMatrix(kt, F_, n) = AsStrided(kc, n, F_, HF_).transpose();
    SmallGemm(n, n, F_, qc, HF_, 1, kt, n, Am, n, false, Band::kLowerC);
    for (int64_t i = 0; i < n; ++i) std::fill(Am + i * n + i + 1, Am + (i + 1) * n, 0.0f);
  }

  // Given G = d num (T, dh) and gden = d den (T) (the normaliser's gradient):
  //   P_ts = G_t . v_s + gden_t (s <= t);  dq_t = sum_{s<=t} P_ts k_s;  dk_s = sum_{t>=s} P_ts q_t;
  //   dv_s = sum_{t>=s} (q_t . k_s) G_t.  dq, dk (T, F) rows ld_f apart, dv (T, dh) rows ld_d apart; all written whole.
  void NaiveCausalBackward(const float* q, const float* k, const float* v, const float* G, const float* gden, int64_t T,
                           float* dq, float* dk, float* dv) const {
    const auto Q = AsStrided(q, T, F_, HF_), K = AsStrided(k, T, F_, HF_);
    const auto Gm = AsMatrix(G, T, dh_);
    const RowMatrix Pm = ((Gm * AsStrided(v, T, dh_, HD_).transpose()).colwise() + ConstVectorMap(gden, T))
                             .triangularView<Eigen::Lower>();
    const RowMatrix Am = (Q * K.transpose()).triangularView<Eigen::Lower>();
    AsStrided(dq, T, F_, HF_).noalias() = Pm * K;
    AsStrided(dk, T, F_, HF_).noalias() = Pm.transpose() * Q;
    AsStrided(dv, T, dh_, HD_).noalias() = Am.transpose() * Gm;
  }

  // Chunked: a forward scan for dq (state St, key sum z), a reverse scan for dk and dv (R = sum over later chunks
  // of G_t q_t^T (dh, F), r = sum of gden_t q_t (F)). P of every chunk is kept between the two scans.
  void ChunkedCausalBackward(const float* q, const float* k, const float* v, const float* G, const float* gden,
                             int64_t T, float* dq, float* dk, float* dv) const {
    const int64_t C = std::min<int64_t>(o_.chunk, T), F = F_, dh = dh_, ldf = HF_, ldd = HD_, chunks = (T + C - 1) / C;
    thread_local Buffer St, z, R, Rt, r, kt, vt, Am, Pm;
    St.assign(dh * F, 0.0f);
    z.assign(F, 0.0f);
    R.assign(dh * F, 0.0f);
    Rt.resize(F * dh);
    r.assign(F, 0.0f);
    kt.resize(F * C);
    vt.resize(dh * C);
    Am.resize(C * C);
    Pm.resize(chunks * C * C);
    for (int64_t i = 0; i < chunks; ++i) {  // forward scan: dq
      const int64_t t0 = i * C, n = std::min(C, T - t0);
      const float *kc = k + t0 * ldf, *vc = v + t0 * ldd, *Gc = G + t0 * dh;
      float *P = Pm.data() + i * C * C, *dqc = dq + t0 * ldf;
      AsMatrix(vt.data(), dh, n) = AsStrided(vc, n, dh, ldd).transpose();
      SmallGemm(n, n, dh, Gc, dh, 1, vt.data(), n, P, n, false, Band::kLowerC);
      for (int64_t a = 0; a < n; ++a) {
        float* row = P + a * n;
        for (int64_t b = 0; b <= a; ++b) row[b] += gden[t0 + a];
        std::fill(row + a + 1, row + n, 0.0f);
      }
      SmallGemm(n, F, n, P, n, 1, kc, ldf, dqc, ldf, false, Band::kLowerA);
      SmallGemm(n, F, dh, Gc, dh, 1, St.data(), F, dqc, ldf, true);
      for (int64_t a = 0; a < n; ++a) AddRow(z.data(), gden[t0 + a], dqc + a * ldf, F);
      SmallGemm(dh, F, n, vc, 1, ldd, kc, ldf, St.data(), F, true);
      for (int64_t s = 0; s < n; ++s) AddRow(kc + s * ldf, 1.0f, z.data(), F);
    }
    for (int64_t i = chunks - 1; i >= 0; --i) {  // reverse scan: dk, dv
      const int64_t t0 = i * C, n = std::min(C, T - t0);
      const float *qc = q + t0 * ldf, *kc = k + t0 * ldf, *vc = v + t0 * ldd, *Gc = G + t0 * dh;
      const float* P = Pm.data() + i * C * C;
      float *dkc = dk + t0 * ldf, *dvc = dv + t0 * ldd;
      MaskedScores(qc, kc, n, kt.data(), Am.data());
      SmallGemm(n, F, n, P, 1, n, qc, ldf, dkc, ldf, false, Band::kUpperA);
      SmallGemm(n, F, dh, vc, ldd, 1, R.data(), F, dkc, ldf, true);
      for (int64_t s = 0; s < n; ++s) AddRow(r.data(), 1.0f, dkc + s * ldf, F);
      SmallGemm(n, dh, n, Am.data(), 1, n, Gc, dh, dvc, ldd, false, Band::kUpperA);
      AsMatrix(Rt.data(), F, dh) = AsMatrix(R.data(), dh, F).transpose();
      SmallGemm(n, dh, F, kc, ldf, 1, Rt.data(), dh, dvc, ldd, true);
      SmallGemm(dh, F, n, Gc, 1, dh, qc, ldf, R.data(), F, true);
      for (int64_t a = 0; a < n; ++a) AddRow(qc + a * ldf, gden[t0 + a], r.data(), F);
    }
  }

  static float RowSum(const float* x, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
  static float Dot(const float* x, const float* y, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
    return s;
  }
  // y += a x
  static void AddRow(const float* x, float a, float* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  }

  int D_, H_, dh_ = 0, HD_ = 0, F_ = 0, HF_ = 0;
  LinearConfig o_;
  MixerDims dims_;
  bool favor_ = false, elu_ = true, rope_ = false;
  RowMatrix W_;  // performer: current random features (m, dh)
  int64_t draw_ = 0;
};

class Linear : public LinearAttention {
 public:
  Linear(const MixerDims& dims, const LinearOptions& o) : LinearAttention(dims, ConfigOf(o)) {}
};

class Performer : public LinearAttention {
 public:
  Performer(const MixerDims& dims, const PerformerOptions& o) : LinearAttention(dims, ConfigOf(o)) {}
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<Linear, LinearOptions>("linear", MixerKind::kSequence,
                                                   "causal linear attention (elu+1 / relu features), chunked scan")
                          .Tests({.extra_cases = {
                                      // relu kinks within eps of a sample would spoil the difference: smaller eps
                                      {"linear_relu_unnormalized",
                                       "none",
                                       {{"feature-map", "relu"}, {"normalize", "false"}},
                                       false,
                                       2e-2,
                                       1e-3f},
                                      {"linear_chunk3_dhead6", "none", {{"chunk", "3"}, {"d-head", "6"}}},
                                      {"linear_naive", "none", {{"impl", "naive"}}},
                                  }}));

MIXLAB_REGISTER_MIXER(
    Entry<Performer, PerformerOptions>("performer", MixerKind::kSequence,
                                       "Performer FAVOR+: positive orthogonal random features, chunked scan", {"rope"})
        .Tests({.extra_cases = {
                    {"performer_m24_chunk5", "rope", {{"n-features", "24"}, {"chunk", "5"}}},
                    {"performer_naive", "none", {{"impl", "naive"}, {"n-features", "8"}}},
                }}));

}  // namespace mixlab
