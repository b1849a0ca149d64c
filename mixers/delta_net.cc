// DeltaNet (Schlag et al. 2021; parallelised by Yang et al. 2024, "Parallelizing Linear Transformers with the Delta
// Rule over Sequence Length"): per head a matrix state updated by the delta rule,
//
//   q, k = l2-normalised x Wq, x Wk;  v = x Wv;  beta = sigmoid(x Wbeta)  (one per head and token)
//   S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
//   o_t = S_t^T q_t ;  y = o Wo
//
// trained in the chunked WY form, not a token loop: per chunk of C tokens with state S at its start,
//   A = strictly-lower(diag(beta) K K^T), T = (I + A)^-1, W = T diag(beta) K, U = T diag(beta) V,
//   U' = U - W S,  O = Q S + lower(Q K^T) U',  S <- S + K^T U'
// (lower includes the diagonal). Backward runs the chunks in reverse with the exact adjoint of these products (the
// inverse through dA = -T^T dT T^T). Cost O(T * C * d_head + T * d_head^2) per head; saves x, q, k (normalised), v,
// beta and the state at every chunk start. Step keeps S (d_head^2 per head). Mixing: M_h[t, s] = beta_s q_t^T (I -
// beta_t k_t k_t^T) ... (I - beta_{s+1} k_{s+1} k_{s+1}^T) k_s, so o = M v exactly (the value path is v). Not built:
// Gated DeltaNet's decay (--delta.gate of the issue) and the short convolutions of the fla implementation.
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct DeltaOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  int chunk = 64;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Int("chunk", chunk, "tokens per chunk of the WY form (a C x C triangular solve per chunk)", 1, 4096);
  }
};

enum DeltaParam { kWBeta = kQkvoEnd };

constexpr float kNormEps = 1e-6f;

struct DeltaContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q_raw, k_raw, q, k, v, beta_pre, beta, o;  // (B, T, HD); beta (B, T, H)
  Buffer states;                                       // (B, H, chunks, dh, dh): S at each chunk start
  Buffer dq, dk, dv, dbeta, dtmp;
};

struct DeltaState : CopyableState<DeltaState> {
  int B = 0;
  Buffer S;  // (B, H, dh, dh)
};

