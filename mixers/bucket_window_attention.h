// Reformer's causal LSH attention of one head, computed bucket by bucket in tiles (the training path of reformer.cc).
//
// In each hashing round every position falls in one bucket. Within a bucket, with its members in position order
// p_0 < p_1 < ..., query member m sees the members [m - window + 1, m - 1] (the window - 1 most recent earlier ones),
// or itself when m = 0. Over the rounds a key seen twice counts twice:
//
//   Z_i = sum_r sum_{j in keys_r(i)} e^{s_ij},   o_i = sum_r sum_{j in keys_r(i)} e^{s_ij} v_j / Z_i,   s = q . k scale
//
// which is the multiset union of AttendKeyList (key_list_attention.h). Per round and bucket the members' q, k, v rows
// are gathered into contiguous panels and each block of kQueryTile queries meets its band of at most
// kQueryTile + window - 1 keys in two small GEMMs (scores, then weights x values), with each round's log-sum-exp and
// unnormalised output kept per query and the rounds combined at the end. Backward recomputes the tiles from log Z.
// Cost per head: O(T * rounds * (kQueryTile + window) * dh), all of it in SmallGemm.
#pragma once
#include <cstdint>

namespace mixlab {

struct BucketWindowShape {
  int T = 0, dh = 0;
  int64_t stride = 0;  // floats between consecutive rows of q, k, v (and their gradients)
  int rounds = 0, n_buckets = 0, window = 0;
  const int32_t* buckets = nullptr;  // (rounds, T): the bucket of each position in each round
};

// Writes o (T rows) and log Z (T).
void BucketWindowForward(const BucketWindowShape& s, const float* q, const float* k, const float* v, float* o,
                         float* logz);

// Adds to dq, dk, dv (rows like q) the gradients of the forward above, given its o, log Z and do.
void BucketWindowBackward(const BucketWindowShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* dout, const float* logz, float* dq, float* dk, float* dv);

}  // namespace mixlab
