// Positional encodings applied inside mixers, from position ids.
//   RoPE (Su et al. 2021): rotate pairs (i, i + d/2) of each head vector by angle pos * base^(-2i/d)
//   ("rotate half" convention of GPT-NeoX / LLaMA). Scores then depend only on position differences.
//   ALiBi (Press et al. 2022): add -slope_h * (pos_query - pos_key) to scores, slope_h = 2^(-8h/H), h = 1..H.
#pragma once
#include <cstdint>
#include <vector>

#include "mixers/ops/tensor.h"

namespace mixlab {

// v is (N, n_heads * d_head) with one position per row; rotates in place. inverse=true applies the
// transpose rotation, which is the backward of the forward rotation.
void ApplyRope(float* v, const int32_t* positions, int64_t n, int n_heads, int d_head, float base, bool inverse);

Buffer AlibiSlopes(int n_heads);

// Sinusoidal encoding (Vaswani et al. 2017) of one position into d floats, added to x.
void AddSinusoid(float* x, int32_t pos, int d);

}  // namespace mixlab
