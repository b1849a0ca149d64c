#include "models/norm_layer.h"

#include "mixers/ops/ops.h"

namespace mixlab {

NormLayer NormLayer::Declare(ParamStore& store, const std::string& prefix, int d, const std::string& norm) {
  NormLayer n;
  n.weight = store.Add(prefix + ".weight", {"weight", {d}, Init::kOnes, 0, false});
  if (norm == "layernorm") n.bias = store.Add(prefix + ".bias", {"bias", {d}, Init::kZeros, 0, false});
  return n;
}

void NormLayer::Forward(ParamStore& store, const float* x, float* y, int64_t rows, int d) {
  mean.resize(rows);
  rstd.resize(rows);
  const float* w = store.Ref(weight).value;
  if (bias >= 0) LayerNormForward(x, w, store.Ref(bias).value, y, mean.data(), rstd.data(), rows, d);
  else RMSNormForward(x, w, y, rstd.data(), rows, d);
}

void NormLayer::Backward(ParamStore& store, const float* x, const float* dy, float* dx, int64_t rows, int d) {
  auto w = store.Ref(weight);
  if (bias >= 0) LayerNormBackward(x, w.value, mean.data(), rstd.data(), dy, dx, w.grad, store.Ref(bias).grad, rows, d);
  else RMSNormBackward(x, w.value, rstd.data(), dy, dx, w.grad, rows, d);
}

}  // namespace mixlab
