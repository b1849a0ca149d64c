#include "models/param_store.h"

#include <algorithm>
#include <stdexcept>

#include "mixers/ops/rng.h"

namespace mixlab {

int ParamStore::Add(const std::string& name, const ParamSpec& spec) {
  if (!values_.empty()) throw std::logic_error("ParamStore::Add after Allocate");
  if (!index_.emplace(name, int(params_.size())).second) throw std::logic_error("duplicate parameter name " + name);
  const int64_t offset = params_.empty() ? 0 : params_.back().offset + params_.back().spec.Numel();
  params_.push_back({name, spec, offset});
  return int(params_.size()) - 1;
}

void ParamStore::Allocate() {
  const int64_t total = params_.empty() ? 0 : params_.back().offset + params_.back().spec.Numel();
  values_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
}

void ParamStore::Initialize(uint64_t seed) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    float* v = values_.data() + p.offset;
    const int64_t n = p.spec.Numel();
    Rng rng(seed, 1000 + i);
    switch (p.spec.init) {
      case Init::kNormal:
        for (int64_t j = 0; j < n; ++j) v[j] = float(rng.Normal()) * p.spec.std;
        break;
      case Init::kZeros:
        std::fill(v, v + n, 0.0f);
        break;
      case Init::kOnes:
        std::fill(v, v + n, 1.0f);
        break;
      case Init::kCustom:
        break;  // the owning mixer fills it in InitCustomParams
    }
  }
}

int ParamStore::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

void ParamStore::ZeroGrad() {
  constexpr int64_t kBlock = 1 << 16;
  const int64_t n = int64_t(grads_.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += kBlock) std::fill_n(grads_.data() + i, std::min(kBlock, n - i), 0.0f);
}

}  // namespace mixlab
