// Shared behaviour of channel mixers: one token at a time, so Step runs Forward with T = 1.
#include "mixers/mixer.h"

namespace mixlab {

namespace {
// Channel mixers keep nothing between tokens: the state is scratch space, so a clone is a fresh state.
struct ChannelStepState : MixerState {
  const ChannelMixerBase* mixer = nullptr;
  int B = 0;
  std::unique_ptr<MixerContext> ctx;
  std::unique_ptr<MixerState> Clone() const override { return mixer->NewState(B); }
};
}  // namespace

std::unique_ptr<MixerState> ChannelMixerBase::NewState(int B) const {
  auto s = std::make_unique<ChannelStepState>();
  s->mixer = this;
  s->B = B;
  s->ctx = NewContext();
  return s;
}

void ChannelMixerBase::Step(const float* x, const int32_t* positions, float* y, MixerState& base) {
  auto& s = static_cast<ChannelStepState&>(base);
  Forward(x, positions, s.B, 1, y, *s.ctx, ForwardMode{});
}

}  // namespace mixlab
