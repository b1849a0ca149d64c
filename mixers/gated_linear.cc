// Gated linear recurrences: one chunked kernel for several published mixers.
//
//   S_t = diag(g_t) S_{t-1} + k_t v_t^T      (per head: S is d_head x d_head, g_t in (0, 1]^{d_head})
//   o_t = S_t^T q_t ;  y = o Wo
//
// gate = gla     data-dependent, g_t = sigmoid(x_t Wg1 Wg2 + bg)^(1/16)    (Yang et al. 2024, GLA)
//        retnet  fixed per-head decay g = 1 - 2^(-5-h)                     (Sun et al. 2023, RetNet)
//        none    g = 1: plain (unnormalised) causal linear attention
// With a_t = log g_t and B_t = sum_{r<=t} a_r, o_t = sum_{s<=t} sum_d q_td k_sd exp(B_td - B_sd) v_s. The
// chunked scan computes the intra-chunk part directly with exp(B_t - B_s) <= 1 (stable for any gate) and
// carries the d_head x d_head state across chunks: O(T * C * d_head + T * d_head^2) time, O(T * H * d_head)
// memory. The context saves q, k, v, the log-gates and the gate pre-activations; backward rescans the chunk
// states. Since B enters only through exp(B_t - B_s) next to q_t and k_s, dB = q * dq - k * dk exactly, so
// the gate gradient follows from dq and dk by a reverse cumulative sum. Step keeps S (O(1) per token).
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/row_block_sums.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct GlaOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  std::string gate = "gla";
  int gate_rank = 16;
  float gate_temperature = 16.0f;
  int chunk = 64;
  std::string impl = "chunked";
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Choice("gate", gate, "gla: data-dependent; retnet: fixed per-head decay; none: plain linear attention",
             {"gla", "retnet", "none"});
    v.Int("gate-rank", gate_rank, "rank of the gla gate projection", 1, 4096);
    v.Float("gate-temperature", gate_temperature, "gla gate: log g = logsigmoid(.) / temperature", 1.0f, 1000.0f);
    v.Int("chunk", chunk, "tokens per chunk of the chunked scan (quadratic inside a chunk)", 1, 4096);
    v.Choice("impl", impl, "chunked scan, or the naive O(T^2) reference", {"chunked", "naive"});
  }
};

// The gate parameters follow the four projections.
enum GateParam { kGateDown = kQkvoEnd, kGateUp, kGateBias };

struct GlaContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q, k, v, a, gate_hidden, gate_pre, o;  // q, k, v, a, gate_pre, o: (B, T, HD); gate_hidden (B, T, rank)
  Buffer dq, dk, dv, da, dtmp;
};

struct GlaState : CopyableState<GlaState> {
  int B = 0;
  Buffer S;  // (B, H, dh, dh)
};

