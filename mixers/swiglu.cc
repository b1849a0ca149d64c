// SwiGLU channel mixer (Shazeer 2020): y = (silu(x Wa) * (x Wb)) W2, per token, no biases.
// Cost O(T * D * d_ff). Saves x and h = x [Wa | Wb] for backward; recomputes the gate.
#include <cmath>

#include "mixers/matmul.h"
#include "mixers/mixer.h"
#include "mixers/ops.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct SwiGLUOptions : Options {
  int d_ff = 0;
  void Visit(OptionVisitor& v) override {
    v.Int("d-ff", d_ff, "hidden width; 0 = 8/3 * d_model rounded up to a multiple of 8", 0, 1 << 16);
  }
};

struct SwiGLUContext : MixerContext {
  int64_t N = 0;
  Buffer x, h, a, da, dh;
};

class SwiGLU : public ChannelMixer {
 public:
  SwiGLU(const MixerDims& dims, const SwiGLUOptions& o)
      : D_(dims.d_model), F_(o.d_ff ? o.d_ff : (8 * dims.d_model / 3 + 7) / 8 * 8), dims_(dims) {}
  std::string Name() const override { return "swiglu"; }
  std::vector<ParamSpec> Params() const override {
    return {{"w_in", {D_, 2 * F_}, Init::kNormal, InputStd(dims_, D_)},
            {"w_out", {F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)}};
  }
  std::unique_ptr<MixerContext> NewContext() const override { return std::make_unique<SwiGLUContext>(); }

  // x, y (N, D); h (N, 2F); a (N, F)
  void Forward(const float* x, const int32_t*, int B, int T, float* y, MixerContext& base,
               const ForwardMode&) override {
    auto& c = static_cast<SwiGLUContext&>(base);
    c.N = int64_t(B) * T;
    c.x.assign(x, x + c.N * D_);
    c.h.resize(c.N * 2 * F_);
    c.a.resize(c.N * F_);
    LinearForward(x, P(0), c.h.data(), c.N, D_, 2 * F_);
    SwiGLUForward(c.h.data(), c.a.data(), c.N, F_);
    LinearForward(c.a.data(), P(1), y, c.N, F_, D_);
  }

  void Backward(MixerContext& base, const float* dy, float* dx) override {
    auto& c = static_cast<SwiGLUContext&>(base);
    c.da.resize(c.N * F_);
    c.dh.resize(c.N * 2 * F_);
    LinearBackward(c.a.data(), P(1), dy, c.da.data(), G(1), c.N, F_, D_);
    SwiGLUBackward(c.h.data(), c.da.data(), c.dh.data(), c.N, F_);
    LinearBackward(c.x.data(), P(0), c.dh.data(), dx, G(0), c.N, D_, 2 * F_);
  }

  MixerDescription Describe(int T) const override { return {CountParams(Params()), 0, 0, 2.0 * 3 * D_ * F_}; }

 private:
  int D_, F_;
  MixerDims dims_;
};

}  // namespace

MixerInfo SwiGLUInfo() {
  return Entry<SwiGLU, SwiGLUOptions>("swiglu", MixerKind::kChannel, "SwiGLU gated MLP");
}

}  // namespace mixlab
