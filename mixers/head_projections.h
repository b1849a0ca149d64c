// What every multi-head mixer with query/key/value/output projections shares: the head width (0 = d_model /
// n_heads, refused when that does not divide) and the four projection parameters
//   wq, wk, wv (D, H*dh) reading the residual stream;  wo (H*dh, D) writing back into it,
// wo declared as the per-head output projection (head h owns rows h*dh .. (h+1)*dh - 1).
#pragma once
#include <string>
#include <vector>

#include "mixers/mixer.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/usage_error.h"

namespace mixlab {

inline int ResolveHeadWidth(const std::string& mixer, int d_model, int n_heads, int d_head) {
  if (d_head > 0) return d_head;
  if (d_model % n_heads != 0)
    throw UsageError(mixer + ": d_model " + std::to_string(d_model) + " is not divisible by n-heads " +
                     std::to_string(n_heads) + "; choose n-heads dividing d_model or set --" + mixer + ".d-head");
  return d_model / n_heads;
}

// Indices of the four projections in QkvoParams(), for P() and G(); a mixer's own parameters follow from kQkvoEnd.
enum QkvoParam { kWq, kWk, kWv, kWo, kQkvoEnd };

inline std::vector<ParamSpec> QkvoParams(const MixerDims& dims, int n_heads, int64_t heads_width) {
  const int64_t D = dims.d_model;
  const float in_std = InputStd(dims, D);
  return {{"wq", {D, heads_width}, Init::kNormal, in_std},
          {"wk", {D, heads_width}, Init::kNormal, in_std},
          {"wv", {D, heads_width}, Init::kNormal, in_std},
          {"wo",
           {heads_width, D},
           Init::kNormal,
           ResidualOutputStd(dims, heads_width),
           true,
           ParamRole::kHeadOutput,
           n_heads}};
}

// The value path of an attention-like mixer's Mixing(): the maps mix v = x Wv, with no gate (Mixer::MixingValues).
inline MixingValuePath ValuePath(const float* x, const float* wv, int T, int64_t d_model, int64_t heads_width) {
  RowMatrix v(T, heads_width);
  LinearForward(x, wv, v.data(), T, d_model, heads_width);
  return {std::move(v), {}};
}

}  // namespace mixlab
