// All parameters of a model in one flat buffer, their gradients in a second one of the same layout, with
// named views. Zero-grad is one fill, AdamW one loop, a checkpoint one write, and a gradient check perturbs
// index i of one array.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mixers/mixer.h"

namespace mixlab {

struct NamedParam {
  std::string name;  // e.g. "layers.0.mixer.wq"
  ParamSpec spec;
  int64_t offset = 0;
};

class ParamStore {
 public:
  // Declares a parameter; returns its index. All Add calls come before Allocate.
  int Add(const std::string& name, const ParamSpec& spec);
  void Allocate();
  // Initialises every non-custom parameter from (seed, parameter index), so values do not depend on order.
  void Initialize(uint64_t seed);

  ParamRef Ref(int index) { return {values_.data() + params_[index].offset, grads_.data() + params_[index].offset}; }
  const std::vector<NamedParam>& params() const { return params_; }
  int Find(const std::string& name) const;  // -1 when absent

  float* values() { return values_.data(); }
  float* grads() { return grads_.data(); }
  const float* values() const { return values_.data(); }
  int64_t size() const { return int64_t(values_.size()); }
  int64_t declared_size() const { return params_.empty() ? 0 : params_.back().offset + params_.back().spec.Numel(); }
  void ZeroGrad();

 private:
  std::vector<NamedParam> params_;
  std::unordered_map<std::string, int>
      index_;  // name -> position in params_ (building stays linear in the layer count)
  Buffer values_, grads_;
};

}  // namespace mixlab
