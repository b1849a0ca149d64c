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
// across chunks, so cost is O(T * C * dh + T * dh^2) and memory O(T * H * dh) - no T x T buffer. The
// normaliser is handled as one extra value column of ones ("augmented values"), so one kernel serves both
// modes. The context saves phi(q), phi(k), the augmented v, the pre-activation q, k and the normalisers; backward
// rescans the chunk states instead of storing them. Step keeps the running state (O(1) per token).
#include <algorithm>
#include <cmath>
#include <vector>

#include "mixers/head_projections.h"
#include "mixers/matmul.h"
#include "mixers/positional.h"
#include "mixers/rng.h"
#include <Eigen/QR>
#include "mixers/mixer.h"
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
    v.Int("chunk", chunk, "tokens per chunk of the chunked scan", 1, 1 << 16);
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
    v.Int("chunk", chunk, "tokens per chunk of the chunked scan", 1, 1 << 16);
    v.Float("rope-base", rope_base, "RoPE base (with --pos rope, applied to q and k before the features)", 1.0f, 1e9f);
    v.Int("seed", seed, "seed of the random features", 0, 1 << 30);
    v.Choice("impl", impl, "chunked scan, or the naive masked T x T reference", {"chunked", "naive"});
  }
};

// What the kernel needs from either option struct.
struct LinearConfig {
  std::string name;
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
  return {"linear", o.n_heads, o.d_head, o.feature_map, o.normalize, o.eps, o.chunk, o.impl};
}
LinearConfig ConfigOf(const PerformerOptions& o) {
  return {"performer", o.n_heads, o.d_head, "favor", true, o.eps, o.chunk, o.impl, o.n_features, o.redraw, o.seed,
          o.rope_base};
}

struct LinearContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q_raw, k_raw, fq, fk, va, o;  // va: (B, H, T, dh+1) augmented values; fq, fk, q_raw, k_raw (B, T, HD)
  Buffer den;                             // (B, H, T) what each output row was divided by (1 unnormalised)
  Buffer dfq, dfk, dva, dq, dk, dv, dvbuf, doutput;
  std::vector<int32_t> positions;
  RowMatrix W;  // performer's random features used by this forward
};

struct LinearState : CopyableState<LinearState> {
  int B = 0;
  Buffer S;  // (B, H, F, dh+1): sum phi(k) [v, 1]^T
};

class LinearAttention : public Mixer {
 public:
  LinearAttention(const MixerDims& dims, const LinearConfig& cfg) : D_(dims.d_model), H_(cfg.n_heads), o_(cfg), dims_(dims) {
    dh_ = ResolveHeadWidth(cfg.name, D_, H_, cfg.d_head);
    HD_ = H_ * dh_;
    favor_ = cfg.feature_map == "favor";
    elu_ = cfg.feature_map == "elu1";
    rope_ = dims.pos == "rope";
    if (rope_ && dh_ % 2 != 0) throw UsageError(cfg.name + ": RoPE needs an even d-head, got " + std::to_string(dh_));
    F_ = favor_ ? cfg.n_features : dh_;
    HF_ = H_ * F_;
    if (favor_) W_ = DrawFeatures(0);
  }
  std::string Name() const override { return o_.name; }
  MixerKind Kind() const override { return MixerKind::kSequence; }
  std::vector<ParamSpec> Params() const override { return QkvoParams(dims_, HD_); }
  std::unique_ptr<MixerContext> NewContext() const override { return std::make_unique<LinearContext>(); }

