#include "mixers/bucket_window_attention.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "mixers/ops/small_gemm.h"

namespace mixlab {
namespace {

constexpr int64_t kQueryTile = 32;
using Row = Eigen::Map<Eigen::ArrayXf>;

// The members of every bucket of round r, positions in increasing order.
std::vector<std::vector<int32_t>> Members(const BucketWindowShape& s, int r) {
  std::vector<std::vector<int32_t>> members(s.n_buckets);
  for (int t = 0; t < s.T; ++t) members[s.buckets[int64_t(r) * s.T + t]].push_back(t);
  return members;
}

// Rows p[m] of src into dst (n, dh), or transposed into dst (dh, n).
void Gather(const float* src, int64_t stride, int dh, const std::vector<int32_t>& p, float* dst) {
  for (size_t m = 0; m < p.size(); ++m) std::copy_n(src + p[m] * stride, dh, dst + m * dh);
}
void GatherTransposed(const float* src, int64_t stride, int dh, const std::vector<int32_t>& p, float* dst) {
  const int64_t n = int64_t(p.size());
  for (int64_t m = 0; m < n; ++m)
    for (int d = 0; d < dh; ++d) dst[d * n + m] = src[p[m] * stride + d];
}
// dst rows p[m] += src (n, dh).
void ScatterAdd(const float* src, int dh, const std::vector<int32_t>& p, int64_t stride, float* dst) {
  for (size_t m = 0; m < p.size(); ++m)
    Row(dst + p[m] * stride, dh) += Eigen::Map<const Eigen::ArrayXf>(src + m * dh, dh);
}

// One bucket's panels: members' q (n, dh) and k transposed (dh, n).
struct Panels {
  int64_t n = 0;
  std::vector<float> q, k_t;
  Panels(const BucketWindowShape& s, const float* q_rows, const float* k_rows, const std::vector<int32_t>& p)
      : n(int64_t(p.size())), q(n * s.dh), k_t(n * s.dh) {
    Gather(q_rows, s.stride, s.dh, p, q.data());
    GatherTransposed(k_rows, s.stride, s.dh, p, k_t.data());
  }
};

// The band of query block [m0, m0 + mq): keys [lo, m0 + mq). Query m sees [m - window + 1, m - 1], itself when m = 0.
int64_t BandStart(int64_t m0, int window) { return std::max<int64_t>(0, m0 - window + 1); }
bool Sees(int64_t m, int64_t j, int window) { return m == 0 ? j == 0 : j < m && j > m - window; }

// Scaled scores of the block against its band into S (mq, nk), -inf where a query does not see a key.
void BandScores(const BucketWindowShape& s, const Panels& b, int64_t m0, int64_t mq, int64_t lo, float* S) {
  const int64_t nk = m0 + mq - lo;
  const float scale = 1.0f / std::sqrt(float(s.dh));
  SmallGemm(mq, nk, s.dh, b.q.data() + m0 * s.dh, s.dh, 1, b.k_t.data() + lo, b.n, S, nk, false);
  for (int64_t i = 0; i < mq; ++i)
    for (int64_t j = 0; j < nk; ++j)
      S[i * nk + j] = Sees(m0 + i, lo + j, s.window) ? S[i * nk + j] * scale : -std::numeric_limits<float>::infinity();
}

}  // namespace

void BucketWindowForward(const BucketWindowShape& s, const float* q, const float* k, const float* v, float* o,
                         float* logz) {
  const int dh = s.dh;
  const int64_t T = s.T;
  // Per round and position: the row maximum, the sum of e^(s - max) and the unnormalised output.
  std::vector<float> round_max(s.rounds * T), round_sum(s.rounds * T), round_out(s.rounds * T * dh);
  std::vector<float> values, S, U(kQueryTile * dh);
  for (int r = 0; r < s.rounds; ++r)
    for (const auto& p : Members(s, r)) {
      if (p.empty()) continue;
      const Panels b(s, q, k, p);
      values.resize(b.n * dh);
      Gather(v, s.stride, dh, p, values.data());
      for (int64_t m0 = 0; m0 < b.n; m0 += kQueryTile) {
        const int64_t mq = std::min(kQueryTile, b.n - m0), lo = BandStart(m0, s.window), nk = m0 + mq - lo;
        S.resize(mq * nk);
        BandScores(s, b, m0, mq, lo, S.data());
        for (int64_t i = 0; i < mq; ++i) {
          Row row(S.data() + i * nk, nk);
          const float top = row.maxCoeff();  // finite: every query sees a key
          row = (row - top).exp();
          const int64_t at = r * T + p[m0 + i];
          round_max[at] = top;
          round_sum[at] = row.sum();
        }
        SmallGemm(mq, dh, nk, S.data(), nk, 1, values.data() + lo * dh, dh, U.data(), dh, false);
        for (int64_t i = 0; i < mq; ++i)
          std::copy_n(U.data() + i * dh, dh, round_out.data() + (r * T + p[m0 + i]) * dh);
      }
    }
  for (int64_t t = 0; t < T; ++t) {
    float top = round_max[t];
    for (int r = 1; r < s.rounds; ++r) top = std::max(top, round_max[r * T + t]);
    Row out(o + t * s.stride, dh);
    out.setZero();
    float z = 0;
    for (int r = 0; r < s.rounds; ++r) {
      const float w = std::exp(round_max[r * T + t] - top);
      z += w * round_sum[r * T + t];
      out += w * Eigen::Map<const Eigen::ArrayXf>(round_out.data() + (r * T + t) * dh, dh);
    }
    out /= z;
    logz[t] = top + std::log(z);
  }
}

void BucketWindowBackward(const BucketWindowShape& s, const float* q, const float* k, const float* v, const float* o,
                          const float* dout, const float* logz, float* dq, float* dk, float* dv) {
  const int dh = s.dh;
  const float scale = 1.0f / std::sqrt(float(dh));
  std::vector<float> d_o(s.T);  // do . o per position
  for (int64_t t = 0; t < s.T; ++t)
    d_o[t] = Eigen::Map<const Eigen::VectorXf>(dout + t * s.stride, dh)
                 .dot(Eigen::Map<const Eigen::VectorXf>(o + t * s.stride, dh));
  std::vector<float> keys, values_t, grads, dQ, dK, dV, P, dP;
  for (int r = 0; r < s.rounds; ++r)
    for (const auto& p : Members(s, r)) {
      if (p.empty()) continue;
      const Panels b(s, q, k, p);
      const int64_t n = b.n;
      keys.resize(n * dh), values_t.resize(n * dh), grads.resize(n * dh);
      Gather(k, s.stride, dh, p, keys.data());
      GatherTransposed(v, s.stride, dh, p, values_t.data());
      Gather(dout, s.stride, dh, p, grads.data());
      for (auto* panel : {&dQ, &dK, &dV}) panel->assign(n * dh, 0.0f);
      for (int64_t m0 = 0; m0 < n; m0 += kQueryTile) {
        const int64_t mq = std::min(kQueryTile, n - m0), lo = BandStart(m0, s.window), nk = m0 + mq - lo;
        P.resize(mq * nk), dP.resize(mq * nk);
        BandScores(s, b, m0, mq, lo, P.data());
        for (int64_t i = 0; i < mq; ++i)
          Row(P.data() + i * nk, nk) = (Row(P.data() + i * nk, nk) - logz[p[m0 + i]]).exp();
        const float* dO = grads.data() + m0 * dh;
        SmallGemm(nk, dh, mq, P.data(), 1, nk, dO, dh, dV.data() + lo * dh, dh, true);    // dV += P^T dO
        SmallGemm(mq, nk, dh, dO, dh, 1, values_t.data() + lo, n, dP.data(), nk, false);  // dP = dO V^T
        for (int64_t i = 0; i < mq; ++i)                                                  // dS / sqrt(dh), in P
          Row(P.data() + i * nk, nk) *= (Row(dP.data() + i * nk, nk) - d_o[p[m0 + i]]) * scale;
        SmallGemm(mq, dh, nk, P.data(), nk, 1, keys.data() + lo * dh, dh, dQ.data() + m0 * dh, dh, true);
        SmallGemm(nk, dh, mq, P.data(), 1, nk, b.q.data() + m0 * dh, dh, dK.data() + lo * dh, dh, true);
      }
      ScatterAdd(dQ.data(), dh, p, s.stride, dq);
      ScatterAdd(dK.data(), dh, p, s.stride, dk);
      ScatterAdd(dV.data(), dh, p, s.stride, dv);
    }
}

}  // namespace mixlab
