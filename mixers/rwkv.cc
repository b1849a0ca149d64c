// RWKV-4 time mixing (Peng et al. 2023, "RWKV: Reinventing RNNs for the Transformer Era"), per channel c:
//
//   x^k = shift_{mu_k}(x), x^v = shift_{mu_v}(x), x^r = shift_{mu_r}(x)       token shift (mixers/token_shift.h)
//   k = x^k Wk, v = x^v Wv, r = x^r Wr                                       (D, C) each, C = d_model
//   wkv_t = (sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (sum_{i<t} e^{(t-1-i) w + k_i} + e^{u + k_t})
//   y = (sigmoid(r) .* wkv) Wo                                               w = -exp(time_decay) < 0, u = time_first
//
// The WKV recurrence runs in the numerically stable form of the official kernel: the running sums are carried divided
// by e^o, o their largest exponent so far. Backward runs the recurrence in reverse with its own running maximum, so
// every exponential it takes is of a non-positive number (see WkvBackward). Mixing: per channel the weights
// e_{t,i} / sum_i e_{t,i} over v, averaged over `mixing-groups` groups of channels; the value path is v with the gate
// sigmoid(r), exact with one channel per group. Wo is the per-group output projection.
// Cost O(T * D * C) for the four projections plus O(T * C) for the recurrence; decoding state 3C + D floats
// (the scaled sums, their exponent, the previous token). Saves x, the three shifted inputs, k, v, r, wkv and, per
// token and channel, the exponent and scaled denominator of its output.
#include <algorithm>
#include <cmath>

#include "mixers/head_groups.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/registry.h"
#include "mixers/token_shift.h"

namespace mixlab {
namespace {

struct RwkvOptions : Options {
  int mixing_groups = 4;
  void Visit(OptionVisitor& v) override {
    v.Int("mixing-groups", mixing_groups, "channel groups in the exported mixing matrices (capped at d_model)", 1,
          1 << 16);
  }
};

enum Param { kMixK, kMixV, kMixR, kTimeDecay, kTimeFirst, kWk, kWv, kWr, kWo };

constexpr float kMinExponent = -1e38f;  // the exponent of an empty sum

// The recurrences run over blocks of up to kLanes consecutive channels at once: a token's values of a block are
// contiguous, and every channel's recurrence is the same arithmetic, so each step is a few vector operations.
constexpr int kLanes = 16;
using Lanes = Eigen::Array<float, Eigen::Dynamic, 1, 0, kLanes, 1>;  // no heap: at most kLanes values
using LaneMap = Eigen::Map<Eigen::ArrayXf>;
using ConstLaneMap = Eigen::Map<const Eigen::ArrayXf>;

struct RwkvContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, xk, xv, xr, k, v, r, wkv, out_exp, out_den, gated;  // (B, T, C); x and the shifted inputs (B, T, D)
  Buffer dgated, dk, dv, dr, dxk, dxv, dxr, du_parts, dw_parts;
};

struct RwkvState : CopyableState<RwkvState> {
  int B = 0;
  Buffer prev;     // (B, D): the last token's input
  Buffer p, q, o;  // (B, C): numerator and denominator sums divided by e^o
};

class Rwkv : public SequenceMixer<RwkvContext, RwkvState> {
 public:
  Rwkv(const MixerDims& dims, const RwkvOptions& o) : D_(dims.d_model), C_(dims.d_model), o_(o), dims_(dims) {}

