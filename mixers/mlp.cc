// MLP channel mixer (Vaswani et al. 2017; GELU as in GPT-2): y = gelu(x W1 + b1) W2 + b2, per token.
// Cost O(T * D * d_ff). Saves x and the pre-activation h for backward; recomputes gelu(h).
#include <cmath>

#include "mixers/matmul.h"
#include "mixers/mixer.h"
#include "mixers/ops.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct MlpOptions : Options {
  int d_ff = 0;
  void Visit(OptionVisitor& v) override { v.Int("d-ff", d_ff, "hidden width; 0 = 4 * d_model", 0, 1 << 16); }
};

struct MlpContext : MixerContext {
  int64_t N = 0;
  Buffer x, h, a, da;
};

class Mlp : public ChannelMixer {
 public:
  Mlp(const MixerDims& dims, const MlpOptions& o)
      : D_(dims.d_model), F_(o.d_ff ? o.d_ff : 4 * dims.d_model), dims_(dims) {}
  std::string Name() const override { return "mlp"; }
  std::vector<ParamSpec> Params() const override {
    return {{"w1", {D_, F_}, Init::kNormal, InputStd(dims_, D_)},
            {"b1", {F_}, Init::kZeros, 0, false},
            {"w2", {F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)},
            {"b2", {D_}, Init::kZeros, 0, false}};
  }
  std::unique_ptr<MixerContext> NewContext() const override { return std::make_unique<MlpContext>(); }

  // x, y (N, D); h, a (N, F)
  void Forward(const float* x, const int32_t*, int B, int T, float* y, MixerContext& base,
               const ForwardMode&) override {
    auto& c = static_cast<MlpContext&>(base);
    c.N = int64_t(B) * T;
    c.x.assign(x, x + c.N * D_);
    c.h.resize(c.N * F_);
    c.a.resize(c.N * F_);
    LinearForward(x, P(0), c.h.data(), c.N, D_, F_);
    BiasGeluForward(c.h.data(), P(1), c.a.data(), c.N, F_);
    LinearForward(c.a.data(), P(2), y, c.N, F_, D_);
    AsMatrix(y, c.N, D_).rowwise() += AsMatrix(P(3), 1, D_).row(0);
  }

  void Backward(MixerContext& base, const float* dy, float* dx) override {
    auto& c = static_cast<MlpContext&>(base);
    c.da.resize(c.N * F_);
    AddColumnSums(dy, c.N, D_, G(3));
    LinearBackward(c.a.data(), P(2), dy, c.da.data(), G(2), c.N, F_, D_);
    BiasGeluBackward(c.h.data(), c.da.data(), c.da.data(), G(1), c.N, F_);
    LinearBackward(c.x.data(), P(0), c.da.data(), dx, G(0), c.N, D_, F_);
  }

  MixerDescription Describe(int T) const override {
    return {CountParams(Params()), 0, 0, 2.0 * 2 * D_ * F_};
  }

 private:
  int D_, F_;
  MixerDims dims_;
};

}  // namespace

MixerInfo MlpInfo() {
  return Entry<Mlp, MlpOptions>("mlp", MixerKind::kChannel, "two-layer GELU MLP");
}

}  // namespace mixlab
