// Name -> factory registry for sequence and channel mixers (tiny-cuda-nn style): unknown or duplicate
// names throw with the list of known names. Built-in mixers are registered in builtin_mixers.cc, one line each.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mixers/mixer.h"

namespace mixlab {

struct MixerInfo {
  std::string name;
  MixerKind kind;
  std::string help;
  std::vector<std::string> supported_pos;  // positional encodings it applies itself (besides "none")
  std::function<std::unique_ptr<Options>()> make_options;
  std::function<std::unique_ptr<Mixer>(const MixerDims&, const Options&)> make;
};

void RegisterMixer(MixerInfo info);
const MixerInfo& FindMixer(const std::string& name, MixerKind kind);
std::vector<std::string> ListMixers(MixerKind kind);

// Builds a mixer from its name and option values (name -> string); refuses unknown options, out-of-range
// values and positional encodings the mixer does not support.
std::unique_ptr<Mixer> MakeMixer(const std::string& name, MixerKind kind, const MixerDims& dims,
                                 const std::map<std::string, std::string>& option_values);

// Helper for registration lines: RegisterMixer(Entry<SoftmaxAttention, SoftmaxOptions>(...)).
template <class MixerT, class OptionsT>
MixerInfo Entry(std::string name, MixerKind kind, std::string help, std::vector<std::string> supported_pos = {}) {
  return MixerInfo{std::move(name), kind, std::move(help), std::move(supported_pos),
                   [] { return std::make_unique<OptionsT>(); },
                   [](const MixerDims& dims, const Options& opts) -> std::unique_ptr<Mixer> {
                     return std::make_unique<MixerT>(dims, static_cast<const OptionsT&>(opts));
                   }};
}

}  // namespace mixlab
