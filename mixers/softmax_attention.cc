// Softmax multi-head causal attention (Vaswani et al. 2017), computed in tiles with an online softmax
// (FlashAttention, Dao et al. 2022, on CPU): no T x T buffer exists in training or inference.
//
//   q, k, v = x Wq, x Wk, x Wv            (B, T, H*dh), RoPE on q and k if pos = rope
//   S_h = q_h k_h^T / sqrt(dh) + bias_h    causal mask j <= i; bias: ALiBi's -slope_h (i - j), or T5's learned
//                                          scalar per head and log-spaced distance bucket (Raffel et al. 2020)
//   o_h = dropout(softmax(S_h)) v_h ;  y = concat_h(o_h) Wo
//
// Cost: O(T^2 * H * dh) time, O(T * H * dh) memory. The context saves x, q, k, v (after RoPE), o and the
// row log-sum-exp (B, H, T); backward recomputes each score tile from them. Dropout masks are a hash of
// (seed, b, h, i, j), so backward regenerates them instead of storing them. impl=naive materialises the
// full matrices (the reference the tiled path is tested against). Step keeps a KV cache.
//
// The same kernel, restricted by an AttentionPattern, is registered twice more: `local` (sliding window of
// w keys plus n_global prefix tokens, O(T * w)) and `sparse` (BigBird block sparsity, O(T * keys per block)).
// Key tiles with no allowed pair are skipped, tiles the pattern fully allows are not masked. Decoding scores only
// the allowed keys; local attention's KV cache is a ring of its prefix and window (constant time and memory).
#include <algorithm>
#include <cmath>
#include <limits>

#include "mixers/attention_pattern.h"
#include "mixers/head_projections.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/ops/rng.h"
#include "mixers/ops/small_gemm.h"
#include "mixers/positional.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct SoftmaxOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  float dropout = 0.0f;
  float rope_base = 10000.0f;
  int tile = 64;
  std::string impl = "tiled";
  int t5_buckets = 32;
  int t5_max_distance = 128;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "attention heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Float("dropout", dropout, "attention-probability dropout during training", 0.0f, 0.9f);
    v.Float("rope-base", rope_base, "RoPE base (used when --pos rope)", 1.0f, 1e9f);
    v.Int("tile", tile, "query/key tile size of the online softmax", 1, 4096);
    v.Choice("impl", impl, "tiled online softmax, or the naive T x T reference", {"tiled", "naive"});
    v.Int("t5-buckets", t5_buckets,
          "T5 relative bias (--pos t5): distance buckets per head, half exact, half log-spaced", 2, 1024);
    v.Int("t5-max-distance", t5_max_distance,
          "T5 relative bias: distances from this on share the last bucket (must exceed t5-buckets / 2)", 2, 1 << 24);
  }
};

struct LocalOptions : SoftmaxOptions {
  int window = 64;
  int n_global = 0;
  // Half-window tiles: a query tile then scores 3 tiles of 32 keys (96) instead of 2 of 64 (128), ~5% faster training
  // at T = 2048 (bench/train_throughput.sh).
  LocalOptions() { tile = 32; }
  void Visit(OptionVisitor& v) override {
    SoftmaxOptions::Visit(v);
    v.Int("window", window, "keys each query sees: itself and the window-1 before it", 1, 1 << 24);
    v.Int("n-global", n_global, "leading tokens every query also attends to (Longformer-style)", 0, 1 << 24);
  }
};

struct SparseOptions : SoftmaxOptions {
  // Tiles of one block: a random key block then costs its 16 keys, not a 64-key tile (12% faster at d_model 256, T
  // 1024).
  SparseOptions() { tile = 16; }
  int block = 16;
  int window_blocks = 1;
  int global_blocks = 1;
  int random_blocks = 1;
  int seed = 0;
  void Visit(OptionVisitor& v) override {
    SoftmaxOptions::Visit(v);
    v.Int("block", block, "tokens per block", 1, 1 << 16);
    v.Int("window-blocks", window_blocks, "previous blocks each query block sees besides its own", 0, 1 << 16);
    v.Int("global-blocks", global_blocks, "leading blocks every query attends to", 0, 1 << 16);
    v.Int("random-blocks", random_blocks, "random earlier blocks per query block", 0, 1 << 16);
    v.Int("seed", seed, "seed of the random blocks", 0, 1 << 30);
  }
};

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Dropout keep-scale for one attention weight: 0 or 1/(1-p), a pure function of its indices.
struct DropoutMask {
  float p = 0;
  uint64_t seed = 0;
  int64_t bh_offset = 0;  // first_sequence * H: bh counts (sequence, head) pairs across the whole batch
  bool active() const { return p > 0; }
  float operator()(int64_t bh, int64_t i, int64_t j) const {
    const uint64_t h = SplitMix64(
        seed ^ SplitMix64(uint64_t(bh + bh_offset) * 0x100000001b3ULL ^ SplitMix64(uint64_t(i) << 32 | uint64_t(j))));
    const float u = float(h >> 40) * (1.0f / 16777216.0f);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
  }
};

