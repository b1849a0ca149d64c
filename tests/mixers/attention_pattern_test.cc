// The attention pattern's shortcuts agree with its pair rule: a tile is active exactly when some pair in it is
// allowed and full exactly when every pair is (the tiled kernel skips inactive tiles and the mask of full ones),
// MaskRow masks exactly the pairs not allowed, and AllowedKeys lists exactly the allowed keys (decoding scores only
// those).
#include "mixers/attention_pattern.h"

#include <gtest/gtest.h>

#include <vector>

namespace mixlab::testing {
namespace {

std::vector<std::pair<std::string, AttentionPattern>> Patterns() {
  AttentionPattern causal, local, local_global, sparse;
  local.kind = local_global.kind = AttentionPattern::Kind::kLocal;
  local.window = 16;
  local_global.window = 5;
  local_global.n_global = 3;
  sparse.kind = AttentionPattern::Kind::kBlockSparse;
  sparse.block = 4;
  sparse.window_blocks = 1;
  sparse.global_blocks = 1;
  sparse.random_blocks = 2;
  sparse.seed = 11;
  return {{"causal", causal}, {"local", local}, {"local+global", local_global}, {"sparse", sparse}};
}

TEST(AttentionPattern, TileShortcutsAgreeWithPairs) {
  const int64_t T = 70;
  for (auto [name, p] : Patterns()) {
    p.Prepare(T);
    for (int64_t tile : {1, 3, 8, 16, 64})
      for (int64_t i0 = 0; i0 < T; i0 += tile)
        for (int64_t j0 = 0; j0 < T; j0 += tile) {
          const int64_t ni = std::min(tile, T - i0), nj = std::min(tile, T - j0);
          bool any = false, all = true;
          for (int64_t i = i0; i < i0 + ni; ++i)
            for (int64_t j = j0; j < j0 + nj; ++j) {
              any |= p.Allows(i, j);
              all &= p.Allows(i, j);
            }
          const std::string at =
              name + " tile " + std::to_string(tile) + " at (" + std::to_string(i0) + ", " + std::to_string(j0) + ")";
          EXPECT_EQ(p.TileActive(i0, ni, j0, nj), any) << at;
          EXPECT_EQ(p.TileFull(i0, ni, j0, nj), all) << at;
          for (int64_t i = i0; i < i0 + ni; ++i) {
            std::vector<float> row(nj, 1.0f);
            p.MaskRow(i, j0, nj, row.data());
            for (int64_t j = 0; j < nj; ++j)
              EXPECT_EQ(row[j] == 1.0f, p.Allows(i, j0 + j)) << at << " row " << i << " key " << j0 + j;
          }
        }
  }
}

TEST(AttentionPattern, AllowedKeysListsTheAllowedPairs) {
  const int64_t T = 70;
  for (auto [name, p] : Patterns()) {
    p.Prepare(T);
    std::vector<int64_t> keys;
    for (int64_t i = 0; i < T; ++i) {
      std::vector<int64_t> expected;
      for (int64_t j = 0; j < T; ++j)
        if (p.Allows(i, j)) expected.push_back(j);
      p.AllowedKeys(i, keys);
      EXPECT_EQ(keys, expected) << name << " query " << i;
    }
  }
}

}  // namespace
}  // namespace mixlab::testing
