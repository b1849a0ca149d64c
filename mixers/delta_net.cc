// DeltaNet (Schlag et al. 2021; parallelised by Yang et al. 2024, "Parallelizing Linear Transformers with the Delta
// Rule over Sequence Length") and Gated DeltaNet (Yang et al. 2024, --delta.gate): per head a matrix state,
//
//   q, k = l2-normalised x Wq, x Wk;  v = x Wv;  beta = sigmoid(x Wbeta)  (one per head and token)
//   S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T ;  o_t = S_t^T q_t ;  y = o Wo
//
// with alpha = 1, or with --delta.gate alpha_t = sigmoid(x Wg + bg)^(1/gate-temperature) per head (bias started so
// alpha is in [0.99, 0.999], GLA's scheme). Trained in the chunked WY form, not a token loop: per chunk of C tokens
// with state S at its start and gamma_t = sum of log alpha within the chunk up to t,
//   T = (I + strictly-lower(diag(beta) K K^T))^-1   (a triangular solve; the decays factor out of it)
//   M = lower(Q K^T) T,  D_tr = e^(gamma_t - gamma_r) (r <= t),  g_t = e^(gamma_t)
//   O = (M .* D) diag(beta) V - diag(g) M diag(beta) K S + diag(g) Q S
//   S <- e^(gamma_C) S + K^T T a,   a_r = beta_r (e^(gamma_C - gamma_r) v_r - e^(gamma_C) S^T k_r)
// where every exponential is of a non-positive number. Backward runs the chunks in reverse with the exact adjoint of
// these products (the inverse through dA = -T^T dT T^T, the decays through gamma's reverse cumulative sum). Cost
// O(T * C * d_head + T * d_head^2) per head; saves x, q, k (normalised), v, beta, the gates and the state at every
// chunk start. Step keeps S (d_head^2 per head). Mixing: M_h[t, s] = beta_s q_t^T (alpha_t (I - beta_t k_t k_t^T)) ...
// (alpha_{s+1} (I - beta_{s+1} k_{s+1} k_{s+1}^T)) k_s, so o = M v exactly (the value path is v).
// Not built: the short convolutions of the fla implementation.
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/ops/small_gemm.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct DeltaOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  int chunk = 64;
  bool gate = false;
  float gate_temperature = 16.0f;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Int("chunk", chunk, "tokens per chunk of the WY form (a C x C triangular solve per chunk)", 1, 4096);
    v.Bool("gate", gate, "Gated DeltaNet: a data-dependent decay alpha_t per head and token");
    v.Float("gate-temperature", gate_temperature, "gate: log alpha = logsigmoid(.) / temperature", 1.0f, 1000.0f);
  }
};

enum DeltaParam { kWBeta = kQkvoEnd, kWGate, kGateBias };

constexpr float kNormEps = 1e-6f;

// The chunks' products (C x C and C x d_head blocks) through SmallGemm: Eigen's general GEMM packed both operands of
// every one of them. A band says A is triangular (its zeros are stored), so those terms are skipped.
RowMatrix Mul(const RowMatrix& A, const RowMatrix& B, Band band = Band::kFull) {  // A B
  RowMatrix C(A.rows(), B.cols());
  SmallGemm(A.rows(), B.cols(), A.cols(), A.data(), A.cols(), 1, B.data(), B.cols(), C.data(), C.cols(), false, band);
  return C;
}
RowMatrix MulTN(const RowMatrix& A, const RowMatrix& B, Band band = Band::kFull) {  // A^T B
  RowMatrix C(A.cols(), B.cols());
  SmallGemm(A.cols(), B.cols(), A.rows(), A.data(), 1, A.cols(), B.data(), B.cols(), C.data(), C.cols(), false, band);
  return C;
}
RowMatrix MulNT(const RowMatrix& A, const RowMatrix& B) {  // A B^T
  const RowMatrix Bt = B.transpose();
  return Mul(A, Bt);
}

// (I + A)^-1 for a strictly lower triangular A, by forward substitution: row i = e_i - sum_{k < i} A(i, k) row k, where
// row k is zero beyond column k.
RowMatrix UnitLowerInverse(const RowMatrix& A) {
  const int64_t n = A.rows();
  RowMatrix T = RowMatrix::Zero(n, n);
  for (int64_t i = 0; i < n; ++i) {
    T(i, i) = 1.0f;
    for (int64_t k = 0; k < i; ++k) T.row(i).head(k + 1) -= A(i, k) * T.row(k).head(k + 1);
  }
  return T;
}

