// How the rows of a per-head output projection (ParamRole::kHeadOutput) and the channels of Mixing() maps group into
// heads: `groups` contiguous blocks, row r of `rows` in block r * groups / rows. Mixing(), ablation, mean ablation,
// pruning and the contract tests all group through these two functions, so they cannot disagree.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace mixlab {

inline int HeadGroupOfRow(int64_t row, int64_t rows, int groups) { return int(row * groups / rows); }

// How many of `rows` rows fall in each of `groups` groups (the channels each Mixing() map averages).
inline std::vector<int64_t> HeadGroupSizes(int64_t rows, int groups) {
  std::vector<int64_t> sizes(groups, 0);
  for (int64_t r = 0; r < rows; ++r) ++sizes[HeadGroupOfRow(r, rows, groups)];
  return sizes;
}

// Zeroes the rows of head `head` in a (rows, cols) projection: removes exactly that head's contribution.
inline void ZeroHeadRows(float* w, int64_t rows, int64_t cols, int groups, int head) {
  for (int64_t r = 0; r < rows; ++r)
    if (HeadGroupOfRow(r, rows, groups) == head) std::fill(w + r * cols, w + (r + 1) * cols, 0.0f);
}

}  // namespace mixlab