class DeltaNet : public SequenceMixer<DeltaContext, DeltaState> {
 public:
  DeltaNet(const MixerDims& dims, const DeltaOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, o.d_head);
    HD_ = H_ * dh_;
  }

  std::vector<ParamSpec> Params() const override {
    auto p = QkvoParams(dims_, H_, HD_);
    p.push_back({"wbeta", {D_, H_}, Init::kNormal, InputStd(dims_, D_)});
    return p;
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, DeltaContext& c, const ForwardMode&) override {
    Project(x, B, T, c);
    const int64_t N = int64_t(B) * T, chunks = Chunks(T);
    c.o.resize(N * HD_);
    c.states.resize(int64_t(B) * H_ * chunks * dh_ * dh_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) HeadForward(c, bh / H_, bh % H_);
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(DeltaContext& c, const float* dy, float* dx) override {
    const int64_t B = c.B, T = c.T, N = B * T;
    c.dtmp.resize(N * HD_);
    for (auto* buf : {&c.dq, &c.dk, &c.dv}) buf->assign(N * HD_, 0.0f);
    c.dbeta.assign(N * H_, 0.0f);
    LinearBackward(c.o.data(), P(kWo), dy, c.dtmp.data(), G(kWo), N, HD_, D_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H_; ++bh) HeadBackward(c, bh / H_, bh % H_);
    // Through the l2 normalisation of q and k and the sigmoid of beta.
    NormalizeBackward(c.q_raw.data(), c.q.data(), c.dq.data(), N);
    NormalizeBackward(c.k_raw.data(), c.k.data(), c.dk.data(), N);
    for (int64_t i = 0; i < N * H_; ++i) c.dbeta[i] *= c.beta[i] * (1.0f - c.beta[i]);
    LinearBackward(c.x.data(), P(kWq), c.dq.data(), dx, G(kWq), N, D_, HD_);
    LinearBackward(c.x.data(), P(kWk), c.dk.data(), dx, G(kWk), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(kWv), c.dv.data(), dx, G(kWv), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(kWBeta), c.dbeta.data(), dx, G(kWBeta), N, D_, H_, true);
  }

  void InitState(DeltaState& s, int B) const override {
    s.B = B;
    s.S.assign(int64_t(B) * H_ * dh_ * dh_, 0.0f);
  }

  void MixStep(const float* x, const int32_t*, float* y, DeltaState& s) override {
    DeltaContext c;
    Project(x, s.B, 1, c);
    Buffer o(int64_t(s.B) * HD_);
    for (int b = 0; b < s.B; ++b)
      for (int h = 0; h < H_; ++h) {
        auto S = AsMatrix(s.S.data() + (int64_t(b) * H_ + h) * dh_ * dh_, dh_, dh_);
        const int64_t off = int64_t(b) * HD_ + h * dh_;
        Eigen::Map<const Eigen::VectorXf> q(c.q.data() + off, dh_), k(c.k.data() + off, dh_), v(c.v.data() + off, dh_);
        const float beta = c.beta[int64_t(b) * H_ + h];
        const Eigen::RowVectorXf error = v.transpose() - k.transpose() * S;
        S.noalias() += beta * k * error;
        Eigen::Map<Eigen::RowVectorXf>(o.data() + off, dh_) = q.transpose() * S;
      }
    LinearForward(o.data(), P(kWo), y, s.B, HD_, D_);
  }

  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    DeltaContext c;
    Project(x, 1, T, c);
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) {
      RowMatrix m = RowMatrix::Zero(T, T);
      auto Q = Head(c.q, 0, h, T), K = Head(c.k, 0, h, T);
      for (int t = 0; t < T; ++t) {
        Eigen::RowVectorXf a = Q.row(t);  // q_t^T times the products of (I - beta k k^T) from t down to s + 1
        for (int s = t; s >= 0; --s) {
          const float beta = c.beta[int64_t(s) * H_ + h];
          const float ak = a.dot(K.row(s));
          m(t, s) = beta * ak;
          a -= beta * ak * K.row(s);
        }
      }
      maps.push_back(std::move(m));
    }
    return maps;
  }
  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, HD_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_fixed = int64_t(H_) * dh_ * dh_;
    const double C = std::min(o_.chunk, T);
    d.flops_per_token = 2.0 * 4 * D_ * HD_ + 2.0 * D_ * H_ + 2.0 * H_ * (3 * C * dh_ + 3.0 * dh_ * dh_ + C * C / 3.0);
    return d;
  }

 private:
  int64_t Chunks(int64_t T) const { return (T + o_.chunk - 1) / o_.chunk; }
  ConstStridedMap Head(const Buffer& buf, int64_t b, int64_t h, int64_t T) const {
    return AsStrided(buf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
  }
  StridedMap Head(Buffer& buf, int64_t b, int64_t h, int64_t T) const {
    return AsStrided(buf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
  }
  Eigen::Map<const Eigen::VectorXf, 0, Eigen::InnerStride<>> Betas(const Buffer& beta, int64_t b, int64_t h, int64_t t0,
                                                                   int64_t n, int64_t T) const {
    return {beta.data() + (b * T + t0) * H_ + h, n, Eigen::InnerStride<>(H_)};
  }

  // q, k (normalised per head), v and beta of B sequences of T tokens.
  void Project(const float* x, int B, int T, DeltaContext& c) const {
    const int64_t N = int64_t(B) * T;
    c.B = B;
    c.T = T;
    c.x.assign(x, x + N * D_);
    for (auto* buf : {&c.q_raw, &c.k_raw, &c.q, &c.k, &c.v}) buf->resize(N * HD_);
    c.beta_pre.resize(N * H_);
    c.beta.resize(N * H_);
    LinearForward(x, P(kWq), c.q_raw.data(), N, D_, HD_);
    LinearForward(x, P(kWk), c.k_raw.data(), N, D_, HD_);
    LinearForward(x, P(kWv), c.v.data(), N, D_, HD_);
    LinearForward(x, P(kWBeta), c.beta_pre.data(), N, D_, H_);
    for (int64_t i = 0; i < N * H_; ++i) c.beta[i] = Sigmoid(c.beta_pre[i]);
    Normalize(c.q_raw.data(), c.q.data(), N);
    Normalize(c.k_raw.data(), c.k.data(), N);
  }

  // out = raw / sqrt(|raw|^2 + eps) per head and token.
  void Normalize(const float* raw, float* out, int64_t N) const {
    for (int64_t i = 0; i < N * H_; ++i) {
      Eigen::Map<const Eigen::VectorXf> r(raw + i * dh_, dh_);
      Eigen::Map<Eigen::VectorXf>(out + i * dh_, dh_) = r / std::sqrt(r.squaredNorm() + kNormEps);
    }
  }
  // grad (in place): d raw = (d out - out (out . d out)) / sqrt(|raw|^2 + eps).
  void NormalizeBackward(const float* raw, const float* out, float* grad, int64_t N) const {
    for (int64_t i = 0; i < N * H_; ++i) {
      Eigen::Map<const Eigen::VectorXf> r(raw + i * dh_, dh_), n(out + i * dh_, dh_);
      Eigen::Map<Eigen::VectorXf> g(grad + i * dh_, dh_);
      g = (g - n * n.dot(g)) / std::sqrt(r.squaredNorm() + kNormEps);
    }
  }

  // The WY quantities of one chunk: T = (I + strictly-lower(diag(beta) K K^T))^-1, W = T diag(beta) K,
  // U = T diag(beta) V.
  struct ChunkWy {
    RowMatrix Tinv, W, U;
  };
  ChunkWy Wy(const RowMatrix& K, const RowMatrix& V, const Eigen::VectorXf& beta) const {
    const int64_t n = K.rows();
    RowMatrix A = (beta.asDiagonal() * (K * K.transpose())).triangularView<Eigen::StrictlyLower>();
    A.diagonal().setOnes();
    ChunkWy wy;
    wy.Tinv = A.triangularView<Eigen::UnitLower>().solve(RowMatrix::Identity(n, n));
    wy.W = wy.Tinv * (beta.asDiagonal() * K);
    wy.U = wy.Tinv * (beta.asDiagonal() * V);
    return wy;
  }

  void HeadForward(DeltaContext& c, int64_t b, int64_t h) const {
    const int64_t T = c.T, chunks = Chunks(T);
    RowMatrix S = RowMatrix::Zero(dh_, dh_);
    auto Qh = Head(c.q, b, h, T), Kh = Head(c.k, b, h, T), Vh = Head(c.v, b, h, T);
    auto Oh = Head(c.o, b, h, T);
    for (int64_t ci = 0; ci < chunks; ++ci) {
      const int64_t t0 = ci * o_.chunk, n = std::min<int64_t>(o_.chunk, T - t0);
      AsMatrix(c.states.data() + ((b * H_ + h) * chunks + ci) * dh_ * dh_, dh_, dh_) = S;
      const RowMatrix Q = Qh.middleRows(t0, n), K = Kh.middleRows(t0, n), V = Vh.middleRows(t0, n);
      const Eigen::VectorXf beta = Betas(c.beta, b, h, t0, n, T);
      const ChunkWy wy = Wy(K, V, beta);
      const RowMatrix Up = wy.U - wy.W * S;
      const RowMatrix QK = (Q * K.transpose()).triangularView<Eigen::Lower>();
      Oh.middleRows(t0, n) = Q * S + QK * Up;
      S.noalias() += K.transpose() * Up;
    }
  }

  // The adjoint of HeadForward, chunk by chunk in reverse, carrying dS.
  void HeadBackward(DeltaContext& c, int64_t b, int64_t h) const {
    const int64_t T = c.T, chunks = Chunks(T);
    RowMatrix dS = RowMatrix::Zero(dh_, dh_);
    auto Qh = Head(c.q, b, h, T), Kh = Head(c.k, b, h, T), Vh = Head(c.v, b, h, T), dOh = Head(c.dtmp, b, h, T);
    auto dQh = Head(c.dq, b, h, T), dKh = Head(c.dk, b, h, T), dVh = Head(c.dv, b, h, T);
    for (int64_t ci = chunks - 1; ci >= 0; --ci) {
      const int64_t t0 = ci * o_.chunk, n = std::min<int64_t>(o_.chunk, T - t0);
      const RowMatrix S = AsMatrix(c.states.data() + ((b * H_ + h) * chunks + ci) * dh_ * dh_, dh_, dh_);
      const RowMatrix Q = Qh.middleRows(t0, n), K = Kh.middleRows(t0, n), V = Vh.middleRows(t0, n);
      const RowMatrix dO = dOh.middleRows(t0, n);
      const Eigen::VectorXf beta = Betas(c.beta, b, h, t0, n, T);
      const ChunkWy wy = Wy(K, V, beta);
      const RowMatrix Up = wy.U - wy.W * S;
      const RowMatrix QK = (Q * K.transpose()).triangularView<Eigen::Lower>();
      // O = Q S + QK Up, S_next = S + K^T Up
      const RowMatrix dUp = QK.transpose() * dO + K * dS;
      const RowMatrix L = (dO * Up.transpose()).triangularView<Eigen::Lower>();
      RowMatrix dQ = L * K + dO * S.transpose();
      RowMatrix dK = L.transpose() * Q + Up * dS.transpose();
      RowMatrix dS_prev = dS + Q.transpose() * dO - wy.W.transpose() * dUp;
      // Up = U - W S;  W = T diag(beta) K, U = T diag(beta) V
      const RowMatrix dW = -dUp * S.transpose();
      const RowMatrix BK = beta.asDiagonal() * K, BV = beta.asDiagonal() * V;
      const RowMatrix dTinv = dW * BK.transpose() + dUp * BV.transpose();
      const RowMatrix dBK = wy.Tinv.transpose() * dW, dBV = wy.Tinv.transpose() * dUp;
      dK += beta.asDiagonal() * dBK;
      const RowMatrix dV = beta.asDiagonal() * dBV;
      Eigen::VectorXf dbeta = dBK.cwiseProduct(K).rowwise().sum() + dBV.cwiseProduct(V).rowwise().sum();
      // Tinv = (I + A)^-1: dA = -Tinv^T dTinv Tinv^T on the strictly lower part; A = strictly-lower(diag(beta) K K^T)
      const RowMatrix dA =
          (-(wy.Tinv.transpose() * dTinv * wy.Tinv.transpose())).triangularView<Eigen::StrictlyLower>();
      const RowMatrix KK = K * K.transpose();
      dbeta += dA.cwiseProduct(KK).rowwise().sum();
      const RowMatrix Gm = beta.asDiagonal() * dA;
      dK += Gm * K + Gm.transpose() * K;
      dQh.middleRows(t0, n) = dQ;
      dKh.middleRows(t0, n) = dK;
      dVh.middleRows(t0, n) = dV;
      for (int64_t i = 0; i < n; ++i) c.dbeta[(b * T + t0 + i) * H_ + h] = dbeta[i];
      dS = std::move(dS_prev);
    }
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  DeltaOptions o_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<DeltaNet, DeltaOptions>("delta", MixerKind::kSequence,
                                                    "DeltaNet: delta-rule matrix state, chunked WY form")
                          .Tests({.extra_cases = {
                                      {"delta_chunk4_dhead6", "none", {{"chunk", "4"}, {"d-head", "6"}}},
                                      {"delta_chunk1", "none", {{"chunk", "1"}}},
                                  }}));

}  // namespace mixlab
