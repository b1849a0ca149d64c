// Causal exponential moving average per head: the worked example of docs/adding_a_mixer.md, and the smallest mixer
// with every part of the contract (a learned decay, a value projection, a per-head output projection, a state).
//
//   v = x Wv                                   (D, H*dh)
//   s_t = a_h s_{t-1} + (1 - a_h) v_t          per head h, a_h = sigmoid(decay_logit_h) in (0, 1)
//   y = s Wo                                   Wo (D, D), declared as the per-head output projection
//                                              (--ema.output-projection false: y = s, and no projection is declared:
//                                              the mixer then trains and is analysed without head ablations)
//
// Mixing: M_h[t, r] = (1 - a_h) a_h^(t - r) for r <= t, so s = M_h v exactly (the value path is v, no gate).
// Cost O(T * D * H*dh) for the projections plus O(T * H*dh) for the scan; state H*dh floats per sequence.
// Saves x, v and s for backward, which runs the scan in reverse: lambda_t = ds_t + a lambda_{t+1},
// dv_t = (1 - a) lambda_t, da = sum_t lambda_t . (s_{t-1} - v_t).
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/sigmoid.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct EmaOptions : Options {
  int n_heads = 4;
  float init_decay = 0.9f;
  bool output_projection = true;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads, each with its own decay (must divide d_model)", 1, 1024);
    v.Float("init-decay", init_decay, "decay a of the first head at initialisation; head h starts at a^(1/(h+1))",
            0.01f, 0.999f);
    v.Bool("output-projection", output_projection,
           "y = s Wo (true) or y = s (false: no per-head output projection to ablate)");
  }
};

enum Param { kWv, kDecayLogit, kWo };

struct EmaContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, v, s, ds, dv;  // (B, T, D)
};

struct EmaState : CopyableState<EmaState> {
  int B = 0;
  Buffer s;  // (B, D)
};

