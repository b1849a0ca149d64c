// Attention of one query over an explicit list of earlier keys, each counted with a multiplicity (the content-based
// sparse attentions: Reformer's LSH rounds, the Routing Transformer's clusters):
//
//   s_j = q . k_j * scale,  p_j = m_j e^{s_j} / Z,  Z = sum_j m_j e^{s_j},  o = sum_j p_j v_j
//
// Rows of k and v are `stride` floats apart (one head's slice of (T, H*dh)); keys index those rows.
#pragma once
#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "mixers/mixer.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/tensor.h"

namespace mixlab {

struct KeyList {
  std::vector<int32_t> keys, multiplicity;
};

// Writes o (dh) and returns log Z.
inline float AttendKeyList(const float* q, const float* k, const float* v, int64_t stride, int dh, float scale,
                           const KeyList& list, float* o) {
  Eigen::Map<const Eigen::VectorXf> qv(q, dh);
  thread_local std::vector<float> s;  // the scores; reused, as this runs once per query
  s.resize(list.keys.size());
  float top = -std::numeric_limits<float>::infinity();
  for (size_t n = 0; n < s.size(); ++n) {
    s[n] = qv.dot(Eigen::Map<const Eigen::VectorXf>(k + list.keys[n] * stride, dh)) * scale;
    top = std::max(top, s[n]);
  }
  double z = 0;
  for (size_t n = 0; n < s.size(); ++n) z += list.multiplicity[n] * std::exp(double(s[n] - top));
  const float logz = top + float(std::log(z));
  Eigen::Map<Eigen::VectorXf> out(o, dh);
  out.setZero();
  for (size_t n = 0; n < s.size(); ++n)
    out +=
        list.multiplicity[n] * std::exp(s[n] - logz) * Eigen::Map<const Eigen::VectorXf>(v + list.keys[n] * stride, dh);
  return logz;
}

// The weights p_j of AttendKeyList (for mixing maps), given its log Z.
inline float KeyListWeight(const float* q, const float* k_row, int dh, float scale, int32_t multiplicity, float logz) {
  const float s = Eigen::Map<const Eigen::VectorXf>(q, dh).dot(Eigen::Map<const Eigen::VectorXf>(k_row, dh)) * scale;
  return multiplicity * std::exp(s - logz);
}

// Backward of AttendKeyList for one query given do: dq += sum_j ds_j k_j * scale, dk_j += ds_j q * scale,
// dv_j += p_j do, with ds_j = p_j (do . v_j - do . o). dk and dv rows share k's stride.
inline void AttendKeyListBackward(const float* q, const float* k, const float* v, const float* o, const float* dout,
                                  float logz, int64_t stride, int dh, float scale, const KeyList& list, float* dq,
                                  float* dk, float* dv) {
  Eigen::Map<const Eigen::VectorXf> qv(q, dh), ov(o, dh), dov(dout, dh);
  Eigen::Map<Eigen::VectorXf> dqv(dq, dh);
  const float d_o = dov.dot(ov);
  for (size_t n = 0; n < list.keys.size(); ++n) {
    const int64_t j = list.keys[n];
    Eigen::Map<const Eigen::VectorXf> kj(k + j * stride, dh), vj(v + j * stride, dh);
    const float p = list.multiplicity[n] * std::exp(qv.dot(kj) * scale - logz);
    Eigen::Map<Eigen::VectorXf>(dv + j * stride, dh) += p * dov;
    const float ds = p * (dov.dot(vj) - d_o) * scale;
    dqv += ds * kj;
    Eigen::Map<Eigen::VectorXf>(dk + j * stride, dh) += ds * qv;
  }
}

// Shared query-key projections (Reformer, Routing Transformer): q = x Wq, k = q / |q| per head, v = x Wv; q, k, v are
// (N, H*dh).
inline void SharedQkProject(const float* x, const float* wq, const float* wv, int64_t N, int64_t D, int64_t H,
                            int64_t dh, Buffer& q, Buffer& k, Buffer& v) {
  for (auto* buf : {&q, &k, &v}) buf->resize(N * H * dh);
  LinearForward(x, wq, q.data(), N, D, H * dh);
  LinearForward(x, wv, v.data(), N, D, H * dh);
  for (int64_t i = 0; i < N * H; ++i) {
    Eigen::Map<const Eigen::VectorXf> qi(q.data() + i * dh, dh);
    Eigen::Map<Eigen::VectorXf>(k.data() + i * dh, dh) = qi / qi.norm();
  }
}

// Through k = q / |q| for `rows` rows of one head (`stride` floats apart): dq += (dk - k (k . dk)) / |q|.
inline void AddSharedKeyGradient(const float* q, const float* k, const float* dk, float* dq, int64_t rows,
                                 int64_t stride, int dh) {
  for (int64_t t = 0; t < rows; ++t) {
    Eigen::Map<const Eigen::VectorXf> qt(q + t * stride, dh), kt(k + t * stride, dh), dkt(dk + t * stride, dh);
    Eigen::Map<Eigen::VectorXf>(dq + t * stride, dh) += (dkt - kt * kt.dot(dkt)) / qt.norm();
  }
}

// What the forward of a key-list attention mixer keeps for its backward; each mixer adds its routing record.
struct KeyListContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q, k, v, o, logz;               // q, k, v, o (B, T, HD); logz (B, H, T)
  std::vector<std::vector<KeyList>> lists;  // (B * H) x T: each query's keys
  Buffer dq, dk, dv, dtmp;
};

