// Which keys a query may attend to, shared by the softmax-family mixers:
//   causal        every key j <= i (softmax)
//   local         j in [i - window + 1, i], plus the first n_global tokens (Longformer, Beltagy et al. 2020)
//   block sparse  BigBird (Zaheer et al. 2020) on blocks of `block` tokens: the query's own block and the
//                 window_blocks before it, the first global_blocks blocks, and random_blocks blocks drawn per
//                 query block from the rest with a seed
// The tiled kernel skips key tiles in which no pair is allowed, so local and sparse cost O(T * keys per query).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mixlab {

struct AttentionPattern {
  enum class Kind { kCausal, kLocal, kBlockSparse };
  Kind kind = Kind::kCausal;
  int window = 0, n_global = 0;
  int block = 16, window_blocks = 1, global_blocks = 1, random_blocks = 1;
  uint64_t seed = 0;

  // Draws the random blocks of every query block that covers positions < T (incremental, not thread-safe:
  // call before parallel work).
  void Prepare(int64_t T);
  bool Allows(int64_t i, int64_t j) const {
    if (j > i) return false;
    switch (kind) {
      case Kind::kCausal:
        return true;
      case Kind::kLocal:
        return i - j < window || j < n_global;
      case Kind::kBlockSparse:
        return BlockAllows(i / block, j / block);
    }
    return false;
  }
  // The keys query i may attend to, ascending, into `keys` (decoding scores only these). After Prepare(i + 1).
  void AllowedKeys(int64_t i, std::vector<int64_t>& keys) const;
  // Whether any (i, j) with i in [i0, i0+ni), j in [j0, j0+nj) is allowed.
  bool TileActive(int64_t i0, int64_t ni, int64_t j0, int64_t nj) const;
  // Whether every (i, j) in that tile is allowed (the kernel then skips the per-pair mask).
  bool TileFull(int64_t i0, int64_t ni, int64_t j0, int64_t nj) const;
  // Sets the scores of keys [j0, j0 + n) that query i may not attend to to -inf (a few fills, except block sparse).
  void MaskRow(int64_t i, int64_t j0, int64_t n, float* row) const;
  // Keys a decoder must keep: the global prefix and the last `window` for local attention (a ring buffer), else every
  // key (-1). CacheSlot is key j's place in that cache: j itself, or for local keys past the prefix a ring slot.
  int64_t KeysKept() const { return kind == Kind::kLocal ? int64_t(n_global) + window : -1; }
  int64_t CacheSlot(int64_t j) const {
    return kind == Kind::kLocal && j >= n_global ? n_global + (j - n_global) % window : j;
  }
  // Upper bound on the keys one query attends to (for FLOP estimates), at sequence length T.
  int64_t KeysPerQuery(int64_t T) const;

 private:
  bool BlockAllows(int64_t bi, int64_t bj) const;
  std::vector<std::vector<int64_t>> random_;  // per query block: its random key blocks, ascending
};

}  // namespace mixlab