  void Forward(const float* x, const int32_t* positions, int B, int T, float* y, MixerContext& base,
               const ForwardMode& mode) override {
    auto& c = static_cast<LinearContext&>(base);
    c.B = B;
    c.T = T;
    const int64_t N = int64_t(B) * T, A = dh_ + 1;
    c.x.assign(x, x + N * D_);
    c.positions.assign(positions, positions + N);
    for (auto* b : {&c.q_raw, &c.k_raw, &c.o, &c.dvbuf}) b->resize(N * HD_);
    for (auto* b : {&c.fq, &c.fk}) b->resize(N * HF_);
    c.va.resize(int64_t(B) * H_ * T * A);
    c.den.resize(int64_t(B) * H_ * T);
    if (favor_ && o_.redraw > 0 && mode.training) {
      const int64_t draw = mode.step / o_.redraw;
      if (draw != draw_) W_ = DrawFeatures(draw_ = draw);
    }
    c.W = W_;
    LinearForward(x, P(0), c.q_raw.data(), N, D_, HD_);
    LinearForward(x, P(1), c.k_raw.data(), N, D_, HD_);
    LinearForward(x, P(2), c.dvbuf.data(), N, D_, HD_);  // v, reshaped into va below
    Features(c.q_raw.data(), positions, N, true, c.W, c.fq.data());
    Features(c.k_raw.data(), positions, N, false, c.W, c.fk.data());
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      auto Va = AsMatrix(c.va.data() + bh * T * A, T, A);
      Va.leftCols(dh_) = AsStrided(c.dvbuf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      Va.col(dh_).setOnes();
      RowMatrix out(T, A);
      if (o_.impl == "naive") NaiveCausal(Feat(c.fq, b, h, T), Feat(c.fk, b, h, T), Va, out);
      else ChunkedCausal(Feat(c.fq, b, h, T), Feat(c.fk, b, h, T), Va, out);
      auto O = AsStrided(c.o.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      float* den = c.den.data() + bh * T;
      for (int64_t t = 0; t < T; ++t) {
        den[t] = Denominator(out(t, dh_));
        O.row(t) = out.row(t).head(dh_) / den[t];
      }
    }
    LinearForward(c.o.data(), P(3), y, N, HD_, D_);
  }

  void Backward(MixerContext& base, const float* dy, float* dx) override {
    auto& c = static_cast<LinearContext&>(base);
    const int64_t B = c.B, T = c.T, N = B * T, A = dh_ + 1;
    c.doutput.resize(N * HD_);  // every buffer below is written whole (per head, or elementwise), none accumulated
    for (auto* b : {&c.dfq, &c.dfk}) b->resize(N * HF_);
    for (auto* b : {&c.dq, &c.dk, &c.dv}) b->resize(N * HD_);
    LinearBackward(c.o.data(), P(3), dy, c.doutput.data(), G(3), N, HD_, D_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      auto Va = AsMatrix(c.va.data() + bh * T * A, T, A);
      auto dO = AsStrided(c.doutput.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      auto O = AsStrided(c.o.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      // G = d[num, den]: dnum = do / d ; dden = -(do . o) / d, with the denominators d saved by the forward.
      const float* den = c.den.data() + bh * T;
      RowMatrix Gm(T, A);
      for (int64_t t = 0; t < T; ++t) {
        const float d = den[t];
        Gm.row(t).head(dh_) = dO.row(t) / d;
        Gm(t, dh_) = o_.normalize ? -dO.row(t).dot(O.row(t)) / d : 0.0f;
      }
      RowMatrix dQ(T, F_), dK(T, F_), dVa(T, A);
      if (o_.impl == "naive") NaiveCausalBackward(Feat(c.fq, b, h, T), Feat(c.fk, b, h, T), Va, Gm, dQ, dK, dVa);
      else ChunkedCausalBackward(Feat(c.fq, b, h, T), Feat(c.fk, b, h, T), Va, Gm, dQ, dK, dVa);
      AsStrided(c.dfq.data() + b * T * HF_ + h * F_, T, F_, HF_) = dQ;
      AsStrided(c.dfk.data() + b * T * HF_ + h * F_, T, F_, HF_) = dK;
      AsStrided(c.dv.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dVa.leftCols(dh_);
    }
    FeaturesBackward(c.q_raw.data(), c.positions.data(), N, true, c.W, c.fq, c.dfq, c.dq.data());
    FeaturesBackward(c.k_raw.data(), c.positions.data(), N, false, c.W, c.fk, c.dfk, c.dk.data());
    LinearBackward(c.x.data(), P(0), c.dq.data(), dx, G(0), N, D_, HD_);
    LinearBackward(c.x.data(), P(1), c.dk.data(), dx, G(1), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(2), c.dv.data(), dx, G(2), N, D_, HD_, true);
  }

  std::unique_ptr<MixerState> NewState(int B) const override {
    auto s = std::make_unique<LinearState>();
    s->B = B;
    s->S.assign(int64_t(B) * H_ * F_ * (dh_ + 1), 0.0f);
    return s;
  }

  void Step(const float* x, const int32_t* positions, float* y, MixerState& base) override {
    auto& s = static_cast<LinearState&>(base);
    const int B = s.B, A = dh_ + 1;
    Buffer q(int64_t(B) * HD_), k(q.size()), v(q.size()), o(q.size()), fq(int64_t(B) * HF_), fk(fq.size());
    LinearForward(x, P(0), q.data(), B, D_, HD_);
    LinearForward(x, P(1), k.data(), B, D_, HD_);
    LinearForward(x, P(2), v.data(), B, D_, HD_);
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
    LinearForward(o.data(), P(3), y, B, HD_, D_);
  }

  // The implied kernel: M_ts = phi(q_t).phi(k_s) / (den_t + eps) (or unnormalised), s <= t.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t* positions, int T) override {
    Buffer q(int64_t(T) * HD_), k(q.size()), fq(int64_t(T) * HF_), fk(fq.size());
    LinearForward(x, P(0), q.data(), T, D_, HD_);
    LinearForward(x, P(1), k.data(), T, D_, HD_);
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

  MixerDescription Describe(int T) const override {
    MixerDescription d;
    d.params = CountParams(Params());
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
  void Features(const float* raw, const int32_t* positions, int64_t N, bool query, const RowMatrix& W, float* out) const {
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
        const auto r = Eigen::Map<const Eigen::ArrayXf>(raw + i, n), g = Eigen::Map<const Eigen::ArrayXf>(dphi.data() + i, n);
        auto d = Eigen::Map<Eigen::ArrayXf>(draw + i, n);
        if (elu_) d = g * r.min(0.0f).exp();
        else d = (r > 0).select(g, 0.0f);
      }
      return;
    }
    Buffer xs(raw, raw + N * HD_);
    if (rope_) ApplyRope(xs.data(), positions, N, H_, dh_, o_.rope_base, false);
    const float scale = InputScale();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int h = 0; h < H_; ++h) {
        // phi_j = exp(w_j.x' - |x'|^2/2 - c)/sqrt(m), c a per-row constant: d x' = W^T (dphi*phi) - x' sum(dphi*phi)
        const Eigen::VectorXf xv = Eigen::Map<const Eigen::VectorXf>(xs.data() + n * HD_ + h * dh_, dh_) * scale;
        const Eigen::ArrayXf g = Eigen::Map<const Eigen::ArrayXf>(dphi.data() + n * HF_ + h * F_, F_) *
                                 Eigen::Map<const Eigen::ArrayXf>(phi.data() + n * HF_ + h * F_, F_);
        Eigen::Map<Eigen::VectorXf>(draw + n * HD_ + h * dh_, dh_) = (W.transpose() * g.matrix() - xv * g.sum()) * scale;
      }
    if (rope_) ApplyRope(draw, positions, N, H_, dh_, o_.rope_base, true);
  }

  // out (T, A) = sum_{s<=t} (Q_t . K_s) Va_s
  void NaiveCausal(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, RowMatrix& out) const {
    RowMatrix Am = (Q * K.transpose()).triangularView<Eigen::Lower>();
    out.noalias() = Am * Va;
  }
  void ChunkedCausal(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, RowMatrix& out) const {
    const int64_t T = Q.rows(), A = Va.cols(), C = o_.chunk;
    RowMatrix S = RowMatrix::Zero(Q.cols(), A), Am;
    for (int64_t t0 = 0; t0 < T; t0 += C) {
      const int64_t n = std::min(C, T - t0);
      Am = (Q.middleRows(t0, n) * K.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      out.middleRows(t0, n).noalias() = Am * Va.middleRows(t0, n);
      out.middleRows(t0, n).noalias() += Q.middleRows(t0, n) * S;
      S.noalias() += K.middleRows(t0, n).transpose() * Va.middleRows(t0, n);
    }
  }

  // Given G = d out (T, A): dQ_t = sum_{s<=t} (G_t . Va_s) K_s ; dK_s = sum_{t>=s} (G_t . Va_s) Q_t ;
  // dVa_s = sum_{t>=s} (Q_t . K_s) G_t.
  void NaiveCausalBackward(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, const RowMatrix& Gm, RowMatrix& dQ,
                           RowMatrix& dK, RowMatrix& dVa) const {
    RowMatrix Pm = (Gm * Va.transpose()).triangularView<Eigen::Lower>();
    RowMatrix Am = (Q * K.transpose()).triangularView<Eigen::Lower>();
    dQ.noalias() = Pm * K;
    dK.noalias() = Pm.transpose() * Q;
    dVa.noalias() = Am.transpose() * Gm;
  }
  void ChunkedCausalBackward(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, const RowMatrix& Gm, RowMatrix& dQ,
                             RowMatrix& dK, RowMatrix& dVa) const {
    const int64_t T = Q.rows(), A = Va.cols(), C = o_.chunk, chunks = (T + C - 1) / C;
    RowMatrix S = RowMatrix::Zero(Q.cols(), A), Am;
    std::vector<RowMatrix> Pm(chunks);  // per chunk: (G_t . Va_s) for s <= t, used by both scans
    for (int64_t i = 0; i < chunks; ++i) {  // forward scan: dQ
      const int64_t t0 = i * C, n = std::min(C, T - t0);
      Pm[i] = (Gm.middleRows(t0, n) * Va.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      dQ.middleRows(t0, n).noalias() = Pm[i] * K.middleRows(t0, n);
      dQ.middleRows(t0, n).noalias() += Gm.middleRows(t0, n) * S.transpose();
      S.noalias() += K.middleRows(t0, n).transpose() * Va.middleRows(t0, n);
    }
    RowMatrix R = RowMatrix::Zero(A, Q.cols());  // sum over later chunks of G_t Q_t^T
    for (int64_t i = chunks - 1; i >= 0; --i) {  // reverse scan: dK, dVa
      const int64_t t0 = i * C, n = std::min(C, T - t0);
      Am = (Q.middleRows(t0, n) * K.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      dK.middleRows(t0, n).noalias() = Pm[i].transpose() * Q.middleRows(t0, n);
      dK.middleRows(t0, n).noalias() += Va.middleRows(t0, n) * R;
      dVa.middleRows(t0, n).noalias() = Am.transpose() * Gm.middleRows(t0, n);
      dVa.middleRows(t0, n).noalias() += K.middleRows(t0, n) * R.transpose();
      R.noalias() += Gm.middleRows(t0, n).transpose() * Q.middleRows(t0, n);
    }
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

MixerInfo LinearAttentionInfo() {
  return Entry<Linear, LinearOptions>("linear", MixerKind::kSequence,
                                      "causal linear attention (elu+1 / relu features), chunked scan");
}

MixerInfo PerformerInfo() {
  return Entry<Performer, PerformerOptions>("performer", MixerKind::kSequence,
                                            "Performer FAVOR+: positive orthogonal random features, chunked scan",
                                            {"rope"});
}

}  // namespace mixlab
