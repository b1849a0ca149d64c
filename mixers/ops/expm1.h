// expm1 vectorised, for Mamba's discretisation (expm1(dt A) for every state value of every channel and token).
//
// As fdlibm does it: a = k ln2 + r with k = round(a / ln2) and |r| <= ln2 / 2, then expm1(a) = 2^k expm1(r) + (2^k - 1)
// with expm1(r) a degree-8 Taylor polynomial (remainder < 1e-8 relative). There is no cancellation: for k = 0 it is
// the polynomial alone, otherwise |result| >= 0.29. Inputs are clamped to [-87, 88] (below, the result is -1 to float
// precision; above, expm1 overflows anyway). Max relative error against double expm1: 1.2e-7. Eigen's expm1 spends an
// exp, a log and a division (docs/bench/optimizations.md).
//
// The kernel works on 16 floats at once (one AVX-512 vector, two AVX2 ones): a Mamba channel's 16 state values, so a
// scan can discretise a channel in registers right where it uses it. Each lane's result is the same arithmetic at any
// vector width.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace mixlab {

using Vec16 = float __attribute__((vector_size(64)));
using Int16 = int32_t __attribute__((vector_size(64)));

inline Vec16 Load16(const float* p) {
  Vec16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void Store16(float* p, Vec16 v) { std::memcpy(p, &v, sizeof v); }

// The sum of the 16 lanes, as a tree of halves.
inline float HorizontalSum(Vec16 v) {
  using Vec8 = float __attribute__((vector_size(32)));
  using Vec4 = float __attribute__((vector_size(16)));
  const Vec8 s8 = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const Vec4 s4 = __builtin_shufflevector(s8, s8, 0, 1, 2, 3) + __builtin_shufflevector(s8, s8, 4, 5, 6, 7);
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

inline Vec16 Expm1(Vec16 a) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693145751953125f, kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const Vec16 lo = Vec16{} - 87.0f, hi = Vec16{} + 88.0f;
  a = a < lo ? lo : a;
  a = a > hi ? hi : a;
  const Vec16 k = (a * kLog2e + kRound) - kRound;
  const Vec16 r = (a - k * kLn2Hi) - k * kLn2Lo;
  const Int16 bits = (__builtin_convertvector(k, Int16) + 127) << 23;
  Vec16 two_k;
  std::memcpy(&two_k, &bits, sizeof two_k);  // the float 2^k
  const Vec16 poly =
      r * (1.0f +
           r * (1.0f / 2 +
                r * (1.0f / 6 +
                     r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320))))))));
  return two_k * poly + (two_k - 1.0f);
}

// out[i] = expm1(a[i]) for n values; with `exp_out`, also exp(a[i]) = expm1(a[i]) + 1 there.
inline void Expm1(const float* a, float* out, int64_t n, float* exp_out = nullptr) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const Vec16 e = Expm1(Load16(a + i));
    Store16(out + i, e);
    if (exp_out) Store16(exp_out + i, e + 1.0f);
  }
  if (i == n) return;
  float in[16] = {}, e[16], e_exp[16];  // the last n % 16 values, padded to a vector
  std::copy(a + i, a + n, in);
  Expm1(in, e, 16, e_exp);
  std::copy_n(e, n - i, out + i);
  if (exp_out) std::copy_n(e_exp, n - i, exp_out + i);
}

}  // namespace mixlab
