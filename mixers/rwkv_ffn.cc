// RWKV channel mixing (Peng et al. 2023), the channel slot of an RWKV block:
//
//   x^k = shift_{mu_k}(x), x^r = shift_{mu_r}(x)        token shift (mixers/token_shift.h)
//   y = sigmoid(x^r Wr) .* (relu(x^k Wk)^2 Wv)           Wk (D, F), Wv (F, D), Wr (D, D)
//
// Unlike the other channel mixers it reads the previous token, so it keeps a decoding state (that token, D floats)
// and uses the sequence-mixer base; it exports no mixing maps (it mixes one step back, always by the same mu).
// Cost O(T * D * F); saves x, the shifted inputs, the hidden pre-activation and the receptance.
#include <algorithm>

#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/registry.h"
#include "mixers/token_shift.h"

namespace mixlab {
namespace {

struct RwkvFfnOptions : Options {
  int d_ff = 0;
  void Visit(OptionVisitor& v) override { v.Int("d-ff", d_ff, "hidden width; 0 = 4 * d_model", 0, 1 << 16); }
};

enum Param { kMixK, kMixR, kWk, kWv, kWr };

struct RwkvFfnContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, xk, xr, h, a, kv, r;  // h = x^k Wk, a = relu(h)^2 (N, F); kv = a Wv, r = x^r Wr (N, D)
  Buffer dkv, dr, da, dxk, dxr;
};

struct RwkvFfnState : CopyableState<RwkvFfnState> {
  int B = 0;
  Buffer prev;  // (B, D)
};

class RwkvFfn : public SequenceMixer<RwkvFfnContext, RwkvFfnState> {
 public:
  RwkvFfn(const MixerDims& dims, const RwkvFfnOptions& o)
      : D_(dims.d_model), F_(o.d_ff ? o.d_ff : 4 * dims.d_model), dims_(dims) {}

  std::vector<ParamSpec> Params() const override {
    return {{"time_mix_k", {D_}, Init::kCustom, 0, false},
            {"time_mix_r", {D_}, Init::kCustom, 0, false},
            {"wk", {D_, F_}, Init::kNormal, InputStd(dims_, D_)},
            {"wv", {F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)},
            {"wr", {D_, D_}, Init::kNormal, InputStd(dims_, D_)}};
  }
  void InitCustomParams(uint64_t) override {
    for (int d = 0; d < D_; ++d) params_[kMixK].value[d] = params_[kMixR].value[d] = float(d) / D_;
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, RwkvFfnContext& c, const ForwardMode&) override {
    Run(x, B, T, y, c, nullptr);
  }

  void MixBackward(RwkvFfnContext& c, const float* dy, float* dx) override {
    const int64_t N = int64_t(c.B) * c.T;
    c.dkv.resize(N * D_);
    c.dr.resize(N * D_);
    for (int64_t i = 0; i < N * D_; ++i) {
      const float s = Sigmoid(c.r[i]);
      c.dkv[i] = dy[i] * s;
      c.dr[i] = dy[i] * c.kv[i] * s * (1.0f - s);
    }
    c.da.resize(N * F_);
    LinearBackward(c.a.data(), P(kWv), c.dkv.data(), c.da.data(), G(kWv), N, F_, D_);
    for (int64_t i = 0; i < N * F_; ++i) c.da[i] *= 2.0f * std::max(c.h[i], 0.0f);  // d relu(h)^2 / dh
    c.dxk.resize(N * D_);
    c.dxr.resize(N * D_);
    LinearBackward(c.xk.data(), P(kWk), c.da.data(), c.dxk.data(), G(kWk), N, D_, F_);
    LinearBackward(c.xr.data(), P(kWr), c.dr.data(), c.dxr.data(), G(kWr), N, D_, D_);
    std::fill(dx, dx + N * D_, 0.0f);
    TokenShiftBackward(c.x.data(), P(kMixK), c.dxk.data(), c.B, c.T, D_, dx, G(kMixK));
    TokenShiftBackward(c.x.data(), P(kMixR), c.dxr.data(), c.B, c.T, D_, dx, G(kMixR));
  }

  void InitState(RwkvFfnState& s, int B) const override {
    s.B = B;
    s.prev.assign(int64_t(B) * D_, 0.0f);
  }
  void MixStep(const float* x, const int32_t*, float* y, RwkvFfnState& s) override {
    RwkvFfnContext c;
    Run(x, s.B, 1, y, c, s.prev.data());
    std::copy_n(x, int64_t(s.B) * D_, s.prev.data());
  }

  MixerDescription Cost(int) const override {
    MixerDescription d;
    d.state_floats_fixed = D_;
    d.flops_per_token = 2.0 * (2 * D_ * F_ + D_ * D_) + 8.0 * D_ + 2.0 * F_;
    return d;
  }

 private:
  // The forward of B sequences of T tokens; `first_prev` (B, D) is the token before each (decoding), else zeros.
  void Run(const float* x, int B, int T, float* y, RwkvFfnContext& c, const float* first_prev) const {
    const int64_t N = int64_t(B) * T;
    c.B = B;
    c.T = T;
    c.x.assign(x, x + N * D_);
    for (auto* buf : {&c.xk, &c.xr, &c.kv, &c.r}) buf->resize(N * D_);
    c.h.resize(N * F_);
    c.a.resize(N * F_);
    TokenShift(x, P(kMixK), first_prev, B, T, D_, c.xk.data());
    TokenShift(x, P(kMixR), first_prev, B, T, D_, c.xr.data());
    LinearForward(c.xk.data(), P(kWk), c.h.data(), N, D_, F_);
    for (int64_t i = 0; i < N * F_; ++i) {
      const float relu = std::max(c.h[i], 0.0f);
      c.a[i] = relu * relu;
    }
    LinearForward(c.a.data(), P(kWv), c.kv.data(), N, F_, D_);
    LinearForward(c.xr.data(), P(kWr), c.r.data(), N, D_, D_);
    for (int64_t i = 0; i < N * D_; ++i) y[i] = Sigmoid(c.r[i]) * c.kv[i];
  }

  int D_, F_;
  MixerDims dims_;
};

}  // namespace

// relu kinks within a finite-difference step of a sample spoil the difference: a smaller step.
MIXLAB_REGISTER_MIXER(Entry<RwkvFfn, RwkvFfnOptions>("rwkv-ffn", MixerKind::kChannel,
                                                     "RWKV channel mixing: token shift, squared ReLU, receptance gate")
                          .Tests({.fd_eps = 1e-3f}));

}  // namespace mixlab
