#include "mixers/attention_pattern.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "mixers/ops/rng.h"

namespace mixlab {

void AttentionPattern::Prepare(int64_t T) {
  if (kind != Kind::kBlockSparse) return;
  const int64_t blocks = (T + block - 1) / block;
  for (int64_t bi = int64_t(random_.size()); bi < blocks; ++bi) {
    // candidates: blocks not already covered by the global prefix or the local window
    std::vector<int64_t> candidates;
    for (int64_t bj = global_blocks; bj < bi - window_blocks; ++bj) candidates.push_back(bj);
    Rng rng(seed, uint64_t(bi));
    const int64_t r = std::min<int64_t>(random_blocks, int64_t(candidates.size()));
    for (int64_t k = 0; k < r; ++k) std::swap(candidates[k], candidates[rng.Int(k, int64_t(candidates.size()))]);
    candidates.resize(r);
    std::sort(candidates.begin(), candidates.end());  // ascending, as AllowedKeys lists them
    random_.push_back(candidates);
  }
}

void AttentionPattern::AllowedKeys(int64_t i, std::vector<int64_t>& keys) const {
  keys.clear();
  auto add_range = [&](int64_t from, int64_t to) {  // [from, to)
    for (int64_t j = from; j < to; ++j) keys.push_back(j);
  };
  switch (kind) {
    case Kind::kCausal:
      add_range(0, i + 1);
      break;
    case Kind::kLocal: {
      const int64_t lo = std::max<int64_t>(0, i - window + 1);
      add_range(0, std::min<int64_t>(n_global, lo));
      add_range(lo, i + 1);
      break;
    }
    case Kind::kBlockSparse: {  // the global prefix, the random blocks (which lie between), the window: ascending
      const int64_t bi = i / block, window_from = std::max<int64_t>(global_blocks, bi - window_blocks);
      auto add_block = [&](int64_t bj) { add_range(bj * block, std::min<int64_t>((bj + 1) * block, i + 1)); };
      for (int64_t bj = 0; bj < std::min<int64_t>(global_blocks, bi + 1); ++bj) add_block(bj);
      for (int64_t bj : random_.at(bi)) add_block(bj);
      for (int64_t bj = window_from; bj <= bi; ++bj) add_block(bj);
      break;
    }
  }
}

bool AttentionPattern::BlockAllows(int64_t bi, int64_t bj) const {
  if (bj > bi) return false;
  if (bi - bj <= window_blocks || bj < global_blocks) return true;
  const auto& r = random_.at(bi);
  return std::find(r.begin(), r.end(), bj) != r.end();
}

bool AttentionPattern::TileActive(int64_t i0, int64_t ni, int64_t j0, int64_t nj) const {
  const int64_t i1 = i0 + ni - 1, j1 = j0 + nj - 1;
  if (j0 > i1) return false;
  switch (kind) {
    case Kind::kCausal:
      return true;
    case Kind::kLocal:
      return j1 > i0 - window || j0 < n_global;
    case Kind::kBlockSparse:
      for (int64_t bi = i0 / block; bi <= i1 / block; ++bi)
        for (int64_t bj = j0 / block; bj <= j1 / block; ++bj)
          if (BlockAllows(bi, bj)) return true;
      return false;
  }
  return true;
}

void AttentionPattern::MaskRow(int64_t i, int64_t j0, int64_t n, float* row) const {
  auto mask = [&](int64_t from, int64_t to) {  // keys [from, to)
    from = std::max(from, j0);
    to = std::min(to, j0 + n);
    if (from < to) std::fill(row + (from - j0), row + (to - j0), -std::numeric_limits<float>::infinity());
  };
  switch (kind) {
    case Kind::kCausal:
      mask(i + 1, j0 + n);
      return;
    case Kind::kLocal:
      mask(i + 1, j0 + n);
      mask(n_global, i - window + 1);
      return;
    case Kind::kBlockSparse:
      mask(i + 1, j0 + n);
      for (int64_t bj = j0 / block; bj * block < std::min(j0 + n, i + 1); ++bj)  // whole key blocks at a time
        if (!BlockAllows(i / block, bj)) mask(bj * block, (bj + 1) * block);
      return;
  }
}

bool AttentionPattern::TileFull(int64_t i0, int64_t ni, int64_t j0, int64_t nj) const {
  const int64_t i1 = i0 + ni - 1, j1 = j0 + nj - 1;
  if (j1 > i0) return false;
  switch (kind) {
    case Kind::kCausal:
      return true;
    case Kind::kLocal:
      return i1 - j0 < window || j1 < n_global;
    case Kind::kBlockSparse:
      for (int64_t bi = i0 / block; bi <= i1 / block; ++bi)
        for (int64_t bj = j0 / block; bj <= j1 / block; ++bj)
          if (!BlockAllows(bi, bj)) return false;
      return true;
  }
  return false;
}

int64_t AttentionPattern::KeysPerQuery(int64_t T) const {
  switch (kind) {
    case Kind::kCausal:
      return (T + 1) / 2;
    case Kind::kLocal:
      return std::min<int64_t>(T, window + n_global);
    case Kind::kBlockSparse:
      return std::min<int64_t>(T, int64_t(block) * (1 + window_blocks + global_blocks + random_blocks));
  }
  return T;
}

}  // namespace mixlab
