// Causal linear attention (Katharopoulos et al. 2020, "Transformers are RNNs").
//
//   q, k, v = x Wq, x Wk, x Wv (B, T, H*dh);  phi = elu(x)+1 or relu(x)
//   num_t = sum_{s<=t} (phi(q_t).phi(k_s)) v_s ;  den_t = sum_{s<=t} phi(q_t).phi(k_s)
//   o_t = num_t / (den_t + eps)  (normalize = true)  or  num_t  (normalize = false);  y = o Wo
//
// Computed chunkwise: quadratic inside a chunk of C tokens, a running dh x dh state (plus the dh key sum)
// across chunks, so cost is O(T * C * dh + T * dh^2) and memory O(T * H * dh) - no T x T buffer. The
// normaliser is handled as one extra value column of ones ("augmented values"), so one kernel serves both
// modes. The context saves phi(q), phi(k), the augmented v and the pre-activation q, k; backward rescans
// the chunk states instead of storing them. Step keeps the running state (O(1) per token).
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/matmul.h"
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

struct LinearContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q_raw, k_raw, fq, fk, va, o;  // va: (B, H, T, dh+1) augmented values; fq, fk, q_raw, k_raw (B, T, HD)
  Buffer dfq, dfk, dva, dq, dk, dv, dvbuf, doutput;
};

struct LinearState : MixerState {
  int B = 0;
  Buffer S;  // (B, H, dh, dh+1): sum phi(k) [v, 1]^T
};

class LinearAttention : public Mixer {
 public:
  LinearAttention(const MixerDims& dims, const LinearOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    dh_ = ResolveHeadWidth("linear", D_, H_, o.d_head);
    HD_ = H_ * dh_;
    elu_ = o.feature_map == "elu1";
  }
  std::string Name() const override { return "linear"; }
  MixerKind Kind() const override { return MixerKind::kSequence; }
  std::vector<ParamSpec> Params() const override { return QkvoParams(dims_, HD_); }
  std::unique_ptr<MixerContext> NewContext() const override { return std::make_unique<LinearContext>(); }

