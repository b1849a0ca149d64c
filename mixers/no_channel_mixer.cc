// The empty channel mixer: y = 0, so a block is just x + sequence_mixer(norm(x)). No parameters.
#include <algorithm>

#include "mixers/mixer_base.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct NoOptions : Options {
  void Visit(OptionVisitor&) override {}
};

struct NoContext : MixerContext {
  int64_t n = 0;
};

class NoChannelMixer : public ChannelMixer<NoContext> {
 public:
  NoChannelMixer(const MixerDims& dims, const NoOptions&) : D_(dims.d_model) {}
  std::vector<ParamSpec> Params() const override { return {}; }
  void Mix(const float*, const int32_t*, int B, int T, float* y, NoContext& c, const ForwardMode&) override {
    c.n = int64_t(B) * T * D_;
    std::fill(y, y + int64_t(B) * T * D_, 0.0f);
  }
  void MixBackward(NoContext& c, const float*, float* dx) override { std::fill(dx, dx + c.n, 0.0f); }
  MixerDescription Cost(int) const override { return {}; }

 private:
  int D_;
};

}  // namespace

MIXLAB_REGISTER_MIXER(Entry<NoChannelMixer, NoOptions>("none", MixerKind::kChannel,
                                                       "no channel mixer (attention-only blocks)")
                          .Tests({.zero_output = true}));

}  // namespace mixlab
