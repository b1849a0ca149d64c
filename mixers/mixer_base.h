// The scaffolding every mixer would otherwise repeat. A mixer derives from SequenceMixer<Context, State> (or
// ChannelMixer<Context>) and implements typed hooks: the base creates contexts and states, casts them back,
// and fills Describe()'s parameter count from Params(). Name and kind come from the registry entry.
//
//   class Ema : public SequenceMixer<EmaContext, EmaState> {
//     std::vector<ParamSpec> Params() const override;
//     void Mix(const float* x, const int32_t* positions, int B, int T, float* y, EmaContext& c, const ForwardMode&)
//     override; void MixBackward(EmaContext& c, const float* dy, float* dx) override; void InitState(EmaState& s, int
//     B) const override; void MixStep(const float* x, const int32_t* positions, float* y, EmaState& s) override;
//     MixerDescription Cost(int T) const override;  // state and FLOPs; params are counted for you
//   };
#pragma once
#include <memory>

#include "mixers/mixer.h"

namespace mixlab {

// Describe() = Cost() plus the parameter count of Params().
template <class Base>
class DescribedMixer : public Base {
 public:
  MixerDescription Describe(int T) const final {
    MixerDescription d = Cost(T);
    d.params = CountParams(this->Params());
    return d;
  }

 protected:
  // Decoding state and forward FLOPs per token at length T (the params field is ignored).
  virtual MixerDescription Cost(int T) const = 0;
};

// Forward and Backward on the mixer's own context type (and Describe from Cost), over a Mixer base.
template <class Base, class ContextT>
class TypedContextMixer : public DescribedMixer<Base> {
 public:
  std::unique_ptr<MixerContext> NewContext() const final { return std::make_unique<ContextT>(); }
  void Forward(const float* x, const int32_t* positions, int B, int T, float* y, MixerContext& c,
               const ForwardMode& mode) final {
    Mix(x, positions, B, T, y, static_cast<ContextT&>(c), mode);
  }
  void Backward(MixerContext& c, const float* dy, float* dx) final { MixBackward(static_cast<ContextT&>(c), dy, dx); }

 protected:
  // The contract of Mixer::Forward / Backward on the mixer's own context type.
  virtual void Mix(const float* x, const int32_t* positions, int B, int T, float* y, ContextT& c,
                   const ForwardMode& mode) = 0;
  virtual void MixBackward(ContextT& c, const float* dy, float* dx) = 0;
};

template <class ContextT, class StateT>
class SequenceMixer : public TypedContextMixer<Mixer, ContextT> {
 public:
  std::unique_ptr<MixerState> NewState(int B) const final {
    auto s = std::make_unique<StateT>();
    InitState(*s, B);
    return s;
  }
  void Step(const float* x, const int32_t* positions, float* y, MixerState& s) final {
    MixStep(x, positions, y, static_cast<StateT&>(s));
  }

 protected:
  // The contract of Mixer::NewState / Step on the mixer's own state type.
  virtual void InitState(StateT& s, int B) const = 0;
  virtual void MixStep(const float* x, const int32_t* positions, float* y, StateT& s) = 0;
};

// A channel mixer: Step is Forward on one token (ChannelMixerBase), so only the forward and backward are typed.
template <class ContextT>
class ChannelMixer : public TypedContextMixer<ChannelMixerBase, ContextT> {};

}  // namespace mixlab
