// Sums over the rows of a matrix, in parallel and the same whatever the thread count: the rows are split into a fixed
// number of contiguous blocks, each block adds its rows in order into its own partial, and the partials are added in
// block order. A thread's share of rows is then whole rows (a split by columns did not scale on two cores: every
// thread streams every row).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "mixers/ops/matmul.h"

namespace mixlab {

constexpr int64_t kSumRowBlocks = 32;

// sums (width) += the sum over rows i of what add_row(i, partial) adds into a zeroed partial (width). add_row may also
// write per-row results (it runs once per row, on some thread).
template <class AddRow>
void AddRowBlockSums(int64_t rows, int64_t width, float* sums, const AddRow& add_row) {
  const int64_t blocks = std::min(rows, kSumRowBlocks);
  std::vector<float> partial(blocks * width, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t rb = 0; rb < blocks; ++rb)
    for (int64_t i = rows * rb / blocks; i < rows * (rb + 1) / blocks; ++i) add_row(i, partial.data() + rb * width);
  AddColumnSums(partial.data(), blocks, width, sums);
}

// The column sums of dy (rows, cols) into db (cols), by row blocks.
inline void AddColumnSumsByRowBlocks(const float* dy, int64_t rows, int64_t cols, float* db) {
  AddRowBlockSums(rows, cols, db, [&](int64_t i, float* acc) { AddColumnSums(dy + i * cols, 1, cols, acc); });
}

}  // namespace mixlab