struct AttentionContext : MixerContext {
  int B = 0, T = 0;
  Buffer x, q, k, v, o, lse;  // x (B,T,D); q,k,v,o (B,T,HD); lse (B,H,T)
  std::vector<int32_t> positions;
  Buffer dq, dk, dv, dtmp;
  Buffer dbias_parts;  // t5: (B, H, buckets) gradient of the bias table per sequence
  DropoutMask dropout;
};

// The T5 bias table follows the four projections.
enum AttentionParam { kT5Bias = kQkvoEnd };

// Keys and values per sequence, by slot (AttentionPattern::CacheSlot of the key), in pages of kPage slots: the cache
// grows without ever copying what it holds (a doubling vector copied the whole cache at every power of two).
struct KVCache : CopyableState<KVCache> {
  static constexpr int64_t kPage = 256;
  std::vector<std::vector<Buffer>> k, v;  // per sequence, per page: (kPage, HD)
  std::vector<std::vector<int32_t>> pos;  // per sequence, per slot
  std::vector<int64_t> length;            // per sequence: tokens seen
  float* Key(int b, int64_t slot, int64_t HD) { return k[b][slot / kPage].data() + (slot % kPage) * HD; }
  float* Value(int b, int64_t slot, int64_t HD) { return v[b][slot / kPage].data() + (slot % kPage) * HD; }
};