// Keeps x and projects q, k = q / |q| and v for B sequences of T tokens.
inline void KeyListProject(const float* x, const float* wq, const float* wv, int B, int T, int64_t D, int64_t H,
                           int64_t dh, KeyListContext& c) {
  c.B = B;
  c.T = T;
  c.x.assign(x, x + int64_t(B) * T * D);
  SharedQkProject(x, wq, wv, int64_t(B) * T, D, H, dh, c.q, c.k, c.v);
}

// The whole backward of a key-list attention mixer y = attention(q, k, v) Wo with the shared q/k projection: dx from
// dy, the gradients of Wq, Wv and Wo added to gq, gv, go. `head_backward(bh)` adds head bh's dq, dk, dv from c.dtmp
// (do); by default it runs over each query's key list (c.lists).
template <class HeadBackward>
inline void KeyListBackward(KeyListContext& c, const float* dy, float* dx, const float* wq, const float* wv,
                            const float* wo, float* gq, float* gv, float* go, int64_t D, int64_t H, int dh,
                            HeadBackward head_backward) {
  const int64_t B = c.B, T = c.T, N = B * T, HD = H * dh;
  c.dtmp.resize(N * HD);
  for (auto* buf : {&c.dq, &c.dk, &c.dv}) buf->assign(N * HD, 0.0f);
  LinearBackward(c.o.data(), wo, dy, c.dtmp.data(), go, N, HD, D);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    head_backward(bh);
    const int64_t head = (bh / H) * T * HD + (bh % H) * dh;
    AddSharedKeyGradient(c.q.data() + head, c.k.data() + head, c.dk.data() + head, c.dq.data() + head, T, HD, dh);
  }
  LinearBackward(c.x.data(), wq, c.dq.data(), dx, gq, N, D, HD);
  LinearBackward(c.x.data(), wv, c.dv.data(), dx, gv, N, D, HD, true);
}

inline void KeyListBackward(KeyListContext& c, const float* dy, float* dx, const float* wq, const float* wv,
                            const float* wo, float* gq, float* gv, float* go, int64_t D, int64_t H, int dh) {
  const float scale = 1.0f / std::sqrt(float(dh));
  const int64_t T = c.T, HD = H * dh;
  KeyListBackward(c, dy, dx, wq, wv, wo, gq, gv, go, D, H, dh, [&](int64_t bh) {
    const int64_t b = bh / H, h = bh % H;
    auto row = [&](Buffer& buf, int64_t t) { return buf.data() + (b * T + t) * HD + h * dh; };
    for (int64_t i = 0; i < T; ++i)
      AttendKeyListBackward(row(c.q, i), row(c.k, 0), row(c.v, 0), row(c.o, i), row(c.dtmp, i), c.logz[bh * T + i], HD,
                            dh, scale, c.lists[bh][i], row(c.dq, i), row(c.dk, 0), row(c.dv, 0));
  });
}

// The attention weights of one sequence (T, H*dh rows) as one (T, T) map per head: lists[h][i] are query i's keys and
// logz[h * T + i] its log-normaliser.
inline std::vector<RowMatrix> KeyListMaps(const float* q, const float* k,
                                          const std::vector<std::vector<KeyList>>& lists, const float* logz, int T,
                                          int H, int dh) {
  const float scale = 1.0f / std::sqrt(float(dh));
  const int64_t stride = int64_t(H) * dh;
  std::vector<RowMatrix> maps(H, RowMatrix::Zero(T, T));
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < T; ++i) {
      const KeyList& list = lists[h][i];
      for (size_t n = 0; n < list.keys.size(); ++n)
        maps[h](i, list.keys[n]) = KeyListWeight(q + i * stride + h * dh, k + list.keys[n] * stride + h * dh, dh, scale,
                                                 list.multiplicity[n], logz[int64_t(h) * T + i]);
    }
  return maps;
}

}  // namespace mixlab
