#include "models/compression_decoder.h"

#include <cmath>

#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/positional.h"

namespace mixlab {
namespace {

void AddBias(float* y, const float* bias, int64_t rows, int64_t cols) {
  AsMatrix(y, rows, cols).rowwise() += AsMatrix(bias, 1, cols).row(0);
}

}  // namespace

CompressionDecoder::CompressionDecoder(ParamStore& store, int d_model, int vocab, const std::string& norm,
                                       const std::string& init)
    : D_(d_model), V_(vocab) {
  const float std = init == "gpt2" ? 0.02f : 1.0f / std::sqrt(float(D_));
  norm1_ = NormLayer::Declare(store, "decoder.norm1", D_, norm);
  w1_ = store.Add("decoder.fc1.weight", {"weight", {D_, D_}, Init::kNormal, std});
  b1_ = store.Add("decoder.fc1.bias", {"bias", {D_}, Init::kZeros, 0, false});
  norm2_ = NormLayer::Declare(store, "decoder.norm2", D_, norm);
  w2_ = store.Add("decoder.fc2.weight", {"weight", {D_, D_}, Init::kNormal, std});
  b2_ = store.Add("decoder.fc2.bias", {"bias", {D_}, Init::kZeros, 0, false});
  norm3_ = NormLayer::Declare(store, "decoder.norm3", D_, norm);
  wu_ = store.Add("decoder.unembed.weight", {"weight", {D_, V_}, Init::kNormal, std});
  bu_ = store.Add("decoder.unembed.bias", {"bias", {V_}, Init::kZeros, 0, false});
}

void CompressionDecoder::Forward(ParamStore& store, const float* z, int B, int T, float* logits) {
  B_ = B;
  T_ = T;
  const int64_t N = int64_t(B) * T;
  for (auto* b : {&x_, &n1_, &p1_, &a1_, &n2_, &p2_, &a2_, &n3_}) b->resize(N * D_);
  for (int64_t b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      float* row = x_.data() + (b * T + t) * D_;
      std::copy_n(z + b * D_, D_, row);
      AddSinusoid(row, t, D_);
    }
  norm1_.Forward(store, x_.data(), n1_.data(), N, D_);
  LinearForward(n1_.data(), store.Ref(w1_).value, p1_.data(), N, D_, D_);
  BiasGeluForward(p1_.data(), store.Ref(b1_).value, a1_.data(), N, D_);
  norm2_.Forward(store, a1_.data(), n2_.data(), N, D_);
  LinearForward(n2_.data(), store.Ref(w2_).value, p2_.data(), N, D_, D_);
  BiasGeluForward(p2_.data(), store.Ref(b2_).value, a2_.data(), N, D_);
  norm3_.Forward(store, a2_.data(), n3_.data(), N, D_);
  LinearForward(n3_.data(), store.Ref(wu_).value, logits, N, D_, V_);
  AddBias(logits, store.Ref(bu_).value, N, V_);
}

void CompressionDecoder::Backward(ParamStore& store, const float* dlogits, float* dz) {
  const int64_t N = int64_t(B_) * T_;
  d_.resize(N * D_);
  dp_.resize(N * D_);
  AddColumnSums(dlogits, N, V_, store.Ref(bu_).grad);
  LinearBackward(n3_.data(), store.Ref(wu_).value, dlogits, d_.data(), store.Ref(wu_).grad, N, D_, V_);     // d n3
  norm3_.Backward(store, a2_.data(), d_.data(), dp_.data(), N, D_);                                         // d a2
  BiasGeluBackward(p2_.data(), dp_.data(), dp_.data(), store.Ref(b2_).grad, N, D_);                         // d p2
  LinearBackward(n2_.data(), store.Ref(w2_).value, dp_.data(), d_.data(), store.Ref(w2_).grad, N, D_, D_);  // d n2
  norm2_.Backward(store, a1_.data(), d_.data(), dp_.data(), N, D_);                                         // d a1
  BiasGeluBackward(p1_.data(), dp_.data(), dp_.data(), store.Ref(b1_).grad, N, D_);                         // d p1
  LinearBackward(n1_.data(), store.Ref(w1_).value, dp_.data(), d_.data(), store.Ref(w1_).grad, N, D_, D_);  // d n1
  norm1_.Backward(store, x_.data(), d_.data(), dp_.data(), N, D_);                                          // d x
  AsMatrix(dz, B_, D_).setZero();
  for (int64_t b = 0; b < B_; ++b) AddColumnSums(dp_.data() + b * T_ * D_, T_, D_, dz + b * D_);
}

}  // namespace mixlab