class SoftmaxAttention : public SequenceMixer<AttentionContext, KVCache> {
 public:
  SoftmaxAttention(const MixerDims& dims, const SoftmaxOptions& o, AttentionPattern pattern = {})
      : D_(dims.d_model), H_(o.n_heads), opts_(o), pos_(dims.pos), dims_(dims), pattern_(pattern) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, o.d_head);
    if (pos_ == "rope" && dh_ % 2 != 0)
      throw UsageError(dims.name + ": RoPE needs an even d-head, got " + std::to_string(dh_));
    HD_ = H_ * dh_;
    slopes_ = AlibiSlopes(H_);
    rope_ = pos_ == "rope";
    alibi_ = pos_ == "alibi";
    t5_ = pos_ == "t5";
    naive_ = o.impl == "naive";
    if (t5_) bucket_of_distance_ = T5Buckets(dims.name, o.t5_buckets, o.t5_max_distance);
  }

  std::vector<ParamSpec> Params() const override {
    auto p = QkvoParams(dims_, H_, HD_);
    if (t5_) p.push_back({"t5_bias", {H_, opts_.t5_buckets}, Init::kNormal, InputStd(dims_, D_), false});
    return p;
  }

  void Mix(const float* x, const int32_t* positions, int B, int T, float* y, AttentionContext& c,
           const ForwardMode& mode) override {
    c.B = B;
    c.T = T;
    const int64_t N = int64_t(B) * T;
    c.x.assign(x, x + N * D_);
    c.positions.assign(positions, positions + N);
    c.q.resize(N * HD_);
    c.k.resize(N * HD_);
    c.v.resize(N * HD_);
    c.o.resize(N * HD_);
    c.lse.resize(int64_t(B) * H_ * T);
    c.dropout = DropoutMask{mode.training ? opts_.dropout : 0.0f, mode.dropout_seed, mode.first_sequence * H_};
    Project(x, positions, N, c.q.data(), c.k.data(), c.v.data());
    pattern_.Prepare(T);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      if (naive_) NaiveHeadForward(c, bh);
      else TiledHeadForward(c, bh);
    }
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(AttentionContext& c, const float* dy, float* dx) override {
    const int64_t N = int64_t(c.B) * c.T;
    c.dtmp.resize(N * HD_);  // d o
    c.dq.assign(N * HD_, 0.0f);
    c.dk.assign(N * HD_, 0.0f);
    c.dv.assign(N * HD_, 0.0f);
    LinearBackward(c.o.data(), P(kWo), dy, c.dtmp.data(), G(kWo), N, HD_, D_);
    if (t5_) c.dbias_parts.assign(int64_t(c.B) * H_ * opts_.t5_buckets, 0.0f);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(c.B) * H_; ++bh) {
      if (naive_) NaiveHeadBackward(c, bh);
      else TiledHeadBackward(c, bh);
    }
    if (t5_)  // per (sequence, head) partial sums, added in a fixed order
      for (int64_t bh = 0; bh < int64_t(c.B) * H_; ++bh)
        for (int k = 0; k < opts_.t5_buckets; ++k)
          G(kT5Bias)[(bh % H_) * opts_.t5_buckets + k] += c.dbias_parts[bh * opts_.t5_buckets + k];
    if (rope_) {
      ApplyRope(c.dq.data(), c.positions.data(), N, H_, dh_, opts_.rope_base, true);
      ApplyRope(c.dk.data(), c.positions.data(), N, H_, dh_, opts_.rope_base, true);
    }
    LinearBackward(c.x.data(), P(kWq), c.dq.data(), dx, G(kWq), N, D_, HD_);
    LinearBackward(c.x.data(), P(kWk), c.dk.data(), dx, G(kWk), N, D_, HD_, true);
    LinearBackward(c.x.data(), P(kWv), c.dv.data(), dx, G(kWv), N, D_, HD_, true);
  }

  void InitState(KVCache& s, int B) const override {
    s.k.resize(B);
    s.v.resize(B);
    s.pos.resize(B);
    s.length.assign(B, 0);
  }

  void MixStep(const float* x, const int32_t* positions, float* y, KVCache& s) override {
    const int B = int(s.k.size());
    Buffer q(int64_t(B) * HD_), k(q.size()), v(q.size()), o(q.size());
    Project(x, positions, B, q.data(), k.data(), v.data());
    const float scale = 1.0f / std::sqrt(float(dh_));
    std::vector<int64_t> keys;
    for (int b = 0; b < B; ++b) {
      const int64_t t = s.length[b]++, slot = pattern_.CacheSlot(t);
      if (slot == int64_t(s.pos[b].size())) {  // a new slot; else a local ring slot whose key left the window
        if (slot % KVCache::kPage == 0) {
          s.k[b].emplace_back(KVCache::kPage * HD_);
          s.v[b].emplace_back(KVCache::kPage * HD_);
        }
        s.pos[b].push_back(0);
      }
      std::copy_n(k.begin() + b * HD_, HD_, s.Key(b, slot, HD_));
      std::copy_n(v.begin() + b * HD_, HD_, s.Value(b, slot, HD_));
      s.pos[b][slot] = positions[b];
      pattern_.Prepare(t + 1);
      pattern_.AllowedKeys(t, keys);  // local and sparse attention score only their window / blocks
      for (auto& j : keys) j = pattern_.CacheSlot(j);
      const int64_t n = int64_t(keys.size());
      for (int h = 0; h < H_; ++h) {
        Eigen::Map<const Eigen::RowVectorXf> qh(q.data() + b * HD_ + h * dh_, dh_);
        Eigen::RowVectorXf scores(n);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t j = keys[i];
          scores[i] = qh.dot(Eigen::Map<const Eigen::RowVectorXf>(s.Key(b, j, HD_) + h * dh_, dh_)) * scale;
          scores[i] += Bias(h, positions[b], s.pos[b][j]);
        }
        const float m = scores.maxCoeff();
        Eigen::RowVectorXf p = (scores.array() - m).exp();
        p /= p.sum();
        Eigen::Map<Eigen::RowVectorXf> oh(o.data() + b * HD_ + h * dh_, dh_);
        oh.setZero();
        for (int64_t i = 0; i < n; ++i)
          oh += p[i] * Eigen::Map<const Eigen::RowVectorXf>(s.Value(b, keys[i], HD_) + h * dh_, dh_);
      }
    }
    LinearForward(o.data(), P(kWo), y, B, HD_, D_);
  }

  std::vector<RowMatrix> Mixing(const float* x, const int32_t* positions, int T) override {
    Buffer q(int64_t(T) * HD_), k(q.size()), v(q.size());
    Project(x, positions, T, q.data(), k.data(), v.data());
    pattern_.Prepare(T);
    std::vector<RowMatrix> maps;
    for (int h = 0; h < H_; ++h) maps.push_back(Probabilities(q.data(), k.data(), positions, T, h));
    return maps;
  }

  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, HD_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    if (pattern_.KeysKept() < 0) d.state_floats_per_token = 2 * HD_;
    else d.state_floats_fixed = 2 * HD_ * std::min<int64_t>(T, pattern_.KeysKept());  // the ring fills up to T keys
    d.flops_per_token = 2.0 * 4 * D_ * HD_ + 2.0 * 2 * HD_ * double(pattern_.KeysPerQuery(T));
    return d;
  }

 private:
  // q, k, v (N, HD) = x (N, D) times Wq, Wk, Wv; RoPE on q and k.
  void Project(const float* x, const int32_t* positions, int64_t N, float* q, float* k, float* v) const {
    LinearForward(x, P(kWq), q, N, D_, HD_);
    LinearForward(x, P(kWk), k, N, D_, HD_);
    LinearForward(x, P(kWv), v, N, D_, HD_);
    if (rope_) {
      ApplyRope(q, positions, N, H_, dh_, opts_.rope_base, false);
      ApplyRope(k, positions, N, H_, dh_, opts_.rope_base, false);
    }
  }

  // The score bias of query position pos_i against key position pos_j <= pos_i in head h.
  float Bias(int h, int32_t pos_i, int32_t pos_j) const {
    if (alibi_) return -slopes_[h] * float(pos_i - pos_j);
    if (t5_) return P(kT5Bias)[h * opts_.t5_buckets + Bucket(pos_i - pos_j)];
    return 0.0f;
  }
  // Negative distances (a key after the query) only occur for masked scores, whose bias is never used.
  int Bucket(int64_t distance) const {
    return bucket_of_distance_[std::clamp<int64_t>(distance, 0, int64_t(bucket_of_distance_.size()) - 1)];
  }

  // T5's causal bucketing of a distance n = i - j >= 0: n itself below half the buckets (max_exact), then
  // max_exact + log(n / max_exact) / log(max_distance / max_exact) * (buckets - max_exact), truncated and capped at the
  // last bucket. Tabulated up to max_distance, from where every distance is in the last bucket.
  static std::vector<int> T5Buckets(const std::string& mixer, int buckets, int max_distance) {
    const int max_exact = buckets / 2;
    if (max_distance <= max_exact)
      throw UsageError(mixer + ": t5-max-distance " + std::to_string(max_distance) +
                       " must exceed t5-buckets / 2 = " + std::to_string(max_exact));
    std::vector<int> table(max_distance + 1);
    for (int n = 0; n <= max_distance; ++n) {
      if (n < max_exact) {
        table[n] = n;
        continue;
      }
      const double scaled =
          std::log(double(n) / max_exact) / std::log(double(max_distance) / max_exact) * double(buckets - max_exact);
      table[n] = std::min(max_exact + int(scaled), buckets - 1);
    }
    return table;
  }

  // Scaled, biased, causally masked scores of query rows [i0, i0+ni) against keys [j0, j0+nj) of one (b, h).
  // On a diagonal tile (i0 == j0) only the lower triangle is computed: every pattern is causal, so MaskRow sets the
  // rest to -inf.
  void Scores(const AttentionContext& c, int64_t bh, int64_t i0, int64_t ni, int64_t j0, int64_t nj,
              RowMatrix& S) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T;
    thread_local RowMatrix kt;
    kt = AsStrided(c.k.data() + (base + j0) * HD_ + h * dh_, nj, dh_, HD_).transpose() * (1.0f / std::sqrt(float(dh_)));
    S.resize(ni, nj);
    SmallGemm(ni, nj, dh_, c.q.data() + (base + i0) * HD_ + h * dh_, HD_, 1, kt.data(), nj, S.data(), nj, false,
              i0 == j0 ? Band::kLowerC : Band::kFull);
    if (!pattern_.TileFull(i0, ni, j0, nj))
      for (int64_t i = 0; i < ni; ++i) pattern_.MaskRow(i0 + i, j0, nj, S.row(i).data());
    if (!alibi_ && !t5_) return;
    const int32_t* pos = c.positions.data() + base;
    for (int64_t i = 0; i < ni; ++i)
      for (int64_t j = 0; j < nj; ++j) S(i, j) += Bias(int(h), pos[i0 + i], pos[j0 + j]);  // -inf stays -inf
  }

  void ApplyDropout(const AttentionContext& c, int64_t bh, int64_t i0, int64_t j0, RowMatrix& P) const {
    if (!c.dropout.active()) return;
    for (int64_t i = 0; i < P.rows(); ++i)
      for (int64_t j = 0; j < P.cols(); ++j) P(i, j) *= c.dropout(bh, i0 + i, j0 + j);
  }

  // P itself without dropout, else P with dropout applied, in `scratch`.
  const RowMatrix& Dropped(const AttentionContext& c, int64_t bh, int64_t i0, int64_t j0, const RowMatrix& P,
                           RowMatrix& scratch) const {
    if (!c.dropout.active()) return P;
    scratch = P;
    ApplyDropout(c, bh, i0, j0, scratch);
    return scratch;
  }

  void TiledHeadForward(AttentionContext& c, int64_t bh) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T, T = c.T, tile = opts_.tile;
    thread_local RowMatrix S, Pd, acc;
    Eigen::VectorXf m, l;
    for (int64_t i0 = 0; i0 < T; i0 += tile) {
      const int64_t ni = std::min(tile, T - i0);
      m.setConstant(ni, kNegInf);
      l.setZero(ni);
      acc.setZero(ni, dh_);
      for (int64_t j0 = 0; j0 < i0 + ni; j0 += tile) {
        const int64_t nj = std::min(tile, T - j0);
        if (!pattern_.TileActive(i0, ni, j0, nj)) continue;
        Scores(c, bh, i0, ni, j0, nj, S);
        for (int64_t i = 0; i < ni; ++i) {
          const float m_new = std::max(m[i], S.row(i).maxCoeff());
          if (m_new == kNegInf) {  // whole row masked in this tile
            S.row(i).setZero();
            continue;
          }
          const float correction = std::exp(m[i] - m_new);
          l[i] *= correction;
          acc.row(i) *= correction;
          S.row(i) = (S.row(i).array() - m_new).exp();
          l[i] += S.row(i).sum();
          m[i] = m_new;
        }
        SmallGemm(ni, dh_, nj, Dropped(c, bh, i0, j0, S, Pd).data(), nj, 1, c.v.data() + (base + j0) * HD_ + h * dh_,
                  HD_, acc.data(), dh_, true, i0 == j0 ? Band::kLowerA : Band::kFull);
      }
      auto O = AsStrided(c.o.data() + (base + i0) * HD_ + h * dh_, ni, dh_, HD_);
      for (int64_t i = 0; i < ni; ++i) {
        O.row(i) = acc.row(i) / l[i];
        c.lse[bh * T + i0 + i] = m[i] + std::log(l[i]);
      }
    }
  }

  void TiledHeadBackward(AttentionContext& c, int64_t bh) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T, T = c.T, tile = opts_.tile;
    const float scale = 1.0f / std::sqrt(float(dh_));
    auto at = [&](Buffer& buf, int64_t t0) { return buf.data() + (base + t0) * HD_ + h * dh_; };  // row t0 of head h
    thread_local RowMatrix S, Pd, dP, vt;
    Eigen::VectorXf Dvec(T);
    {
      auto dO = AsStrided(at(c.dtmp, 0), T, dh_, HD_);
      auto O = AsStrided(at(c.o, 0), T, dh_, HD_);
      for (int64_t t = 0; t < T; ++t) Dvec[t] = dO.row(t).dot(O.row(t));
    }
    for (int64_t i0 = 0; i0 < T; i0 += tile) {
      const int64_t ni = std::min(tile, T - i0);
      for (int64_t j0 = 0; j0 < i0 + ni; j0 += tile) {
        const int64_t nj = std::min(tile, T - j0);
        if (!pattern_.TileActive(i0, ni, j0, nj)) continue;
        Scores(c, bh, i0, ni, j0, nj, S);
        for (int64_t i = 0; i < ni; ++i) S.row(i) = (S.row(i).array() - c.lse[bh * T + i0 + i]).exp();
        // On a diagonal tile P is lower triangular (up to Eigen's exp floor of 3e-39 for masked scores).
        const Band lower = i0 == j0 ? Band::kLowerA : Band::kFull, upper = i0 == j0 ? Band::kUpperA : Band::kFull;
        const float *dO = at(c.dtmp, i0), *q = at(c.q, i0), *k = at(c.k, j0);
        SmallGemm(nj, dh_, ni, Dropped(c, bh, i0, j0, S, Pd).data(), 1, nj, dO, HD_, at(c.dv, j0), HD_, true, upper);
        vt = AsStrided(at(c.v, j0), nj, dh_, HD_).transpose();
        dP.resize(ni, nj);
        SmallGemm(ni, nj, dh_, dO, HD_, 1, vt.data(), nj, dP.data(), nj, false);
        ApplyDropout(c, bh, i0, j0, dP);
        for (int64_t i = 0; i < ni; ++i)
          S.row(i).array() *= (dP.row(i).array() - Dvec[i0 + i]) * scale;  // dS / sqrt(dh)
        if (t5_) AddBiasGradient(c, bh, i0, j0, S, 1.0f / scale);
        SmallGemm(ni, dh_, nj, S.data(), nj, 1, k, HD_, at(c.dq, i0), HD_, true, lower);
        SmallGemm(nj, dh_, ni, S.data(), 1, nj, q, HD_, at(c.dk, j0), HD_, true, upper);
      }
    }
  }

  // The T5 bias is added to every allowed score: its gradient is the sum of dS (= G * factor) over the pairs of each
  // bucket; masked pairs have P = 0, hence dS = 0.
  void AddBiasGradient(AttentionContext& c, int64_t bh, int64_t i0, int64_t j0, const RowMatrix& G,
                       float factor) const {
    const int32_t* pos = c.positions.data() + (bh / H_) * c.T;
    float* parts = c.dbias_parts.data() + bh * opts_.t5_buckets;
    for (int64_t i = 0; i < G.rows(); ++i)
      for (int64_t j = 0; j < G.cols() && j0 + j <= i0 + i; ++j)
        parts[Bucket(pos[i0 + i] - pos[j0 + j])] += G(i, j) * factor;
  }

  // Full (T, T) attention probabilities of head h for one sequence (before dropout).
  RowMatrix Probabilities(const float* q, const float* k, const int32_t* pos, int64_t T, int64_t h) const {
    auto Q = AsStrided(q + h * dh_, T, dh_, HD_);
    auto K = AsStrided(k + h * dh_, T, dh_, HD_);
    RowMatrix S = (Q * K.transpose()) / std::sqrt(float(dh_));
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j)
        S(i, j) = !pattern_.Allows(i, j) ? kNegInf : S(i, j) + Bias(int(h), pos[i], pos[j]);
    RowMatrix Pm(T, T);
    SoftmaxForward(S.data(), Pm.data(), T, T);
    return Pm;
  }

  RowMatrix DroppedProbabilities(const AttentionContext& c, int64_t bh, RowMatrix* probs) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T;
    *probs = Probabilities(c.q.data() + base * HD_, c.k.data() + base * HD_, c.positions.data() + base, c.T, h);
    RowMatrix Pd = *probs;
    ApplyDropout(c, bh, 0, 0, Pd);
    return Pd;
  }

  void NaiveHeadForward(AttentionContext& c, int64_t bh) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T, T = c.T;
    RowMatrix Pm;
    RowMatrix Pd = DroppedProbabilities(c, bh, &Pm);
    AsStrided(c.o.data() + base * HD_ + h * dh_, T, dh_, HD_) =
        Pd * AsStrided(c.v.data() + base * HD_ + h * dh_, T, dh_, HD_);
  }

  void NaiveHeadBackward(AttentionContext& c, int64_t bh) const {
    const int64_t b = bh / H_, h = bh % H_, base = b * c.T, T = c.T;
    auto at = [&](Buffer& buf) { return AsStrided(buf.data() + base * HD_ + h * dh_, T, dh_, HD_); };
    RowMatrix Pm;
    RowMatrix Pd = DroppedProbabilities(c, bh, &Pm);
    at(c.dv) = Pd.transpose() * at(c.dtmp);
    RowMatrix dP = at(c.dtmp) * at(c.v).transpose();
    ApplyDropout(c, bh, 0, 0, dP);
    RowMatrix dS(T, T);
    SoftmaxBackward(Pm.data(), dP.data(), dS.data(), T, T);
    if (t5_) AddBiasGradient(c, bh, 0, 0, dS, 1.0f);
    const float scale = 1.0f / std::sqrt(float(dh_));
    at(c.dq) = scale * dS * at(c.k);
    at(c.dk) = scale * dS.transpose() * at(c.q);
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  SoftmaxOptions opts_;
  std::string pos_;
  bool rope_ = false, alibi_ = false, t5_ = false, naive_ = false;  // decoded once, not compared in the tile loops
  std::vector<int> bucket_of_distance_;                             // t5: distance -> bucket, up to t5-max-distance
  MixerDims dims_;
  AttentionPattern pattern_;
  Buffer slopes_;
};

