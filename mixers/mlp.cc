// MLP channel mixer (Vaswani et al. 2017; GELU as in GPT-2): y = gelu(x W1 + b1) W2 + b2, per token.
// Cost O(T * D * d_ff). Saves x and the pre-activation h for backward; recomputes gelu(h).
#include <cmath>

#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/ops/row_block_sums.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct MlpOptions : Options {
  int d_ff = 0;
  void Visit(OptionVisitor& v) override { v.Int("d-ff", d_ff, "hidden width; 0 = 4 * d_model", 0, 1 << 16); }
};

enum Param { kW1, kB1, kW2, kB2 };

struct MlpContext : MixerContext {
  int64_t N = 0;
  Buffer x, h, a, da;
};

class Mlp : public ChannelMixer<MlpContext> {
 public:
  Mlp(const MixerDims& dims, const MlpOptions& o)
      : D_(dims.d_model), F_(o.d_ff ? o.d_ff : 4 * dims.d_model), dims_(dims) {}
  std::vector<ParamSpec> Params() const override {
    return {{"w1", {D_, F_}, Init::kNormal, InputStd(dims_, D_)},
            {"b1", {F_}, Init::kZeros, 0, false},
            {"w2", {F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)},
            {"b2", {D_}, Init::kZeros, 0, false}};
  }

  // x, y (N, D); h, a (N, F)
  void Mix(const float* x, const int32_t*, int B, int T, float* y, MlpContext& c, const ForwardMode&) override {
    c.N = int64_t(B) * T;
    c.x.assign(x, x + c.N * D_);
    c.h.resize(c.N * F_);
    c.a.resize(c.N * F_);
    LinearForward(x, P(kW1), c.h.data(), c.N, D_, F_);
    BiasGeluForward(c.h.data(), P(kB1), c.a.data(), c.N, F_);
    LinearForward(c.a.data(), P(kW2), y, c.N, F_, D_);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c.N; ++i) AsMatrix(y + i * D_, 1, D_) += AsMatrix(P(kB2), 1, D_);  // y += b2
  }

  void MixBackward(MlpContext& c, const float* dy, float* dx) override {
    c.da.resize(c.N * F_);
    AddColumnSumsByRowBlocks(dy, c.N, D_, G(kB2));
    LinearBackward(c.a.data(), P(kW2), dy, c.da.data(), G(kW2), c.N, F_, D_);
    BiasGeluBackward(c.h.data(), c.da.data(), c.da.data(), G(kB1), c.N, F_);
    LinearBackward(c.x.data(), P(kW1), c.da.data(), dx, G(kW1), c.N, D_, F_);
  }

  MixerDescription Cost(int T) const override { return {0, 0, 0, 2.0 * 2 * D_ * F_}; }

 private:
  int D_, F_;
  MixerDims dims_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<Mlp, MlpOptions>("mlp", MixerKind::kChannel, "two-layer GELU MLP")
                          .Tests({.extra_cases = {{"mlp_dff40", "none", {{"d-ff", "40"}}}}}));

}  // namespace mixlab
