// A LayerNorm or RMSNorm over the model width whose weight (and bias) live in a ParamStore. Forward keeps the
// row statistics that Backward needs.
#pragma once
#include <string>

#include "models/param_store.h"

namespace mixlab {

struct NormLayer {
  int weight = -1, bias = -1;  // parameter indices; bias -1 for RMSNorm
  Buffer mean, rstd;

  // norm: "layernorm" | "rmsnorm"; declares PREFIX.weight (ones) and, for LayerNorm, PREFIX.bias (zeros).
  static NormLayer Declare(ParamStore& store, const std::string& prefix, int d, const std::string& norm);
  void Forward(ParamStore& store, const float* x, float* y, int64_t rows, int d);
  // dx overwritten; weight and bias gradients accumulate.
  void Backward(ParamStore& store, const float* x, const float* dy, float* dx, int64_t rows, int d);
};

}  // namespace mixlab