class Ema : public SequenceMixer<EmaContext, EmaState> {
 public:
  Ema(const MixerDims& dims, const EmaOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, 0);
  }

  std::vector<ParamSpec> Params() const override {
    std::vector<ParamSpec> p = {{"wv", {D_, D_}, Init::kNormal, InputStd(dims_, D_)},
                                {"decay_logit", {H_}, Init::kCustom, 0, false}};
    if (o_.output_projection)
      p.push_back({"wo", {D_, D_}, Init::kNormal, ResidualOutputStd(dims_, D_), true, ParamRole::kHeadOutput, H_});
    return p;
  }
  // Heads start at decays a^(1/(h+1)): from short to long memory.
  void InitCustomParams(uint64_t) override {
    for (int h = 0; h < H_; ++h) {
      const double a = std::pow(double(o_.init_decay), 1.0 / (h + 1));
      params_[kDecayLogit].value[h] = float(std::log(a / (1.0 - a)));
    }
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, EmaContext& c, const ForwardMode&) override {
    const int64_t N = int64_t(B) * T;
    c.B = B;
    c.T = T;
    c.x.assign(x, x + N * D_);
    c.v.resize(N * D_);
    c.s.resize(N * D_);
    LinearForward(x, P(kWv), c.v.data(), N, D_, D_);
    const std::vector<float> a = Decays();
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; ++b) {  // sequences are independent: one thread each
      std::vector<float> s(D_, 0.0f);
      for (int t = 0; t < T; ++t)
        Advance(a.data(), c.v.data() + (int64_t(b) * T + t) * D_, s.data(), c.s.data() + (int64_t(b) * T + t) * D_);
    }
    Output(c.s.data(), y, N);
  }

  void MixBackward(EmaContext& c, const float* dy, float* dx) override {
    const int64_t N = int64_t(c.B) * c.T;
    c.ds.resize(N * D_);
    c.dv.resize(N * D_);
    if (o_.output_projection) LinearBackward(c.s.data(), P(kWo), dy, c.ds.data(), G(kWo), N, D_, D_);
    else c.ds.assign(dy, dy + N * D_);
    const std::vector<float> a = Decays();
    std::vector<float> decay_parts(int64_t(c.B) * H_, 0.0f);  // per sequence and head, added in a fixed order below
#pragma omp parallel for schedule(static)
    for (int b = 0; b < c.B; ++b) {
      std::vector<float> lambda(D_, 0.0f);
      for (int t = c.T - 1; t >= 0; --t) {
        const int64_t row = (int64_t(b) * c.T + t) * D_;
        for (int d = 0; d < D_; ++d) {
          lambda[d] = c.ds[row + d] + a[d] * lambda[d];
          c.dv[row + d] = (1.0f - a[d]) * lambda[d];
          const float previous = t > 0 ? c.s[row - D_ + d] : 0.0f;
          decay_parts[int64_t(b) * H_ + d / dh_] +=
              lambda[d] * (previous - c.v[row + d]) * a[d] * (1.0f - a[d]);  // da/dlogit = a (1 - a)
        }
      }
    }
    for (int b = 0; b < c.B; ++b)
      for (int h = 0; h < H_; ++h) G(kDecayLogit)[h] += decay_parts[int64_t(b) * H_ + h];
    LinearBackward(c.x.data(), P(kWv), c.dv.data(), dx, G(kWv), N, D_, D_);
  }

  void InitState(EmaState& s, int B) const override {
    s.B = B;
    s.s.assign(int64_t(B) * D_, 0.0f);
  }

  void MixStep(const float* x, const int32_t*, float* y, EmaState& s) override {
    Buffer v(int64_t(s.B) * D_), out(v.size());
    LinearForward(x, P(kWv), v.data(), s.B, D_, D_);
    const std::vector<float> a = Decays();
    for (int b = 0; b < s.B; ++b)
      Advance(a.data(), v.data() + int64_t(b) * D_, s.s.data() + int64_t(b) * D_, out.data() + int64_t(b) * D_);
    Output(out.data(), y, s.B);
  }

  std::vector<RowMatrix> Mixing(const float*, const int32_t*, int T) override {
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) {
      const float a = Decay(h);
      RowMatrix m = RowMatrix::Zero(T, T);
      for (int t = 0; t < T; ++t)
        for (int r = 0; r <= t; ++r) m(t, r) = (1.0f - a) * std::pow(a, float(t - r));
      maps.push_back(std::move(m));
    }
    return maps;
  }
  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, D_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_fixed = D_;
    d.flops_per_token = 2.0 * (o_.output_projection ? 2 : 1) * D_ * D_ + 3.0 * D_;
    return d;
  }

 private:
  float Decay(int h) const { return Sigmoid(P(kDecayLogit)[h]); }
  std::vector<float> Decays() const {  // per channel: its head's decay
    std::vector<float> a(D_);
    for (int d = 0; d < D_; ++d) a[d] = Decay(d / dh_);
    return a;
  }
  // y = s Wo, or y = s without the output projection; s and y are (rows, D).
  void Output(const float* s, float* y, int64_t rows) const {
    if (o_.output_projection) LinearForward(s, P(kWo), y, rows, D_, D_);
    else std::copy_n(s, rows * D_, y);
  }
  // s = a s + (1 - a) v for one token (D values, a per channel), written to out.
  void Advance(const float* a, const float* v, float* s, float* out) const {
    for (int d = 0; d < D_; ++d) {
      s[d] = a[d] * s[d] + (1.0f - a[d]) * v[d];
      out[d] = s[d];
    }
  }

  int D_, H_, dh_;
  EmaOptions o_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<Ema, EmaOptions>("ema", MixerKind::kSequence,
                                             "causal exponential moving average per head (the example mixer)")
                          .Tests({.extra_cases = {
                                      {"ema_no_output_projection", "none", {{"output-projection", "false"}}}}}));

}  // namespace mixlab