  void Forward(const float* x, const int32_t*, int B, int T, float* y, MixerContext& base, const ForwardMode&) override {
    auto& c = static_cast<LinearContext&>(base);
    c.B = B;
    c.T = T;
    const int64_t N = int64_t(B) * T, A = dh_ + 1;
    c.x.assign(x, x + N * D_);
    for (auto* b : {&c.q_raw, &c.k_raw, &c.fq, &c.fk, &c.o, &c.dvbuf}) b->resize(N * HD_);
    c.va.resize(int64_t(B) * H_ * T * A);
    LinearForward(x, P(0), c.q_raw.data(), N, D_, HD_);
    LinearForward(x, P(1), c.k_raw.data(), N, D_, HD_);
    LinearForward(x, P(2), c.dvbuf.data(), N, D_, HD_);  // v, reshaped into va below
    FeatureMap(c.q_raw.data(), c.fq.data(), N * HD_);
    FeatureMap(c.k_raw.data(), c.fk.data(), N * HD_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      auto Va = AsMatrix(c.va.data() + bh * T * A, T, A);
      Va.leftCols(dh_) = AsStrided(c.dvbuf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      Va.col(dh_).setOnes();
      RowMatrix out(T, A);
      if (o_.impl == "naive") NaiveCausal(Head(c.fq, b, h, T), Head(c.fk, b, h, T), Va, out);
      else ChunkedCausal(Head(c.fq, b, h, T), Head(c.fk, b, h, T), Va, out);
      auto O = AsStrided(c.o.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      for (int64_t t = 0; t < T; ++t) O.row(t) = out.row(t).head(dh_) / Denominator(out(t, dh_));
    }
    LinearForward(c.o.data(), P(3), y, N, HD_, D_);
  }

  void Backward(MixerContext& base, const float* dy, float* dx) override {
    auto& c = static_cast<LinearContext&>(base);
    const int64_t B = c.B, T = c.T, N = B * T, A = dh_ + 1;
    c.doutput.resize(N * HD_);
    for (auto* b : {&c.dfq, &c.dfk, &c.dv}) b->assign(N * HD_, 0.0f);
    LinearBackward(c.o.data(), P(3), dy, c.doutput.data(), G(3), N, HD_, D_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      auto Va = AsMatrix(c.va.data() + bh * T * A, T, A);
      auto dO = AsStrided(c.doutput.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      auto O = AsStrided(c.o.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
      // Recompute the denominators, then G = d[num, den]: dnum = do / d ; dden = -(do . o) / d.
      RowMatrix out(T, A), Gm(T, A);
      if (o_.normalize) ChunkedCausal(Head(c.fq, b, h, T), Head(c.fk, b, h, T), Va, out);
      for (int64_t t = 0; t < T; ++t) {
        const float d = o_.normalize ? Denominator(out(t, dh_)) : 1.0f;
        Gm.row(t).head(dh_) = dO.row(t) / d;
        Gm(t, dh_) = o_.normalize ? -dO.row(t).dot(O.row(t)) / d : 0.0f;
      }
      RowMatrix dQ(T, dh_), dK(T, dh_), dVa(T, A);
      if (o_.impl == "naive") NaiveCausalBackward(Head(c.fq, b, h, T), Head(c.fk, b, h, T), Va, Gm, dQ, dK, dVa);
      else ChunkedCausalBackward(Head(c.fq, b, h, T), Head(c.fk, b, h, T), Va, Gm, dQ, dK, dVa);
      AsStrided(c.dfq.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dQ;
      AsStrided(c.dfk.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dK;
      AsStrided(c.dv.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dVa.leftCols(dh_);
    }
    FeatureMapBackward(c.q_raw.data(), c.dfq.data(), N * HD_);
    FeatureMapBackward(c.k_raw.data(), c.dfk.data(), N * HD_);
    LinearBackward(c.x.data(), P(0), c.dfq.data(), dx, G(0), N, D_, HD_);
    LinearBackward(c.x.data(), P(1), c.dfk.data(), dx, G(1), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(2), c.dv.data(), dx, G(2), N, D_, HD_, true);
  }

  std::unique_ptr<MixerState> NewState(int B) const override {
    auto s = std::make_unique<LinearState>();
    s->B = B;
    s->S.assign(int64_t(B) * H_ * dh_ * (dh_ + 1), 0.0f);
    return s;
  }

  void Step(const float* x, const int32_t*, float* y, MixerState& base) override {
    auto& s = static_cast<LinearState&>(base);
    const int B = s.B, A = dh_ + 1;
    Buffer q(int64_t(B) * HD_), k(q.size()), v(q.size()), o(q.size());
    LinearForward(x, P(0), q.data(), B, D_, HD_);
    LinearForward(x, P(1), k.data(), B, D_, HD_);
    LinearForward(x, P(2), v.data(), B, D_, HD_);
    FeatureMap(q.data(), q.data(), q.size());
    FeatureMap(k.data(), k.data(), k.size());
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H_; ++h) {
        auto S = AsMatrix(s.S.data() + (int64_t(b) * H_ + h) * dh_ * A, dh_, A);
        Eigen::Map<const Eigen::RowVectorXf> qh(q.data() + b * HD_ + h * dh_, dh_), kh(k.data() + b * HD_ + h * dh_, dh_),
            vh(v.data() + b * HD_ + h * dh_, dh_);
        S.leftCols(dh_).noalias() += kh.transpose() * vh;
        S.col(dh_) += kh.transpose();
        const Eigen::RowVectorXf out = qh * S;
        Eigen::Map<Eigen::RowVectorXf>(o.data() + b * HD_ + h * dh_, dh_) = out.head(dh_) / Denominator(out[dh_]);
      }
    LinearForward(o.data(), P(3), y, B, HD_, D_);
  }

  // The implied kernel: M_ts = phi(q_t).phi(k_s) / (den_t + eps) (or unnormalised), s <= t.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    Buffer q(int64_t(T) * HD_), k(q.size());
    LinearForward(x, P(0), q.data(), T, D_, HD_);
    LinearForward(x, P(1), k.data(), T, D_, HD_);
    FeatureMap(q.data(), q.data(), q.size());
    FeatureMap(k.data(), k.data(), k.size());
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) {
      RowMatrix M = (AsStrided(q.data() + h * dh_, T, dh_, HD_) * AsStrided(k.data() + h * dh_, T, dh_, HD_).transpose())
                        .triangularView<Eigen::Lower>();
      for (int t = 0; t < T; ++t) M.row(t) /= Denominator(M.row(t).sum());
      maps.push_back(std::move(M));
    }
    return maps;
  }

  MixerDescription Describe(int T) const override {
    MixerDescription d;
    d.params = CountParams(Params());
    d.state_floats_fixed = int64_t(H_) * dh_ * (dh_ + 1);
    const double C = std::min(o_.chunk, T);
    d.flops_per_token = 2.0 * 4 * D_ * HD_ + 2.0 * H_ * (C * (2 * dh_ + 1) + 2.0 * dh_ * (dh_ + 1));
    return d;
  }

 private:
  ConstStridedMap Head(const Buffer& buf, int64_t b, int64_t h, int64_t T) const {
    return AsStrided(buf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
  }
  float Denominator(float den) const { return o_.normalize ? den + o_.eps : 1.0f; }

  void FeatureMap(const float* in, float* out, int64_t n) const {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = elu_ ? (in[i] > 0 ? in[i] + 1.0f : std::exp(in[i])) : std::max(in[i], 0.0f);
  }
  // d(raw) = d(phi) * phi'(raw), in place on d.
  void FeatureMapBackward(const float* raw, float* d, int64_t n) const {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) d[i] *= raw[i] > 0 ? 1.0f : (elu_ ? std::exp(raw[i]) : 0.0f);
  }

  // out (T, A) = sum_{s<=t} (Q_t . K_s) Va_s
  void NaiveCausal(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, RowMatrix& out) const {
    RowMatrix Am = (Q * K.transpose()).triangularView<Eigen::Lower>();
    out.noalias() = Am * Va;
  }
  void ChunkedCausal(ConstStridedMap Q, ConstStridedMap K, MatrixMap Va, RowMatrix& out) const {
    const int64_t T = Q.rows(), A = Va.cols(), C = o_.chunk;
    RowMatrix S = RowMatrix::Zero(dh_, A), Am;
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
    const int64_t T = Q.rows(), A = Va.cols(), C = o_.chunk;
    RowMatrix S = RowMatrix::Zero(dh_, A), Pm, Am;
    for (int64_t t0 = 0; t0 < T; t0 += C) {  // forward scan: dQ
      const int64_t n = std::min(C, T - t0);
      Pm = (Gm.middleRows(t0, n) * Va.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      dQ.middleRows(t0, n).noalias() = Pm * K.middleRows(t0, n);
      dQ.middleRows(t0, n).noalias() += Gm.middleRows(t0, n) * S.transpose();
      S.noalias() += K.middleRows(t0, n).transpose() * Va.middleRows(t0, n);
    }
    RowMatrix R = RowMatrix::Zero(A, dh_);  // sum over later chunks of G_t Q_t^T
    const int64_t last = ((T - 1) / C) * C;
    for (int64_t t0 = last; t0 >= 0; t0 -= C) {  // reverse scan: dK, dVa
      const int64_t n = std::min(C, T - t0);
      Pm = (Gm.middleRows(t0, n) * Va.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      Am = (Q.middleRows(t0, n) * K.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      dK.middleRows(t0, n).noalias() = Pm.transpose() * Q.middleRows(t0, n);
      dK.middleRows(t0, n).noalias() += Va.middleRows(t0, n) * R;
      dVa.middleRows(t0, n).noalias() = Am.transpose() * Gm.middleRows(t0, n);
      dVa.middleRows(t0, n).noalias() += K.middleRows(t0, n) * R.transpose();
      R.noalias() += Gm.middleRows(t0, n).transpose() * Q.middleRows(t0, n);
    }
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  LinearOptions o_;
  MixerDims dims_;
  bool elu_ = true;
};

}  // namespace

MixerInfo LinearAttentionInfo() {
  return Entry<LinearAttention, LinearOptions>("linear", MixerKind::kSequence,
                                               "causal linear attention (elu+1 / relu features), chunked scan");
}

}  // namespace mixlab
