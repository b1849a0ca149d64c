// MAD's compression decoder (Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid Architectures"; the
// AutoEncoder of mad-lab): the whole input sequence must be reconstructed from one vector, the encoder's
// (normalised) output z at the last position. For each position t, with s_t the sinusoidal code of t:
//   a1 = gelu(norm1(z + s_t) W1 + b1);  a2 = gelu(norm2(a1) W2 + b2);  logits_t = norm3(a2) W_u + b_u
// a non-expanding MLP (width d_model) that sees nothing of the sequence but z. Cost O(T * d_model^2) for the
// decoder, independent of the mixer; it keeps every intermediate (B * T * d_model each) for Backward.
#pragma once
#include <string>

#include "models/norm_layer.h"
#include "models/param_store.h"

namespace mixlab {

class CompressionDecoder {
 public:
  // Declares the decoder.* parameters in `store` (before Allocate). norm: layernorm | rmsnorm; init: fan-in | gpt2.
  CompressionDecoder(ParamStore& store, int d_model, int vocab, const std::string& norm, const std::string& init);
  // z (B, D): one vector per sequence; logits (B, T, V).
  void Forward(ParamStore& store, const float* z, int B, int T, float* logits);
  // After Forward: dlogits (B, T, V) -> dz (B, D), overwritten; parameter gradients accumulate.
  void Backward(ParamStore& store, const float* dlogits, float* dz);

 private:
  int D_, V_, B_ = 0, T_ = 0;
  NormLayer norm1_, norm2_, norm3_;
  int w1_, b1_, w2_, b2_, wu_, bu_;
  Buffer x_, n1_, p1_, a1_, n2_, p2_, a2_, n3_, d_, dp_;
};

}  // namespace mixlab
