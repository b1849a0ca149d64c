// SwiGLU channel mixer (Shazeer 2020): y = (silu(x Wa) * (x Wb)) W2, per token, no biases.
// Cost O(T * D * d_ff). Saves x and h = x [Wa | Wb] for backward; recomputes the gate.
#include <cmath>

#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct SwiGLUOptions : Options {
  int d_ff = 0;
  void Visit(OptionVisitor& v) override {
    v.Int("d-ff", d_ff, "hidden width; 0 = 8/3 * d_model rounded up to a multiple of 8", 0, 1 << 16);
  }
};

enum Param { kWIn, kWOut };

struct SwiGLUContext : MixerContext {
  int64_t N = 0;
  Buffer x, h, a, da, dh;
};

class SwiGLU : public ChannelMixer<SwiGLUContext> {
 public:
  SwiGLU(const MixerDims& dims, const SwiGLUOptions& o)
      : D_(dims.d_model), F_(o.d_ff ? o.d_ff : (8 * dims.d_model / 3 + 7) / 8 * 8), dims_(dims) {}
  std::vector<ParamSpec> Params() const override {
    return {{"w_in", {D_, 2 * F_}, Init::kNormal, InputStd(dims_, D_)},
            {"w_out", {F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)}};
  }

  // x, y (N, D); h (N, 2F); a (N, F)
  void Mix(const float* x, const int32_t*, int B, int T, float* y, SwiGLUContext& c, const ForwardMode&) override {
    c.N = int64_t(B) * T;
    c.x.assign(x, x + c.N * D_);
    c.h.resize(c.N * 2 * F_);
    c.a.resize(c.N * F_);
    LinearForward(x, P(kWIn), c.h.data(), c.N, D_, 2 * F_);
    SwiGLUForward(c.h.data(), c.a.data(), c.N, F_);
    LinearForward(c.a.data(), P(kWOut), y, c.N, F_, D_);
  }

  void MixBackward(SwiGLUContext& c, const float* dy, float* dx) override {
    c.da.resize(c.N * F_);
    c.dh.resize(c.N * 2 * F_);
    LinearBackward(c.a.data(), P(kWOut), dy, c.da.data(), G(kWOut), c.N, F_, D_);
    SwiGLUBackward(c.h.data(), c.da.data(), c.dh.data(), c.N, F_);
    LinearBackward(c.x.data(), P(kWIn), c.dh.data(), dx, G(kWIn), c.N, D_, 2 * F_);
  }

  MixerDescription Cost(int T) const override { return {0, 0, 0, 2.0 * 3 * D_ * F_}; }

 private:
  int D_, F_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<SwiGLU, SwiGLUOptions>("swiglu", MixerKind::kChannel, "SwiGLU gated MLP"));

}  // namespace mixlab