struct DeltaContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q_raw, k_raw, q, k, v, beta_pre, beta, o;  // (B, T, HD); beta (B, T, H)
  Buffer gate_pre, log_alpha;                          // (B, T, H); log_alpha 0 without --delta.gate
  Buffer states;                                       // (B, H, chunks, dh, dh): S at each chunk start
  Buffer dq, dk, dv, dbeta, dlog_alpha, dtmp;
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
    if (o_.gate) {
      p.push_back({"wg", {D_, H_}, Init::kNormal, InputStd(dims_, D_)});
      p.push_back({"bg", {H_}, Init::kCustom, 0, false});
    }
    return p;
  }
  // Gate bias so that alpha starts near 1 (sigmoid(bg)^(1/tau) in [0.99, 0.999]): long memory at initialisation.
  void InitCustomParams(uint64_t seed) override {
    if (!o_.gate) return;
    Rng rng(seed, 79);
    for (int h = 0; h < H_; ++h)
      params_[kGateBias].value[h] = GateBiasForDecay(0.99 + 0.009 * rng.Uniform(), o_.gate_temperature);
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
    c.dlog_alpha.assign(N * H_, 0.0f);
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
    if (o_.gate) {  // log alpha = logsigmoid(z) / tau: dz = dlog_alpha (1 - sigmoid(z)) / tau
      Buffer dz(N * H_);
      for (int64_t i = 0; i < N * H_; ++i) {
        dz[i] = c.dlog_alpha[i] * (1.0f - Sigmoid(c.gate_pre[i])) / o_.gate_temperature;
        G(kGateBias)[i % H_] += dz[i];
      }
      LinearBackward(c.x.data(), P(kWGate), dz.data(), dx, G(kWGate), N, D_, H_, true);
    }
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
        const float beta = c.beta[int64_t(b) * H_ + h], alpha = std::exp(c.log_alpha[int64_t(b) * H_ + h]);
        const Eigen::RowVectorXf error = v.transpose() - k.transpose() * S;
        S.noalias() += beta * k * error;  // (I - beta k k^T) S + beta k v^T
        S *= alpha;
        S.noalias() += (1.0f - alpha) * beta * k * v.transpose();  // alpha (I - beta k k^T) S + beta k v^T
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
          a = std::exp(c.log_alpha[int64_t(s) * H_ + h]) * (a - beta * ak * K.row(s));  // a^T alpha_s (I - beta k k^T)
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
    c.log_alpha.assign(N * H_, 0.0f);
    if (o_.gate) {
      c.gate_pre.resize(N * H_);
      LinearForward(x, P(kWGate), c.gate_pre.data(), N, D_, H_);
      for (int64_t i = 0; i < N * H_; ++i) {
        const float z = c.gate_pre[i] + P(kGateBias)[i % H_];
        c.gate_pre[i] = z;
        c.log_alpha[i] = LogSigmoid(z) / o_.gate_temperature;
      }
    }
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

  // One chunk's inputs: rows t0 .. t0 + n of head h and the cumulative log decays gamma within the chunk.
  struct Chunk {
    RowMatrix Q, K, V;
    Eigen::VectorXf beta, gamma;
    RowMatrix KK;    // K K^T
    RowMatrix Tinv;  // (I + strictly-lower(diag(beta) K K^T))^-1
    RowMatrix Lq;    // lower(Q K^T)
    RowMatrix M;     // Lq Tinv
    RowMatrix Dm;    // e^(gamma_t - gamma_r) for r <= t, else 0
  };
  Chunk LoadChunk(const DeltaContext& c, int64_t b, int64_t h, int64_t t0, int64_t n) const {
    const int64_t T = c.T;
    Chunk ch;
    ch.Q = Head(c.q, b, h, T).middleRows(t0, n);
    ch.K = Head(c.k, b, h, T).middleRows(t0, n);
    ch.V = Head(c.v, b, h, T).middleRows(t0, n);
    ch.beta = Betas(c.beta, b, h, t0, n, T);
    const Eigen::VectorXf log_alpha = Betas(c.log_alpha, b, h, t0, n, T);
    ch.gamma.resize(n);
    float running = 0;
    for (int64_t i = 0; i < n; ++i) ch.gamma[i] = running += log_alpha[i];
    const RowMatrix Kt = ch.K.transpose();
    ch.KK = Mul(ch.K, Kt);
    ch.Tinv = UnitLowerInverse((ch.beta.asDiagonal() * ch.KK).triangularView<Eigen::StrictlyLower>());
    ch.Lq = Mul(ch.Q, Kt).triangularView<Eigen::Lower>();
    ch.M = Mul(ch.Lq, ch.Tinv, Band::kLowerA);
    ch.Dm = RowMatrix::Zero(n, n);
    for (int64_t i = 0; i < n; ++i)  // Eigen's vectorised exp over each row (a libm call per entry was 1% of a step)
      ch.Dm.row(i).head(i + 1) = (ch.gamma[i] - ch.gamma.head(i + 1).array()).exp().transpose();
    return ch;
  }

  void HeadForward(DeltaContext& c, int64_t b, int64_t h) const {
    const int64_t T = c.T, chunks = Chunks(T);
    RowMatrix S = RowMatrix::Zero(dh_, dh_);
    auto Oh = Head(c.o, b, h, T);
    for (int64_t ci = 0; ci < chunks; ++ci) {
      const int64_t t0 = ci * o_.chunk, n = std::min<int64_t>(o_.chunk, T - t0);
      AsMatrix(c.states.data() + ((b * H_ + h) * chunks + ci) * dh_ * dh_, dh_, dh_) = S;
      const Chunk ch = LoadChunk(c, b, h, t0, n);
      const Eigen::VectorXf g = ch.gamma.array().exp();
      const RowMatrix BV = ch.beta.asDiagonal() * ch.V, BK = ch.beta.asDiagonal() * ch.K;
      const RowMatrix E = ch.M.cwiseProduct(ch.Dm), QmMBK = ch.Q - Mul(ch.M, BK, Band::kLowerA);
      Oh.middleRows(t0, n) = Mul(E, BV, Band::kLowerA) + g.asDiagonal() * Mul(QmMBK, S);  // E BV + diag(g) (Q - M BK) S
      const float gc = ch.gamma[n - 1], eC = std::exp(gc);
      const Eigen::VectorXf c_r = (gc - ch.gamma.array()).exp();
      const RowMatrix a = c_r.asDiagonal() * BV - eC * Mul(BK, S);
      S = eC * S + MulTN(ch.K, Mul(ch.Tinv, a, Band::kLowerA));
    }
  }

  // The adjoint of HeadForward, chunk by chunk in reverse, carrying dS.
  void HeadBackward(DeltaContext& c, int64_t b, int64_t h) const {
    const int64_t T = c.T, chunks = Chunks(T);
    RowMatrix dS = RowMatrix::Zero(dh_, dh_);
    auto dOh = Head(c.dtmp, b, h, T), dQh = Head(c.dq, b, h, T), dKh = Head(c.dk, b, h, T), dVh = Head(c.dv, b, h, T);
    for (int64_t ci = chunks - 1; ci >= 0; --ci) {
      const int64_t t0 = ci * o_.chunk, n = std::min<int64_t>(o_.chunk, T - t0);
      const RowMatrix S = AsMatrix(c.states.data() + ((b * H_ + h) * chunks + ci) * dh_ * dh_, dh_, dh_);
      const Chunk ch = LoadChunk(c, b, h, t0, n);
      const RowMatrix dO = dOh.middleRows(t0, n);
      const RowMatrix St = S.transpose(), TinvT = ch.Tinv.transpose();  // S^T in three products, Tinv^T in two
      const Eigen::VectorXf g = ch.gamma.array().exp();
      const RowMatrix BV = ch.beta.asDiagonal() * ch.V, BK = ch.beta.asDiagonal() * ch.K;
      const RowMatrix E = ch.M.cwiseProduct(ch.Dm), BKS = Mul(BK, S), QS = Mul(ch.Q, S);
      const float gc = ch.gamma[n - 1], eC = std::exp(gc);
      const Eigen::VectorXf c_r = (gc - ch.gamma.array()).exp();
      const RowMatrix a = c_r.asDiagonal() * BV - eC * BKS;
      const RowMatrix Y = Mul(ch.Tinv, a, Band::kLowerA);
      Eigen::VectorXf dgamma = Eigen::VectorXf::Zero(n);
      // O = E BV - diag(g) M BK S + diag(g) Q S
      const RowMatrix dE = MulNT(dO, BV).triangularView<Eigen::Lower>();
      RowMatrix dM = dE.cwiseProduct(ch.Dm);
      const RowMatrix dDm = dE.cwiseProduct(ch.M);
      RowMatrix dBV = MulTN(E, dO, Band::kUpperA);
      const RowMatrix dP = -(g.asDiagonal() * dO);  // P = M BK S enters as -diag(g) P
      const RowMatrix P = Mul(ch.M, BKS, Band::kLowerA);
      dgamma += (-(dO.cwiseProduct(P).rowwise().sum()) + dO.cwiseProduct(QS).rowwise().sum()).cwiseProduct(g);
      dM += MulNT(dP, BKS);
      RowMatrix dBK = Mul(MulTN(ch.M, dP, Band::kUpperA), St);
      const RowMatrix gdO = g.asDiagonal() * dO;
      RowMatrix dS_prev = MulTN(Mul(ch.M, BK, Band::kLowerA), dP) + MulTN(ch.Q, gdO);
      RowMatrix dQ = Mul(gdO, St);
      // S_next = eC S + K^T Y,  Y = Tinv a
      const RowMatrix dY = Mul(ch.K, dS);
      RowMatrix dK = MulNT(Y, dS);
      float deC = dS.cwiseProduct(S).sum();
      dS_prev += eC * dS;
      RowMatrix dTinv = MulNT(dY, a);
      const RowMatrix da = MulTN(ch.Tinv, dY, Band::kUpperA);
      // a = diag(c_r) BV - eC BK S
      dBV += c_r.asDiagonal() * da;
      const Eigen::VectorXf dc_r = da.cwiseProduct(BV).rowwise().sum();
      dBK -= eC * Mul(da, St);
      dS_prev -= eC * MulTN(BK, da);
      deC += -da.cwiseProduct(BKS).sum();
      // M = Lq Tinv, Lq = lower(Q K^T)
      const RowMatrix dLq = Mul(dM, TinvT).triangularView<Eigen::Lower>();
      dQ += Mul(dLq, ch.K, Band::kLowerA);
      dK += MulTN(dLq, ch.Q, Band::kUpperA);
      dTinv += MulTN(ch.Lq, dM, Band::kUpperA);
      // Tinv = (I + A)^-1, A = strictly-lower(diag(beta) K K^T)
      const RowMatrix dA = (-Mul(MulTN(ch.Tinv, dTinv, Band::kUpperA), TinvT)).triangularView<Eigen::StrictlyLower>();
      Eigen::VectorXf dbeta = dA.cwiseProduct(ch.KK).rowwise().sum();
      const RowMatrix Gm = ch.beta.asDiagonal() * dA;
      dK += Mul(Gm, ch.K, Band::kLowerA) + MulTN(Gm, ch.K, Band::kUpperA);
      // BV = diag(beta) V, BK = diag(beta) K
      const RowMatrix dV = ch.beta.asDiagonal() * dBV;
      dK += ch.beta.asDiagonal() * dBK;
      dbeta += dBV.cwiseProduct(ch.V).rowwise().sum() + dBK.cwiseProduct(ch.K).rowwise().sum();
      // gamma: D_tr = e^(gamma_t - gamma_r), c_r = e^(gamma_C - gamma_r), eC = e^(gamma_C)
      const RowMatrix dDmD = dDm.cwiseProduct(ch.Dm);
      dgamma += dDmD.rowwise().sum() - RowMatrix(dDmD.colwise().sum().transpose());
      const Eigen::VectorXf dcc = dc_r.cwiseProduct(c_r);
      dgamma -= dcc;
      dgamma[n - 1] += dcc.sum() + deC * eC;
      float running = 0;  // gamma_t = sum_{r <= t} log alpha_r: d log alpha_r = sum_{t >= r} d gamma_t
      for (int64_t i = n - 1; i >= 0; --i) {
        running += dgamma[i];
        c.dlog_alpha[(b * T + t0 + i) * H_ + h] = running;
        c.dbeta[(b * T + t0 + i) * H_ + h] = dbeta[i];
      }
      dQh.middleRows(t0, n) = dQ;
      dKh.middleRows(t0, n) = dK;
      dVh.middleRows(t0, n) = dV;
      dS = std::move(dS_prev);
    }
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  DeltaOptions o_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(
    Entry<DeltaNet, DeltaOptions>("delta", MixerKind::kSequence, "DeltaNet: delta-rule matrix state, chunked WY form")
        .Tests({.extra_cases = {
                    {"delta_chunk4_dhead6", "none", {{"chunk", "4"}, {"d-head", "6"}}},
                    {"delta_chunk1", "none", {{"chunk", "1"}}},
                    {"delta_gate_chunk4", "none", {{"gate", "true"}, {"chunk", "4"}}},
                    {"delta_gate_temperature1", "none", {{"gate", "true"}, {"gate-temperature", "1"}, {"chunk", "5"}}},
                }}));

}  // namespace mixlab