  std::vector<ParamSpec> Params() const override {
    return {{"time_mix_k", {D_}, Init::kCustom, 0, false},
            {"time_mix_v", {D_}, Init::kCustom, 0, false},
            {"time_mix_r", {D_}, Init::kCustom, 0, false},
            {"time_decay", {C_}, Init::kCustom, 0, false},
            {"time_first", {C_}, Init::kCustom, 0, false},
            {"wk", {D_, C_}, Init::kNormal, InputStd(dims_, D_)},
            {"wv", {D_, C_}, Init::kNormal, InputStd(dims_, D_)},
            {"wr", {D_, C_}, Init::kNormal, InputStd(dims_, D_)},
            {"wo", {C_, D_}, Init::kNormal, ResidualOutputStd(dims_, C_), true, ParamRole::kHeadOutput, Groups()}};
  }
  // RWKV-4's initialisation: decays spread from slow to fast over the channels (w from -e^-5 to -e^3), a bonus u of
  // log 0.3, token-shift mixes rising over the channels (v mixes more of the current token, r less).
  void InitCustomParams(uint64_t) override {
    for (int c = 0; c < C_; ++c) {
      const double ratio = C_ > 1 ? double(c) / (C_ - 1) : 0.0;
      params_[kTimeDecay].value[c] = float(-5.0 + 8.0 * std::pow(ratio, 0.7));
      params_[kTimeFirst].value[c] = float(std::log(0.3));
    }
    for (int d = 0; d < D_; ++d) {
      const double ratio = double(d) / D_;
      params_[kMixK].value[d] = float(ratio);
      params_[kMixV].value[d] = float(std::min(1.0, ratio + 0.3));
      params_[kMixR].value[d] = float(0.5 * ratio);
    }
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, RwkvContext& c, const ForwardMode&) override {
    Project(x, B, T, c);
    const int64_t N = int64_t(B) * T;
    c.wkv.resize(N * C_);
    c.out_exp.resize(N * C_);
    c.out_den.resize(N * C_);
    const int64_t blocks = (C_ + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < int64_t(B) * blocks; ++job) {
      const int64_t b = job / blocks, ch0 = job % blocks * kLanes;
      const int n = int(std::min<int64_t>(kLanes, C_ - ch0));
      float p[kLanes] = {}, q[kLanes] = {}, o[kLanes];
      std::fill_n(o, n, kMinExponent);
      const Lanes w = Decays(int(ch0), n);
      for (int t = 0; t < T; ++t) {
        const int64_t i = (b * T + t) * C_ + ch0;
        WkvStep(int(ch0), w, c.k.data() + i, c.v.data() + i, p, q, o, c.wkv.data() + i, c.out_exp.data() + i,
                c.out_den.data() + i);
      }
    }
    c.gated.resize(N * C_);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < N * C_; ++i) c.gated[i] = Sigmoid(c.r[i]) * c.wkv[i];
    LinearForward(c.gated.data(), P(kWo), y, N, C_, D_);
  }