class LocalAttention : public SoftmaxAttention {
 public:
  LocalAttention(const MixerDims& dims, const LocalOptions& o) : SoftmaxAttention(dims, o, Pattern(o)) {}

 private:
  static AttentionPattern Pattern(const LocalOptions& o) {
    AttentionPattern p;
    p.kind = AttentionPattern::Kind::kLocal;
    p.window = o.window;
    p.n_global = o.n_global;
    return p;
  }
};

class SparseAttention : public SoftmaxAttention {
 public:
  SparseAttention(const MixerDims& dims, const SparseOptions& o) : SoftmaxAttention(dims, o, Pattern(o)) {}

 private:
  static AttentionPattern Pattern(const SparseOptions& o) {
    AttentionPattern p;
    p.kind = AttentionPattern::Kind::kBlockSparse;
    p.block = o.block;
    p.window_blocks = o.window_blocks;
    p.global_blocks = o.global_blocks;
    p.random_blocks = o.random_blocks;
    p.seed = uint64_t(o.seed);
    return p;
  }
};

}  // namespace

MIXLAB_REGISTER_MIXER(
    Entry<LocalAttention, LocalOptions>("local", MixerKind::kSequence,
                                        "sliding-window causal attention (+ global prefix tokens), tiled, O(T*w)",
                                        {"rope", "alibi", "t5"})
        .Tests({.extra_cases = {
                    {"local_w3_global2", "rope", {{"window", "3"}, {"n-global", "2"}, {"tile", "4"}}},
                    {"local_w4_naive", "alibi", {{"window", "4"}, {"impl", "naive"}}},
                }}));

