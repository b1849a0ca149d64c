// Name -> factory registry for sequence and channel mixers (tiny-cuda-nn style): unknown or duplicate names throw
// with the list of known names. A mixer registers itself with one line at the end of its own file:
//
//   MIXLAB_REGISTER_MIXER(Entry<Ema, EmaOptions>("ema", MixerKind::kSequence, "exponential moving average"));
//
// and is then picked up by `mixlab list`, the CLI, compare, analyze, the benchmarks and every registry-wide
// contract test. How the contract tests treat it (tolerances, extra configurations) is part of the entry too
// (MixerTestHints), so the test files name no mixer.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mixers/mixer.h"

namespace mixlab {

// One configuration the registry-wide contract tests run besides the mixer's defaults and each positional
// encoding it supports.
struct ContractCase {
  std::string label;  // test name suffix, e.g. "softmax_naive"
  std::string pos = "none";
  OptionMap options;
  bool training = false;    // forward in training mode (dropout on)
  double grad_rtol = 2e-2;  // finite-difference tolerance
  float fd_eps = 1e-2f;     // smaller for non-smooth mixers (relu kinks within eps of a sample spoil the difference)
};

struct MixerTestHints {
  // Finite-difference step and tolerance for the default and positional cases.
  float fd_eps = 1e-2f;
  double grad_rtol = 2e-2;
  // The output is identically zero by design (the empty channel mixer): gradient and causality tests then check
  // zeros instead of a reaction to the input, and no parity fixture is required.
  bool zero_output = false;
  // Options under which Mixing() reproduces Forward exactly through MixingValues() (mamba: one channel per group).
  OptionMap exact_mixing_options = {};
  std::vector<ContractCase> extra_cases = {};
};

struct MixerInfo {
  std::string name;
  MixerKind kind;
  std::string help;
  std::vector<std::string> supported_pos;  // positional encodings it applies itself (besides "none")
  std::function<std::unique_ptr<Options>()> make_options;
  std::function<std::unique_ptr<Mixer>(const MixerDims&, const Options&)> make;
  MixerTestHints tests;

  MixerInfo&& Tests(MixerTestHints hints) && {
    tests = std::move(hints);
    return std::move(*this);
  }
};

void RegisterMixer(MixerInfo info);
const MixerInfo& FindMixer(const std::string& name, MixerKind kind);
// Registered names of one kind, sorted.
std::vector<std::string> ListMixers(MixerKind kind);

// Builds a mixer from its name and option values (name -> string); refuses unknown options, out-of-range
// values and positional encodings the mixer does not support.
std::unique_ptr<Mixer> MakeMixer(const std::string& name, MixerKind kind, const MixerDims& dims,
                                 const std::map<std::string, std::string>& option_values);

// A registry entry for MixerT built from OptionsT.
template <class MixerT, class OptionsT>
MixerInfo Entry(std::string name, MixerKind kind, std::string help, std::vector<std::string> supported_pos = {}) {
  return MixerInfo{std::move(name),
                   kind,
                   std::move(help),
                   std::move(supported_pos),
                   [] { return std::make_unique<OptionsT>(); },
                   [](const MixerDims& dims, const Options& opts) -> std::unique_ptr<Mixer> {
                     return std::make_unique<MixerT>(dims, static_cast<const OptionsT&>(opts));
                   },
                   {}};
}

#define MIXLAB_CONCAT_INNER(a, b) a##b
#define MIXLAB_CONCAT(a, b) MIXLAB_CONCAT_INNER(a, b)
// Registers a MixerInfo at program start (the mixers library is linked whole, so the line needs no caller).
#define MIXLAB_REGISTER_MIXER(...) \
  static const bool MIXLAB_CONCAT(mixlab_registered_mixer_, __LINE__) = (::mixlab::RegisterMixer(__VA_ARGS__), true)

}  // namespace mixlab
