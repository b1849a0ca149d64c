// A small seeded random generator (SplitMix64) with uniform and normal draws. Identical streams on every
// platform, unlike std::normal_distribution, so a seed fixes parameters and data bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

namespace mixlab {

// The SplitMix64 output for counter z: a well-mixed 64-bit hash, also used alone for random masks that must be a
// pure function of their indices (attention dropout).
inline uint64_t SplitMix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL) {}
  // Independent stream for a (seed, stream id) pair.
  Rng(uint64_t seed, uint64_t stream) : Rng(seed ^ (stream * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL)) {}

  uint64_t Next() {
    const uint64_t z = SplitMix64(state_);
    state_ += 0x9e3779b97f4a7c15ULL;
    return z;
  }
  // Uniform in [0, 1).
  double Uniform() { return double(Next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [lo, hi).
  int64_t Int(int64_t lo, int64_t hi) { return lo + int64_t(Next() % uint64_t(hi - lo)); }
  double Normal() {
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace mixlab
