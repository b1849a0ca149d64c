#include "mixers/registry.h"

#include <algorithm>
#include <map>

#include "mixers/ops/usage_error.h"

namespace mixlab {

namespace {

// Filled during static initialisation by MIXLAB_REGISTER_MIXER lines, in whatever order the linker placed them.
std::vector<MixerInfo>& Registry() {
  static auto* registry = new std::vector<MixerInfo>();
  return *registry;
}

const char* KindName(MixerKind kind) { return kind == MixerKind::kSequence ? "sequence mixer" : "channel mixer"; }

}  // namespace

void RegisterMixer(MixerInfo info) {
  for (const auto& m : Registry())
    if (m.name == info.name && m.kind == info.kind)
      throw std::logic_error("duplicate " + std::string(KindName(info.kind)) + " '" + info.name + "'");
  Registry().push_back(std::move(info));
}

std::vector<std::string> ListMixers(MixerKind kind) {
  std::vector<std::string> out;
  for (const auto& m : Registry())
    if (m.kind == kind) out.push_back(m.name);
  std::sort(out.begin(), out.end());
  return out;
}

const MixerInfo& FindMixer(const std::string& name, MixerKind kind) {
  for (const auto& m : Registry())
    if (m.name == name && m.kind == kind) return m;
  throw UsageError("unknown " + std::string(KindName(kind)) + " '" + name +
                   "'; known: " + JoinList(ListMixers(kind), ", "));
}

std::unique_ptr<Mixer> MakeMixer(const std::string& name, MixerKind kind, const MixerDims& dims,
                                 const std::map<std::string, std::string>& option_values) {
  const MixerInfo& info = FindMixer(name, kind);
  if (dims.pos != "none" && kind == MixerKind::kSequence &&
      std::find(info.supported_pos.begin(), info.supported_pos.end(), dims.pos) == info.supported_pos.end()) {
    throw UsageError("mixer '" + name + "' does not support positional encoding '" + dims.pos + "'; it supports: none" +
                     (info.supported_pos.empty() ? "" : ", ") + JoinList(info.supported_pos, ", ") +
                     " (choose one with --pos)");
  }
  auto options = info.make_options();
  SetOptions(*options, option_values, "mixer '" + name + "'");
  MixerDims named = dims;
  named.name = info.name;
  auto mixer = info.make(named, *options);
  mixer->SetIdentity(info.name, info.kind);
  return mixer;
}

int64_t CountParams(const std::vector<ParamSpec>& specs) {
  int64_t n = 0;
  for (const auto& s : specs) n += s.Numel();
  return n;
}

}  // namespace mixlab