MIXLAB_REGISTER_MIXER(
    Entry<SparseAttention, SparseOptions>("sparse", MixerKind::kSequence,
                                          "BigBird block-sparse attention: local, global and seeded random blocks",
                                          {"rope", "alibi", "t5"})
        .Tests({.extra_cases = {
                    {"sparse_block2", "none", {{"block", "2"}, {"random-blocks", "2"}, {"tile", "3"}}},
                    {"sparse_block2_naive", "rope", {{"block", "2"}, {"impl", "naive"}}},
                }}));

MIXLAB_REGISTER_MIXER(
    Entry<SoftmaxAttention, SoftmaxOptions>("softmax", MixerKind::kSequence,
                                            "multi-head causal softmax attention, tiled online softmax",
                                            {"rope", "alibi", "t5"})
        .Tests({.extra_cases = {
                    {"softmax_naive", "rope", {{"impl", "naive"}}},
                    {"softmax_t5_naive", "t5", {{"impl", "naive"}, {"t5-buckets", "6"}, {"t5-max-distance", "9"}}},
                    {"softmax_t5_tile4", "t5", {{"tile", "4"}, {"t5-buckets", "6"}, {"t5-max-distance", "9"}}},
                    {"softmax_tile5_dhead12", "alibi", {{"tile", "5"}, {"d-head", "12"}}},
                    {"softmax_dropout", "none", {{"dropout", "0.2"}}, true},
                    {"softmax_dropout_naive", "none", {{"dropout", "0.2"}, {"impl", "naive"}}, true},
                }}));

}  // namespace mixlab