  void MixBackward(RwkvContext& c, const float* dy, float* dx) override {
    const int64_t B = c.B, T = c.T, N = B * T;
    c.dgated.resize(N * C_);
    LinearBackward(c.gated.data(), P(kWo), dy, c.dgated.data(), G(kWo), N, C_, D_);
    c.dr.resize(N * C_);
    c.dk.assign(N * C_, 0.0f);
    c.dv.assign(N * C_, 0.0f);
    Buffer dwkv(N * C_);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < N * C_; ++i) {
      const float s = Sigmoid(c.r[i]);
      dwkv[i] = c.dgated[i] * s;
      c.dr[i] = c.dgated[i] * c.wkv[i] * s * (1.0f - s);
    }
    c.du_parts.assign(B * C_, 0.0f);
    c.dw_parts.assign(B * C_, 0.0f);
    const int64_t blocks = (C_ + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < B * blocks; ++job) WkvBackward(c, dwkv.data(), job / blocks, job % blocks * kLanes);
    for (int64_t b = 0; b < B; ++b)  // per-sequence partial sums, added in a fixed order
      for (int ch = 0; ch < C_; ++ch) {
        G(kTimeFirst)[ch] += c.du_parts[b * C_ + ch];
        G(kTimeDecay)[ch] += c.dw_parts[b * C_ + ch] * Decay(ch);  // w = -exp(time_decay): dw/dtime_decay = w
      }
    for (auto* buf : {&c.dxk, &c.dxv, &c.dxr}) buf->resize(N * D_);
    LinearBackward(c.xk.data(), P(kWk), c.dk.data(), c.dxk.data(), G(kWk), N, D_, C_);
    LinearBackward(c.xv.data(), P(kWv), c.dv.data(), c.dxv.data(), G(kWv), N, D_, C_);
    LinearBackward(c.xr.data(), P(kWr), c.dr.data(), c.dxr.data(), G(kWr), N, D_, C_);
    std::fill(dx, dx + N * D_, 0.0f);
    TokenShiftBackward(c.x.data(), P(kMixK), c.dxk.data(), B, T, D_, dx, G(kMixK));
    TokenShiftBackward(c.x.data(), P(kMixV), c.dxv.data(), B, T, D_, dx, G(kMixV));
    TokenShiftBackward(c.x.data(), P(kMixR), c.dxr.data(), B, T, D_, dx, G(kMixR));
  }

  void InitState(RwkvState& s, int B) const override {
    s.B = B;
    s.prev.assign(int64_t(B) * D_, 0.0f);
    s.p.assign(int64_t(B) * C_, 0.0f);
    s.q.assign(int64_t(B) * C_, 0.0f);
    s.o.assign(int64_t(B) * C_, kMinExponent);
  }

  void MixStep(const float* x, const int32_t*, float* y, RwkvState& s) override {
    RwkvContext c;
    Project(x, s.B, 1, c, s.prev.data());
    Buffer wkv(int64_t(s.B) * C_), out_exp(wkv.size()), out_den(wkv.size()), gated(wkv.size());
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t ch0 = 0; ch0 < C_; ch0 += kLanes) {
        const int64_t i = b * C_ + ch0;
        WkvStep(int(ch0), Decays(int(ch0), int(std::min<int64_t>(kLanes, C_ - ch0))), c.k.data() + i, c.v.data() + i,
                s.p.data() + i, s.q.data() + i, s.o.data() + i, wkv.data() + i, out_exp.data() + i, out_den.data() + i);
      }
    for (int64_t i = 0; i < int64_t(s.B) * C_; ++i) gated[i] = Sigmoid(c.r[i]) * wkv[i];
    std::copy_n(x, int64_t(s.B) * D_, s.prev.data());
    LinearForward(gated.data(), P(kWo), y, s.B, C_, D_);
  }

  // Per channel alpha_c[t, i] = e_{t,i} / sum_i e_{t,i}: the weight of v_i in wkv_t, averaged over each group.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    RwkvContext c;
    Mix(x, nullptr, 1, T, Buffer(int64_t(T) * D_).data(), c, ForwardMode{});
    const int groups = Groups();
    std::vector<RowMatrix> maps(groups, RowMatrix::Zero(T, T));
    const std::vector<int64_t> sizes = HeadGroupSizes(C_, groups);
    for (int ch = 0; ch < C_; ++ch) {
      const int g = HeadGroupOfRow(ch, C_, groups);
      const float scale = 1.0f / float(sizes[g]);
      const float w = Decay(ch), u = P(kTimeFirst)[ch];
      for (int t = 0; t < T; ++t) {
        const int64_t at = int64_t(t) * C_ + ch;
        for (int i = 0; i < t; ++i)
          maps[g](t, i) +=
              scale * std::exp(float(t - 1 - i) * w + c.k[int64_t(i) * C_ + ch] - c.out_exp[at]) / c.out_den[at];
        maps[g](t, t) += scale * std::exp(u + c.k[at] - c.out_exp[at]) / c.out_den[at];
      }
    }
    return maps;
  }
  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    RwkvContext c;
    Project(x, 1, T, c);
    RowMatrix gate(T, C_);
    for (int64_t i = 0; i < int64_t(T) * C_; ++i) gate.data()[i] = Sigmoid(c.r[i]);
    return {AsMatrix(c.v.data(), T, C_), std::move(gate)};
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_fixed = 3 * C_ + D_;
    d.flops_per_token = 2.0 * 4 * D_ * C_ + 20.0 * C_ + 9.0 * D_;
    return d;
  }

 private:
  int Groups() const { return std::min(o_.mixing_groups, C_); }
  float Decay(int ch) const { return -std::exp(P(kTimeDecay)[ch]); }  // w < 0
  Lanes Decays(int ch0, int n) const { return -ConstLaneMap(P(kTimeDecay) + ch0, n).exp(); }

  // The shifted inputs and k, v, r of B sequences of T tokens; `first_prev` (B, D) the token before each (decoding).
  void Project(const float* x, int B, int T, RwkvContext& c, const float* first_prev = nullptr) const {
    const int64_t N = int64_t(B) * T;
    c.B = B;
    c.T = T;
    c.x.assign(x, x + N * D_);
    for (auto* buf : {&c.xk, &c.xv, &c.xr}) buf->resize(N * D_);
    for (auto* buf : {&c.k, &c.v, &c.r}) buf->resize(N * C_);
    TokenShift(x, P(kMixK), first_prev, B, T, D_, c.xk.data());
    TokenShift(x, P(kMixV), first_prev, B, T, D_, c.xv.data());
    TokenShift(x, P(kMixR), first_prev, B, T, D_, c.xr.data());
    LinearForward(c.xk.data(), P(kWk), c.k.data(), N, D_, C_);
    LinearForward(c.xv.data(), P(kWv), c.v.data(), N, D_, C_);
    LinearForward(c.xr.data(), P(kWr), c.r.data(), N, D_, C_);
  }

  // One token of channels [ch0, ch0 + n), n = w.size(), with their decays w (k, v and the outputs point at the token's
  // values of those channels): writes wkv_t, the output's exponent and scaled denominator (wkv_t = num / den with both
  // divided by e^exp), and advances the scaled sums (p, q) and their exponent o.
  void WkvStep(int ch0, const Lanes& w, const float* k_in, const float* v_in, float* p_io, float* q_io, float* o_io,
               float* wkv, float* out_exp, float* out_den) const {
    const int n = int(w.size());
    const ConstLaneMap k(k_in, n), v(v_in, n), u(P(kTimeFirst) + ch0, n);
    LaneMap p(p_io, n), q(q_io, n), o(o_io, n);
    Lanes top = o.max(u + k), a = (o - top).exp(), b = (u + k - top).exp();
    const Lanes den = a * q + b;
    LaneMap(wkv, n) = (a * p + b * v) / den;
    LaneMap(out_exp, n) = top, LaneMap(out_den, n) = den;
    top = (w + o).max(k);
    a = (w + o - top).exp();
    b = (k - top).exp();
    p = a * p + b * v;
    q = a * q + b;
    o = top;
  }

  // The recurrence in reverse for sequence b, channels [ch0, ch0 + kLanes) side by side (fewer at the end), given
  // g = dL/dwkv. Per channel, with alpha_t = g_t / den_t and
  // beta_t = g_t wkv_t / den_t (den_t = out_den_t e^{out_exp_t}), for each i
  //   dv_i = e^{u+k_i} alpha_i + e^{k_i} A_i,   dk_i = e^{u+k_i} (v_i alpha_i - beta_i) + e^{k_i} (v_i A_i - B_i),
  //   du += e^{u+k_i} (v_i alpha_i - beta_i),   dw += e^{k_i} (v_i A'_i - B'_i),
  // with A_i = sum_{t>i} e^{(t-1-i) w} alpha_t and A'_i = sum_{t>i} (t-1-i) e^{(t-1-i) w} alpha_t (B, B' with beta):
  //   A_i = e^w A_{i+1} + alpha_{i+1},  A'_i = e^w (A'_{i+1} + A_{i+1}).
  // The sums are carried divided by e^m (m their largest exponent); since out_exp_t >= (t-1-i) w + k_i for every
  // i < t, k_i + m_i <= 0 and e^{u+k_i-out_exp_i} <= 1: no exponential here can overflow.
  void WkvBackward(RwkvContext& c, const float* g, int64_t b, int64_t ch0) const {
    const int n = int(std::min<int64_t>(kLanes, C_ - ch0));
    const Lanes w = Decays(int(ch0), n);
    const ConstLaneMap u(P(kTimeFirst) + ch0, n);
    const int64_t T = c.T;
    Lanes m = Lanes::Constant(n, kMinExponent), pa = Lanes::Zero(n), pb = pa, pa2 = pa, pb2 = pa, du = pa, dw = pa;
    auto at = [&](const Buffer& buf, int64_t i) { return ConstLaneMap(buf.data() + (b * T + i) * C_ + ch0, n); };
    for (int64_t i = T - 1; i >= 0; --i) {
      if (i + 1 < T) {  // bring in t = i + 1
        const Lanes alpha = ConstLaneMap(g + (b * T + i + 1) * C_ + ch0, n) / at(c.out_den, i + 1),
                    beta = alpha * at(c.wkv, i + 1), fresh_exp = -at(c.out_exp, i + 1);
        const Lanes top = (w + m).max(fresh_exp);
        const Lanes decay = (w + m - top).exp(), fresh = (fresh_exp - top).exp();
        pa2 = decay * (pa2 + pa);
        pb2 = decay * (pb2 + pb);
        pa = decay * pa + fresh * alpha;
        pb = decay * pb + fresh * beta;
        m = top;
      }
      const ConstLaneMap v = at(c.v, i), k = at(c.k, i);
      const Lanes diag = (u + k - at(c.out_exp, i)).exp();
      const Lanes alpha = ConstLaneMap(g + (b * T + i) * C_ + ch0, n) / at(c.out_den, i), beta = alpha * at(c.wkv, i);
      const Lanes past = (k + m).exp();
      LaneMap(c.dv.data() + (b * T + i) * C_ + ch0, n) = diag * alpha + past * pa;
      LaneMap(c.dk.data() + (b * T + i) * C_ + ch0, n) = diag * (v * alpha - beta) + past * (v * pa - pb);
      du += diag * (v * alpha - beta);
      dw += past * (v * pa2 - pb2);
    }
    LaneMap(c.du_parts.data() + b * C_ + ch0, n) = du;
    LaneMap(c.dw_parts.data() + b * C_ + ch0, n) = dw;
  }

  int D_, C_;
  RwkvOptions o_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(
    Entry<Rwkv, RwkvOptions>("rwkv", MixerKind::kSequence,
                             "RWKV-4 time mixing: token shift, WKV recurrence (stable form), receptance")
        .Tests({.exact_mixing_options = {{"mixing-groups", "65536"}}}));

}  // namespace mixlab
