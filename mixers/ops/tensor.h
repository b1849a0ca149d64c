// Tensors are row-major Eigen maps over flat float buffers. Shapes are documented at each function, e.g.
// "x is (B, T, D)" means B*T*D contiguous floats with D fastest.
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "mixers/ops/usage_error.h"

namespace mixlab {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;
// A (rows, cols) view whose rows are `stride` floats apart, e.g. one head's (T, d_head) slice of (T, H*d_head).
using StridedMap = Eigen::Map<RowMatrix, 0, Eigen::OuterStride<>>;
using ConstStridedMap = Eigen::Map<const RowMatrix, 0, Eigen::OuterStride<>>;

inline MatrixMap AsMatrix(float* p, int64_t rows, int64_t cols) { return MatrixMap(p, rows, cols); }
inline ConstMatrixMap AsMatrix(const float* p, int64_t rows, int64_t cols) { return ConstMatrixMap(p, rows, cols); }
inline StridedMap AsStrided(float* p, int64_t rows, int64_t cols, int64_t stride) {
  return StridedMap(p, rows, cols, Eigen::OuterStride<>(stride));
}
inline ConstStridedMap AsStrided(const float* p, int64_t rows, int64_t cols, int64_t stride) {
  return ConstStridedMap(p, rows, cols, Eigen::OuterStride<>(stride));
}

// Float storage aligned to Eigen's widest packet (64 bytes with AVX-512). Eigen's vectorised reductions peel
// an unaligned head whose length depends on the address, so with malloc's 16-byte alignment the summation
// order, and the last bit of a result, could change from one allocation to the next. Every buffer that
// feeds a computation is a Buffer, which keeps results bit-identical across runs.
using Buffer = std::vector<float, Eigen::aligned_allocator<float>>;

}  // namespace mixlab
