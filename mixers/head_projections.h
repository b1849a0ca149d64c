// What every multi-head mixer with query/key/value/output projections shares: the head width (0 = d_model /
// n_heads, refused when that does not divide) and the four projection parameters
//   wq, wk, wv (D, H*dh) reading the residual stream;  wo (H*dh, D) writing back into it.
#pragma once
#include <string>
#include <vector>

#include "mixers/mixer.h"

namespace mixlab {

inline int ResolveHeadWidth(const std::string& mixer, int d_model, int n_heads, int d_head) {
  if (d_head > 0) return d_head;
  if (d_model % n_heads != 0)
    throw UsageError(mixer + ": d_model " + std::to_string(d_model) + " is not divisible by n-heads " +
                     std::to_string(n_heads) + "; choose n-heads dividing d_model or set --" + mixer + ".d-head");
  return d_model / n_heads;
}

inline std::vector<ParamSpec> QkvoParams(const MixerDims& dims, int64_t heads_width) {
  const int64_t D = dims.d_model;
  const float in_std = InputStd(dims, D);
  return {{"wq", {D, heads_width}, Init::kNormal, in_std},
          {"wk", {D, heads_width}, Init::kNormal, in_std},
          {"wv", {D, heads_width}, Init::kNormal, in_std},
          {"wo", {heads_width, D}, Init::kNormal, ResidualOutputStd(dims, heads_width)}};
}

}  // namespace mixlab
