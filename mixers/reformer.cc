// Reformer LSH attention (Kitaev et al. 2020), causal. Per head, shared query-key projection:
//
//   q = x Wq, k_j = q_j / |q_j| (shared QK), v = x Wv;  s_ij = q_i . k_j / sqrt(dh)
//   round r of n-hashes: bucket_r(j) = argmax [q_j R_r ; -q_j R_r], R_r a seeded random rotation (dh, n-buckets / 2)
//   keys of query i in round r: the earlier positions j <= i of its bucket, at most 2 * chunk of them (the most
//   recent: the chunk of sorted positions holding i and the chunk before it); i itself only when nothing else is there
//   o_i = sum_r w_ir softmax_r(s_i.) v,  w_ir = softmax over rounds of the rounds' log-sum-exps
//
// The rounds' combination is one softmax over the multiset union of the rounds' keys: p_ij = m_ij e^{s_ij} / Z_i with
// m_ij the number of rounds in which i sees j, which is what this code computes. Causality is exact: the keys of a
// query depend only on earlier positions' buckets. (Reformer's implementation sorts the whole sequence and attends
// within fixed chunks of the sorted order, so a query's keys there depend on later tokens' buckets: not causal, and a
// decoding step could not reproduce it. The per-bucket window of 2 * chunk keys keeps its cost.)
// Cost O(T * n-hashes * 2 chunk * dh) per head plus the hashing, O(T * n-hashes * n-buckets * dh). Training runs
// bucket by bucket in tiles (bucket_window_attention.h: each round's members gathered, blocks of queries against their
// band of keys in small GEMMs, the rounds combined by their log-sum-exps). Backward goes through the scores (the
// hashing is discrete; bucket assignments are fixed, and RoutingSignature exposes them). The rotations are redrawn
// every `redraw` training steps (0: never) from the seed, like Performer's features. Saves x, q, k, v, o, the row
// log-normalisers and the buckets. Step hashes the new query and scores the cached keys of its buckets, one key list
// (key_list_attention.h). Mixing: p_ij, the exact sparse attention of the combined rounds.
#include <algorithm>
#include <cmath>
#include <limits>

#include "mixers/bucket_window_attention.h"
#include "mixers/head_projections.h"
#include "mixers/key_list_attention.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct ReformerOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  int n_hashes = 2;
  int n_buckets = 8;
  int chunk = 32;
  int redraw = 0;
  int seed = 0;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Int("n-hashes", n_hashes, "hashing rounds", 1, 64);
    v.Int("n-buckets", n_buckets, "buckets per round (even: a rotation gives n-buckets / 2 signed directions)", 2,
          1 << 16);
    v.Int("chunk", chunk, "a query sees at most 2 * chunk earlier keys of its bucket per round", 1, 1 << 20);
    v.Int("redraw", redraw, "redraw the random rotations every N training steps; 0 = never", 0, 1 << 30);
    v.Int("seed", seed, "seed of the random rotations", 0, 1 << 30);
  }
};

enum Param { kWq, kWv, kWo };

struct ReformerContext : KeyListContext {
  std::vector<int32_t> buckets;  // (B, H, rounds, T)
};

struct ReformerState : CopyableState<ReformerState> {
  int B = 0;
  int64_t length = 0;
  std::vector<Buffer> k, v;  // per sequence: (length, HD)
  // per ((sequence * H + head) * rounds + round) and bucket: the positions hashed there, in order
  std::vector<std::vector<std::vector<int32_t>>> bucketed;
};

class Reformer : public SequenceMixer<ReformerContext, ReformerState> {
 public:
  Reformer(const MixerDims& dims, const ReformerOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    dh_ = ResolveHeadWidth(dims.name, D_, H_, o.d_head);
    if (o.n_buckets % 2 != 0)
      throw UsageError(dims.name + ": n-buckets " + std::to_string(o.n_buckets) + " must be even");
    HD_ = H_ * dh_;
    rotations_ = DrawRotations(0);
  }