class GatedLinear : public SequenceMixer<GlaContext, GlaState> {
 public:
  GatedLinear(const MixerDims& dims, const GlaOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, o.d_head);
    HD_ = H_ * dh_;
    gla_ = o.gate == "gla";
  }
  std::vector<ParamSpec> Params() const override {
    auto p = QkvoParams(dims_, H_, HD_);
    if (gla_) {
      p.push_back({"wg1", {D_, o_.gate_rank}, Init::kNormal, InputStd(dims_, D_)});
      p.push_back({"wg2", {o_.gate_rank, HD_}, Init::kNormal, InputStd(dims_, o_.gate_rank)});
      p.push_back({"bg", {HD_}, Init::kCustom, 0, false});
    }
    return p;
  }
  // Gate bias so that g starts near 1 (sigmoid(bg)^(1/tau) in [0.99, 0.999]): long memory at initialisation.
  void InitCustomParams(uint64_t seed) override {
    if (!gla_) return;
    Rng rng(seed, 77);
    for (int i = 0; i < HD_; ++i)
      params_[kGateBias].value[i] = GateBiasForDecay(0.99 + 0.009 * rng.Uniform(), o_.gate_temperature);
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, GlaContext& c, const ForwardMode&) override {
    c.B = B;
    c.T = T;
    const int64_t N = int64_t(B) * T;
    c.x.assign(x, x + N * D_);
    for (auto* b : {&c.q, &c.k, &c.v, &c.a, &c.o}) b->resize(N * HD_);
    LinearForward(x, P(kWq), c.q.data(), N, D_, HD_);
    LinearForward(x, P(kWk), c.k.data(), N, D_, HD_);
    LinearForward(x, P(kWv), c.v.data(), N, D_, HD_);
    LogGates(x, N, c.a.data(), &c);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      RowMatrix Bc = CumulativeGates(c.a, b, h, T);
      RowMatrix out(T, dh_);
      if (o_.impl == "naive") NaiveForward(Head(c.q, b, h, T), Head(c.k, b, h, T), Head(c.v, b, h, T), Bc, out);
      else ChunkedForward(Head(c.q, b, h, T), Head(c.k, b, h, T), Head(c.v, b, h, T), Bc, out);
      AsStrided(c.o.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = out;
    }
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(GlaContext& c, const float* dy, float* dx) override {
    const int64_t B = c.B, T = c.T, N = B * T;
    c.dtmp.resize(N * HD_);
    for (auto* b : {&c.dq, &c.dk, &c.dv, &c.da}) b->resize(N * HD_);  // every head writes its columns
    LinearBackward(c.o.data(), P(kWo), dy, c.dtmp.data(), G(kWo), N, HD_, D_);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_;
      RowMatrix Bc = CumulativeGates(c.a, b, h, T);
      auto Q = Head(c.q, b, h, T), K = Head(c.k, b, h, T), V = Head(c.v, b, h, T), dO = Head(c.dtmp, b, h, T);
      RowMatrix dQ(T, dh_), dK(T, dh_), dV(T, dh_);
      if (o_.impl == "naive") NaiveBackward(Q, K, V, Bc, dO, dQ, dK, dV);
      else ChunkedBackward(Q, K, V, Bc, dO, dQ, dK, dV);
      AsStrided(c.dq.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dQ;
      AsStrided(c.dk.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dK;
      AsStrided(c.dv.data() + b * T * HD_ + h * dh_, T, dh_, HD_) = dV;
      if (gla_) {  // dB = q * dq - k * dk, then da_r = sum_{t >= r} dB_t
        RowMatrix dB = Q.cwiseProduct(dQ) - K.cwiseProduct(dK);
        auto dA = AsStrided(c.da.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
        Eigen::RowVectorXf running = Eigen::RowVectorXf::Zero(dh_);
        for (int64_t t = T - 1; t >= 0; --t) {
          running += dB.row(t);
          dA.row(t) = running;
        }
      }
    }
    LinearBackward(c.x.data(), P(kWq), c.dq.data(), dx, G(kWq), N, D_, HD_);
    LinearBackward(c.x.data(), P(kWk), c.dk.data(), dx, G(kWk), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(kWv), c.dv.data(), dx, G(kWv), N, D_, HD_, true);
    if (gla_) GateBackward(c, dx);
  }

  void InitState(GlaState& s, int B) const override {
    s.B = B;
    s.S.assign(int64_t(B) * H_ * dh_ * dh_, 0.0f);
  }

  void MixStep(const float* x, const int32_t*, float* y, GlaState& s) override {
    const int B = s.B;
    Buffer q(int64_t(B) * HD_), k(q.size()), v(q.size()), a(q.size()), o(q.size());
    LinearForward(x, P(kWq), q.data(), B, D_, HD_);
    LinearForward(x, P(kWk), k.data(), B, D_, HD_);
    LinearForward(x, P(kWv), v.data(), B, D_, HD_);
    LogGates(x, B, a.data(), nullptr);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H_; ++h) {
        auto S = AsMatrix(s.S.data() + (int64_t(b) * H_ + h) * dh_ * dh_, dh_, dh_);
        const int64_t off = int64_t(b) * HD_ + h * dh_;
        Eigen::Map<const Eigen::VectorXf> qh(q.data() + off, dh_), kh(k.data() + off, dh_), vh(v.data() + off, dh_),
            ah(a.data() + off, dh_);
        S = ah.array().exp().matrix().asDiagonal() * S;
        S.noalias() += kh * vh.transpose();
        Eigen::Map<Eigen::RowVectorXf>(o.data() + off, dh_) = qh.transpose() * S;
      }
    LinearForward(o.data(), P(kWo), y, B, HD_, D_);
  }

  // The implied kernel W_ts = sum_d q_td k_sd exp(B_td - B_sd), s <= t, per head: o = W v exactly.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    Buffer q(int64_t(T) * HD_), k(q.size()), a(q.size());
    LinearForward(x, P(kWq), q.data(), T, D_, HD_);
    LinearForward(x, P(kWk), k.data(), T, D_, HD_);
    LogGates(x, T, a.data(), nullptr);
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) {
      RowMatrix Bc = CumulativeGates(a, 0, h, T);
      maps.push_back(Kernel(Head(q, 0, h, T), Head(k, 0, h, T), Bc, 0, T, 0, T));
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
    d.flops_per_token = 2.0 * 4 * D_ * HD_ + 2.0 * H_ * (2 * C * dh_ + 3.0 * dh_ * dh_) +
                        (gla_ ? 2.0 * o_.gate_rank * (D_ + HD_) : 0.0);
    return d;
  }

 private:
  ConstStridedMap Head(const Buffer& buf, int64_t b, int64_t h, int64_t T) const {
    return AsStrided(buf.data() + b * T * HD_ + h * dh_, T, dh_, HD_);
  }

  // a (N, HD) = log g for N tokens x (N, D). Keeps the gate activations in ctx when given.
  void LogGates(const float* x, int64_t N, float* a, GlaContext* ctx) const {
    if (o_.gate == "none") {
      std::fill(a, a + N * HD_, 0.0f);
      return;
    }
    if (o_.gate == "retnet") {
      for (int64_t n = 0; n < N; ++n)
        for (int h = 0; h < H_; ++h)
          std::fill(a + n * HD_ + h * dh_, a + n * HD_ + (h + 1) * dh_, std::log1p(-std::pow(2.0f, -5.0f - float(h))));
      return;
    }
    Buffer hidden(N * o_.gate_rank), pre(N * HD_);
    LinearForward(x, P(kGateDown), hidden.data(), N, D_, o_.gate_rank);
    LinearForward(hidden.data(), P(kGateUp), pre.data(), N, o_.gate_rank, HD_);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      Eigen::Map<Eigen::ArrayXf> z(pre.data() + n * HD_, HD_);
      z += Eigen::Map<const Eigen::ArrayXf>(P(kGateBias), HD_);
      Eigen::Map<Eigen::ArrayXf>(a + n * HD_, HD_) = LogSigmoid(z) / o_.gate_temperature;
    }
    if (ctx) {
      ctx->gate_hidden = std::move(hidden);
      ctx->gate_pre = std::move(pre);
    }
  }

  void GateBackward(GlaContext& c, float* dx) {
    const int64_t N = int64_t(c.B) * c.T, R = o_.gate_rank;
    Buffer dpre(N * HD_), dhidden(N * R);
    AddRowBlockSums(N, HD_, G(kGateBias), [&](int64_t n, float* acc) {  // a = log sigmoid(pre) / temperature
      const int64_t at = n * HD_;
      Eigen::Map<Eigen::ArrayXf> d(dpre.data() + at, HD_);
      d = Eigen::Map<const Eigen::ArrayXf>(c.da.data() + at, HD_) *
          (1.0f - Sigmoid(Eigen::Map<const Eigen::ArrayXf>(c.gate_pre.data() + at, HD_))) / o_.gate_temperature;
      Eigen::Map<Eigen::ArrayXf>(acc, HD_) += d;
    });
    LinearBackward(c.gate_hidden.data(), P(kGateUp), dpre.data(), dhidden.data(), G(kGateUp), N, R, HD_);
    LinearBackward(c.x.data(), P(kGateDown), dhidden.data(), dx, G(kGateDown), N, D_, R, true);
  }

  // Cumulative log-gates B_t = sum_{r<=t} a_r of one head, (T, dh).
  RowMatrix CumulativeGates(const Buffer& a, int64_t b, int64_t h, int64_t T) const {
    RowMatrix Bc(T, dh_);
    auto A = Head(a, b, h, T);
    Eigen::RowVectorXf run = Eigen::RowVectorXf::Zero(dh_);
    for (int64_t t = 0; t < T; ++t) Bc.row(t) = run += A.row(t);
    return Bc;
  }

  // W (nt, ns) with W_ts = sum_d q_td k_sd exp(B_td - B_sd) for t in [t0, t0+nt), s in [s0, s0+ns), s <= t.
  RowMatrix Kernel(ConstStridedMap Q, ConstStridedMap K, const RowMatrix& Bc, int64_t t0, int64_t nt, int64_t s0,
                   int64_t ns) const {
    RowMatrix W = RowMatrix::Zero(nt, ns);
    for (int64_t i = 0; i < nt; ++i)
      for (int64_t j = 0; j < ns && s0 + j <= t0 + i; ++j)  // one vectorised exp over the head's dh channels
        W(i, j) =
            (Q.row(t0 + i).array() * K.row(s0 + j).array() * (Bc.row(t0 + i) - Bc.row(s0 + j)).array().exp()).sum();
    return W;
  }

  void NaiveForward(ConstStridedMap Q, ConstStridedMap K, ConstStridedMap V, const RowMatrix& Bc,
                    RowMatrix& out) const {
    const int64_t T = Q.rows();
    out.noalias() = Kernel(Q, K, Bc, 0, T, 0, T) * V;
  }

  void NaiveBackward(ConstStridedMap Q, ConstStridedMap K, ConstStridedMap V, const RowMatrix& Bc, ConstStridedMap dO,
                     RowMatrix& dQ, RowMatrix& dK, RowMatrix& dV) const {
    const int64_t T = Q.rows();
    const RowMatrix W = Kernel(Q, K, Bc, 0, T, 0, T);
    const RowMatrix dW = (dO * V.transpose()).triangularView<Eigen::Lower>();
    dV.noalias() = W.transpose() * dO;
    dQ.setZero();
    dK.setZero();
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s <= t; ++s)
        for (int d = 0; d < dh_; ++d) {
          const float e = std::exp(Bc(t, d) - Bc(s, d)) * dW(t, s);
          dQ(t, d) += e * K(s, d);
          dK(s, d) += e * Q(t, d);
        }
  }

  // Decay of the chunk's keys to its end: Kd_s = k_s * exp(B_end - B_s), (n, dh).
  RowMatrix DecayedKeys(ConstStridedMap K, const RowMatrix& Bc, int64_t t0, int64_t n) const {
    RowMatrix Kd(n, dh_);
    for (int64_t j = 0; j < n; ++j)
      Kd.row(j) = K.row(t0 + j).array() * (Bc.row(t0 + n - 1) - Bc.row(t0 + j)).array().exp();
    return Kd;
  }
  // Queries scaled by their decay since the chunk start: Qd_t = q_t * exp(B_t - B_{t0-1}), (n, dh).
  RowMatrix DecayedQueries(ConstStridedMap Q, const RowMatrix& Bc, int64_t t0, int64_t n) const {
    RowMatrix Qd(n, dh_);
    for (int64_t i = 0; i < n; ++i) {
      Eigen::RowVectorXf rel = Bc.row(t0 + i);
      if (t0 > 0) rel -= Bc.row(t0 - 1);
      Qd.row(i) = Q.row(t0 + i).array() * rel.array().exp();
    }
    return Qd;
  }
  // exp(B_end - B_{t0-1}): the decay across a whole chunk, (dh).
  Eigen::VectorXf ChunkDecay(const RowMatrix& Bc, int64_t t0, int64_t n) const {
    Eigen::RowVectorXf rel = Bc.row(t0 + n - 1);
    if (t0 > 0) rel -= Bc.row(t0 - 1);
    return rel.array().exp().transpose();
  }

  void ChunkedForward(ConstStridedMap Q, ConstStridedMap K, ConstStridedMap V, const RowMatrix& Bc,
                      RowMatrix& out) const {
    const int64_t T = Q.rows(), C = std::min<int64_t>(o_.chunk, T);
    RowMatrix S = RowMatrix::Zero(dh_, dh_);
    for (int64_t t0 = 0; t0 < T; t0 += C) {
      const int64_t n = std::min(C, T - t0);
      out.middleRows(t0, n).noalias() = Kernel(Q, K, Bc, t0, n, t0, n) * V.middleRows(t0, n);
      out.middleRows(t0, n).noalias() += DecayedQueries(Q, Bc, t0, n) * S;
      S = ChunkDecay(Bc, t0, n).asDiagonal() * S;
      S.noalias() += DecayedKeys(K, Bc, t0, n).transpose() * V.middleRows(t0, n);
    }
  }

  void ChunkedBackward(ConstStridedMap Q, ConstStridedMap K, ConstStridedMap V, const RowMatrix& Bc, ConstStridedMap dO,
                       RowMatrix& dQ, RowMatrix& dK, RowMatrix& dV) const {
    const int64_t T = Q.rows(), C = std::min<int64_t>(o_.chunk, T);
    RowMatrix S = RowMatrix::Zero(dh_, dh_);
    for (int64_t t0 = 0; t0 < T; t0 += C) {  // forward scan: dQ
      const int64_t n = std::min(C, T - t0);
      const RowMatrix dW = (dO.middleRows(t0, n) * V.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      for (int64_t i = 0; i < n; ++i) {
        Eigen::RowVectorXf acc = Eigen::RowVectorXf::Zero(dh_);
        for (int64_t j = 0; j <= i; ++j)
          acc.array() += dW(i, j) * K.row(t0 + j).array() * (Bc.row(t0 + i) - Bc.row(t0 + j)).array().exp();
        dQ.row(t0 + i) = acc;
      }
      Eigen::RowVectorXf start = t0 > 0 ? Eigen::RowVectorXf(Bc.row(t0 - 1)) : Eigen::RowVectorXf::Zero(dh_);
      for (int64_t i = 0; i < n; ++i)
        dQ.row(t0 + i).array() +=
            (S * dO.row(t0 + i).transpose()).transpose().array() * (Bc.row(t0 + i) - start).array().exp();
      S = ChunkDecay(Bc, t0, n).asDiagonal() * S;
      S.noalias() += DecayedKeys(K, Bc, t0, n).transpose() * V.middleRows(t0, n);
    }
    RowMatrix R = RowMatrix::Zero(dh_, dh_);  // sum over later chunks of exp(B_t - B_end) q_t do_t^T
    const int64_t last = ((T - 1) / C) * C;
    for (int64_t t0 = last; t0 >= 0; t0 -= C) {  // reverse scan: dK, dV
      const int64_t n = std::min(C, T - t0);
      const RowMatrix W = Kernel(Q, K, Bc, t0, n, t0, n);
      const RowMatrix dW = (dO.middleRows(t0, n) * V.middleRows(t0, n).transpose()).triangularView<Eigen::Lower>();
      const RowMatrix Kd = DecayedKeys(K, Bc, t0, n);
      dV.middleRows(t0, n).noalias() = W.transpose() * dO.middleRows(t0, n);
      dV.middleRows(t0, n).noalias() += Kd * R;
      for (int64_t j = 0; j < n; ++j) {
        Eigen::RowVectorXf acc = Eigen::RowVectorXf::Zero(dh_);
        for (int64_t i = j; i < n; ++i)
          acc.array() += dW(i, j) * Q.row(t0 + i).array() * (Bc.row(t0 + i) - Bc.row(t0 + j)).array().exp();
        const Eigen::RowVectorXf to_end = (Bc.row(t0 + n - 1) - Bc.row(t0 + j)).array().exp();
        dK.row(t0 + j) = acc.array() + (R * V.row(t0 + j).transpose()).transpose().array() * to_end.array();
      }
      R = ChunkDecay(Bc, t0, n).asDiagonal() * R;
      R.noalias() += DecayedQueries(Q, Bc, t0, n).transpose() * dO.middleRows(t0, n);
    }
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  GlaOptions o_;
  MixerDims dims_;
  bool gla_ = true;
};

}  // namespace

MIXLAB_REGISTER_MIXER(
    Entry<GatedLinear, GlaOptions>("gla", MixerKind::kSequence,
                                   "gated linear recurrence (gla data-dependent / retnet fixed decay / none), chunked")
        .Tests({.extra_cases = {
                    {"gla_chunk4", "none", {{"chunk", "4"}, {"gate-rank", "3"}}},
                    {"gla_naive", "none", {{"impl", "naive"}}},
                    {"gla_retnet_chunk5", "none", {{"gate", "retnet"}, {"chunk", "5"}}},
                    {"gla_none_chunk3", "none", {{"gate", "none"}, {"chunk", "3"}}},
                }}));

}  // namespace mixlab
