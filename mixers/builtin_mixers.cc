// The built-in mixers: one line each. A mixer registered here is picked up by `mixlab list`, the CLI and
// every registry-wide contract test.
#include "mixers/registry.h"

namespace mixlab {

MixerInfo SoftmaxAttentionInfo();
MixerInfo LinearAttentionInfo();
MixerInfo PerformerInfo();
MixerInfo LocalAttentionInfo();
MixerInfo SparseAttentionInfo();
MixerInfo GatedLinearInfo();
MixerInfo MambaInfo();
MixerInfo MlpInfo();
MixerInfo SwiGLUInfo();
MixerInfo NoChannelMixerInfo();
MixerInfo MoeInfo();

void RegisterBuiltinMixers(std::vector<MixerInfo>& out) {
  out.push_back(SoftmaxAttentionInfo());
  out.push_back(LinearAttentionInfo());
  out.push_back(PerformerInfo());
  out.push_back(LocalAttentionInfo());
  out.push_back(SparseAttentionInfo());
  out.push_back(GatedLinearInfo());
  out.push_back(MambaInfo());
  out.push_back(MlpInfo());
  out.push_back(SwiGLUInfo());
  out.push_back(NoChannelMixerInfo());
  out.push_back(MoeInfo());
}

}  // namespace mixlab