  std::vector<ParamSpec> Params() const override {
    return {{"wq", {D_, HD_}, Init::kNormal, InputStd(dims_, D_)},
            {"wv", {D_, HD_}, Init::kNormal, InputStd(dims_, D_)},
            {"wo", {HD_, D_}, Init::kNormal, ResidualOutputStd(dims_, HD_), true, ParamRole::kHeadOutput, H_}};
  }
  void RestoreTrainedSteps(int64_t steps) override { UseDrawOfStep(std::max<int64_t>(steps - 1, 0)); }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, ReformerContext& c,
           const ForwardMode& mode) override {
    if (mode.training) UseDrawOfStep(mode.step);
    Project(x, B, T, c);
    const int64_t N = int64_t(B) * T;
    c.o.resize(N * HD_);
    c.logz.resize(int64_t(B) * H_ * T);
    c.buckets.resize(int64_t(B) * H_ * o_.n_hashes * T);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_, head = b * T * HD_ + h * dh_;
      int32_t* buckets = c.buckets.data() + bh * o_.n_hashes * T;
      for (int r = 0; r < o_.n_hashes; ++r)
        for (int t = 0; t < T; ++t) buckets[r * T + t] = Hash(c.q.data() + head + t * HD_, int(h), r);
      BucketWindowForward(Shape(buckets, T), c.q.data() + head, c.k.data() + head, c.v.data() + head, c.o.data() + head,
                          c.logz.data() + bh * T);
    }
    signature_.assign(reinterpret_cast<const char*>(c.buckets.data()), c.buckets.size() * sizeof(int32_t));
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(ReformerContext& c, const float* dy, float* dx) override {
    const int64_t T = c.T;
    KeyListBackward(c, dy, dx, P(kWq), P(kWv), P(kWo), G(kWq), G(kWv), G(kWo), D_, H_, dh_, [&](int64_t bh) {
      const int64_t head = (bh / H_) * T * HD_ + (bh % H_) * dh_;
      BucketWindowBackward(Shape(c.buckets.data() + bh * o_.n_hashes * T, int(T)), c.q.data() + head, c.k.data() + head,
                           c.v.data() + head, c.o.data() + head, c.dtmp.data() + head, c.logz.data() + bh * T,
                           c.dq.data() + head, c.dk.data() + head, c.dv.data() + head);
    });
  }

  std::string RoutingSignature() const override { return signature_; }

  void InitState(ReformerState& s, int B) const override {
    s.B = B;
    s.length = 0;
    s.k.assign(B, Buffer());
    s.v.assign(B, Buffer());
    s.bucketed.assign(int64_t(B) * H_ * o_.n_hashes, std::vector<std::vector<int32_t>>(o_.n_buckets));
  }

  void MixStep(const float* x, const int32_t*, float* y, ReformerState& s) override {
    ReformerContext c;
    Project(x, s.B, 1, c);
    const int64_t t = s.length++;
    Buffer o(int64_t(s.B) * HD_);
    const float scale = 1.0f / std::sqrt(float(dh_));
    for (int b = 0; b < s.B; ++b) {
      s.k[b].insert(s.k[b].end(), c.k.begin() + b * HD_, c.k.begin() + (b + 1) * HD_);
      s.v[b].insert(s.v[b].end(), c.v.begin() + b * HD_, c.v.begin() + (b + 1) * HD_);
      for (int h = 0; h < H_; ++h) {
        const float* q = c.q.data() + b * HD_ + h * dh_;
        std::vector<int32_t> found;  // keys, once per round that sees them
        for (int r = 0; r < o_.n_hashes; ++r) {
          auto& bucket = s.bucketed[(int64_t(b) * H_ + h) * o_.n_hashes + r][Hash(q, h, r)];
          bucket.push_back(int32_t(t));
          AddRoundKeys(bucket, int32_t(t), found);
        }
        const KeyList list = CountKeys(found);
        AttendKeyList(q, s.k[b].data() + h * dh_, s.v[b].data() + h * dh_, HD_, dh_, scale, list,
                      o.data() + b * HD_ + h * dh_);
      }
    }
    LinearForward(o.data(), P(kWo), y, s.B, HD_, D_);
  }

  // p_ij of each head for one sequence.
  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    ReformerContext c;
    Mix(x, nullptr, 1, T, Buffer(int64_t(T) * D_).data(), c, ForwardMode{});
    for (int h = 0; h < H_; ++h) c.lists.push_back(KeyLists(c.buckets.data() + int64_t(h) * o_.n_hashes * T, T));
    return KeyListMaps(c.q.data(), c.k.data(), c.lists, c.logz.data(), T, H_, dh_);
  }

  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, HD_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_per_token = 2 * HD_;
    const double keys = std::min<double>(T, 2.0 * o_.chunk * o_.n_hashes);
    d.flops_per_token = 2.0 * 3 * D_ * HD_ + 2.0 * 2 * HD_ * keys + 2.0 * HD_ * o_.n_hashes * o_.n_buckets / 2;
    return d;
  }

 private:
  // q, k = q / |q| and v of B sequences of T tokens.
  void Project(const float* x, int B, int T, ReformerContext& c) const {
    KeyListProject(x, P(kWq), P(kWv), B, T, D_, H_, dh_, c);
  }

  // argmax over [q R ; -q R] for head h, round r.
  int Hash(const float* q, int h, int r) const {
    const int half = o_.n_buckets / 2;
    const RowMatrix& R = rotations_[h * o_.n_hashes + r];
    int best = 0;
    float best_value = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < half; ++j) {
      float p = 0;
      for (int d = 0; d < dh_; ++d) p += q[d] * R(d, j);
      if (p > best_value) best_value = p, best = j;
      if (-p > best_value) best_value = -p, best = j + half;
    }
    return best;
  }

  // The distinct keys of `found` in increasing order, each with the number of times it occurs (sorts `found`).
  static KeyList CountKeys(std::vector<int32_t>& found) {
    std::sort(found.begin(), found.end());
    KeyList list;
    list.keys.reserve(found.size()), list.multiplicity.reserve(found.size());
    for (size_t n = 0; n < found.size(); ++n) {
      if (n > 0 && found[n] == found[n - 1]) ++list.multiplicity.back();
      else list.keys.push_back(found[n]), list.multiplicity.push_back(1);
    }
    return list;
  }

  // Round keys of the newest position t of `bucket` (positions in increasing order, t last): the 2 * chunk most
  // recent, itself excluded unless it is alone; appended to `found` (a key once per round that sees it).
  void AddRoundKeys(const std::vector<int32_t>& bucket, int32_t t, std::vector<int32_t>& found) const {
    const int64_t first = std::max<int64_t>(0, int64_t(bucket.size()) - 2 * o_.chunk);
    if (int64_t(bucket.size()) - first == 1) {
      found.push_back(t);
      return;
    }
    for (int64_t n = first; n < int64_t(bucket.size()); ++n)
      if (bucket[n] != t) found.push_back(bucket[n]);
  }

  std::vector<KeyList> KeyLists(const int32_t* buckets, int T) const {
    std::vector<KeyList> lists(T);
    std::vector<std::vector<std::vector<int32_t>>> members(o_.n_hashes,
                                                           std::vector<std::vector<int32_t>>(o_.n_buckets));
    std::vector<int32_t> found;  // the query's keys, once per round; sorted and counted into its list
    for (int t = 0; t < T; ++t) {
      found.clear();
      for (int r = 0; r < o_.n_hashes; ++r) {
        auto& bucket = members[r][buckets[r * T + t]];
        bucket.push_back(t);
        AddRoundKeys(bucket, t, found);
      }
      lists[t] = CountKeys(found);
    }
    return lists;
  }

  // One head's rows of (T, HD) and its buckets (rounds, T) for the tiled attention.
  BucketWindowShape Shape(const int32_t* buckets, int T) const {
    return {.T = T,
            .dh = dh_,
            .stride = HD_,
            .rounds = o_.n_hashes,
            .n_buckets = o_.n_buckets,
            .window = 2 * o_.chunk,
            .buckets = buckets};
  }

  void UseDrawOfStep(int64_t step) {
    if (o_.redraw <= 0) return;
    const int64_t draw = step / o_.redraw;
    if (draw != draw_) rotations_ = DrawRotations(draw_ = draw);
  }
  // One Gaussian (dh, n-buckets / 2) matrix per head and round, a pure function of (seed, layer, draw).
  std::vector<RowMatrix> DrawRotations(int64_t draw) const {
    Rng rng(uint64_t(o_.seed) * 1000003ULL + uint64_t(dims_.layer_index), uint64_t(draw) + 1);
    std::vector<RowMatrix> out;
    for (int i = 0; i < H_ * o_.n_hashes; ++i) {
      RowMatrix R(dh_, o_.n_buckets / 2);
      for (int64_t e = 0; e < R.size(); ++e) R.data()[e] = float(rng.Normal());
      out.push_back(std::move(R));
    }
    return out;
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  ReformerOptions o_;
  MixerDims dims_;
  std::vector<RowMatrix> rotations_;
  int64_t draw_ = 0;
  std::string signature_;
};

}  // namespace

// Small finite-difference steps keep every perturbation inside one hashing: the gradient tests assert the bucket
// assignments did not change (RoutingSignature). The 4-bucket, 3-round case uses rotation seed 3, whose hashes have no
// near-tie within the step at this test's inputs (seeds 1, 2, 4 and 5 flip one assignment, and the test says so).
MIXLAB_REGISTER_MIXER(
    Entry<Reformer, ReformerOptions>("reformer", MixerKind::kSequence,
                                     "Reformer LSH attention, causal: shared QK, hashing rounds, per-bucket windows")
        .Tests({.fd_eps = 1e-3f,
                .extra_cases = {
                    {"reformer_chunk1_hashes3",
                     "none",
                     {{"chunk", "1"}, {"n-hashes", "3"}, {"n-buckets", "4"}, {"seed", "3"}},
                     false,
                     2e-2,
                     1e-3f},
                    {"reformer_one_bucket",
                     "none",
                     {{"n-buckets", "2"}, {"n-hashes", "1"}, {"chunk", "64"}},
                     false,
                     2e-2,
                     1e-3f},
                }}));

}  // namespace mixlab
