// The empty channel mixer: y = 0, so a block is just x + sequence_mixer(norm(x)). No parameters.
#include <algorithm>

#include "mixers/mixer.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct NoOptions : Options {
  void Visit(OptionVisitor&) override {}
};

struct NoContext : MixerContext {
  int64_t n = 0;
};

class NoChannelMixer : public ChannelMixer {
 public:
  NoChannelMixer(const MixerDims& dims, const NoOptions&) : D_(dims.d_model) {}
  std::string Name() const override { return "none"; }
  std::vector<ParamSpec> Params() const override { return {}; }
  std::unique_ptr<MixerContext> NewContext() const override { return std::make_unique<NoContext>(); }
  void Forward(const float*, const int32_t*, int B, int T, float* y, MixerContext& c, const ForwardMode&) override {
    static_cast<NoContext&>(c).n = int64_t(B) * T * D_;
    std::fill(y, y + int64_t(B) * T * D_, 0.0f);
  }
  void Backward(MixerContext& c, const float*, float* dx) override {
    std::fill(dx, dx + static_cast<NoContext&>(c).n, 0.0f);
  }
  MixerDescription Describe(int) const override { return {}; }

 private:
  int D_;
};

}  // namespace

MixerInfo NoChannelMixerInfo() {
  return Entry<NoChannelMixer, NoOptions>("none", MixerKind::kChannel, "no channel mixer (attention-only blocks)");
}

}  // namespace mixlab
