// Routing Transformer attention (Roy et al. 2021), causal. Per head, shared query-key projection:
//
//   q = x Wq, k_j = q_j / |q_j|, v = x Wv;  s_ij = q_i . k_j / sqrt(dh)
//   local heads (the first `local-heads`): query i sees positions i - window + 1 .. i
//   routing heads: cluster(j) = argmax_c k_j . mu_c over `n-clusters` unit centroids; query i sees the `window` most
//   recent positions j <= i of its own cluster (itself included)
//   o_i = softmax over those keys of s_i. applied to v;  y = o Wo
//
// The centroids are online k-means, not gradient: after each training forward, for every cluster of every routing
// head, mu_c <- normalise(decay mu_c + (1 - decay) mean of the keys assigned to it in the batch); they are a kState
// parameter, so checkpoints and resumes carry them. Balance: the paper's balanced assignment gives each centroid its
// top-k nearest tokens of the whole sequence (k = T / n-clusters), which makes a query's keys depend on later tokens
// (not causal, and no decoding step could reproduce it); here each token goes to its nearest centroid and a query keeps
// at most `window` keys of its cluster, which bounds the cost the way balance does. Cost O(T * window * dh) per head
// plus O(T * n-clusters * dh) for the assignment. Backward goes through the scores with the assignment fixed
// (RoutingSignature). Saves x, q, k, v, o, log-normalisers and every query's keys. Step keeps a KV cache and
// per-cluster position lists. Mixing: the attention weights, exact.
#include <algorithm>
#include <cmath>

#include "mixers/head_projections.h"
#include "mixers/key_list_attention.h"
#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/rng.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct RoutingOptions : Options {
  int n_heads = 4;
  int d_head = 0;
  int local_heads = 2;
  int n_clusters = 4;
  int window = 32;
  float decay = 0.999f;
  void Visit(OptionVisitor& v) override {
    v.Int("n-heads", n_heads, "heads", 1, 1024);
    v.Int("d-head", d_head, "width of each head; 0 = d_model / n_heads", 0, 4096);
    v.Int("local-heads", local_heads, "heads attending a local window (the rest route by cluster); at most n-heads", 0,
          1024);
    v.Int("n-clusters", n_clusters, "k-means centroids per routing head", 1, 1 << 16);
    v.Int("window", window, "keys per query: the local window, or the most recent members of its cluster", 1, 1 << 24);
    v.Float("decay", decay, "k-means moving-average decay of the centroids (training forward only)", 0.0f, 1.0f);
  }
};

enum Param { kWq, kWv, kWo, kCentroids };

struct RoutingContext : KeyListContext {
  std::vector<int32_t> clusters;            // (B, H, T); -1 for local heads
};

struct RoutingState : CopyableState<RoutingState> {
  int B = 0;
  int64_t length = 0;
  std::vector<Buffer> k, v;                                // per sequence: (length, HD)
  std::vector<std::vector<std::vector<int32_t>>> members;  // per (sequence * H + head), per cluster: positions in order
};

class Routing : public SequenceMixer<RoutingContext, RoutingState> {
 public:
  Routing(const MixerDims& dims, const RoutingOptions& o) : D_(dims.d_model), H_(o.n_heads), o_(o), dims_(dims) {
    if (o.local_heads > o.n_heads)
      throw UsageError(dims.name + ": local-heads " + std::to_string(o.local_heads) + " exceeds n-heads " +
                       std::to_string(o.n_heads));
    dh_ = ResolveHeadWidth(dims.name, D_, H_, o.d_head);
    HD_ = H_ * dh_;
  }

  std::vector<ParamSpec> Params() const override {
    return {{"wq", {D_, HD_}, Init::kNormal, InputStd(dims_, D_)},
            {"wv", {D_, HD_}, Init::kNormal, InputStd(dims_, D_)},
            {"wo", {HD_, D_}, Init::kNormal, ResidualOutputStd(dims_, HD_), true, ParamRole::kHeadOutput, H_},
            {"centroids", {H_, o_.n_clusters, dh_}, Init::kCustom, 0, false, ParamRole::kState}};
  }
  // Random unit centroids.
  void InitCustomParams(uint64_t seed) override {
    Rng rng(seed, 97);
    float* mu = params_[kCentroids].value;
    for (int64_t c = 0; c < int64_t(H_) * o_.n_clusters; ++c) {
      Eigen::Map<Eigen::VectorXf> m(mu + c * dh_, dh_);
      for (int d = 0; d < dh_; ++d) m[d] = float(rng.Normal());
      m.normalize();
    }
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, RoutingContext& c,
           const ForwardMode& mode) override {
    Project(x, B, T, c);
    const int64_t N = int64_t(B) * T;
    c.o.resize(N * HD_);
    c.logz.resize(int64_t(B) * H_ * T);
    c.lists.assign(int64_t(B) * H_, std::vector<KeyList>(T));
    c.clusters.assign(int64_t(B) * H_ * T, -1);
    const float scale = 1.0f / std::sqrt(float(dh_));
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < int64_t(B) * H_; ++bh) {
      const int64_t b = bh / H_, h = bh % H_, head = b * T * HD_ + h * dh_;
      std::vector<std::vector<int32_t>> members(o_.n_clusters);
      for (int t = 0; t < T; ++t) {
        KeyList& list = c.lists[bh][t];
        if (h < o_.local_heads) {
          for (int j = std::max(0, t - o_.window + 1); j <= t; ++j)
            list.keys.push_back(j), list.multiplicity.push_back(1);
        } else {
          const int cl = c.clusters[bh * T + t] = Nearest(c.k.data() + head + int64_t(t) * HD_, int(h));
          members[cl].push_back(t);
          RecentMembers(members[cl], list);
        }
        c.logz[bh * T + t] = AttendKeyList(c.q.data() + head + int64_t(t) * HD_, c.k.data() + head, c.v.data() + head,
                                           HD_, dh_, scale, list, c.o.data() + head + int64_t(t) * HD_);
      }
    }
    signature_.assign(reinterpret_cast<const char*>(c.clusters.data()), c.clusters.size() * sizeof(int32_t));
    if (mode.training) UpdateCentroids(c);
    LinearForward(c.o.data(), P(kWo), y, N, HD_, D_);
  }

  void MixBackward(RoutingContext& c, const float* dy, float* dx) override {
    KeyListBackward(c, dy, dx, P(kWq), P(kWv), P(kWo), G(kWq), G(kWv), G(kWo), D_, H_, dh_);
  }

  std::string RoutingSignature() const override { return signature_; }

  void InitState(RoutingState& s, int B) const override {
    s.B = B;
    s.length = 0;
    s.k.assign(B, Buffer());
    s.v.assign(B, Buffer());
    s.members.assign(int64_t(B) * H_, std::vector<std::vector<int32_t>>(o_.n_clusters));
  }

  void MixStep(const float* x, const int32_t*, float* y, RoutingState& s) override {
    RoutingContext c;
    Project(x, s.B, 1, c);
    const int32_t t = int32_t(s.length++);
    Buffer o(int64_t(s.B) * HD_);
    const float scale = 1.0f / std::sqrt(float(dh_));
    for (int b = 0; b < s.B; ++b) {
      s.k[b].insert(s.k[b].end(), c.k.begin() + b * HD_, c.k.begin() + (b + 1) * HD_);
      s.v[b].insert(s.v[b].end(), c.v.begin() + b * HD_, c.v.begin() + (b + 1) * HD_);
      for (int h = 0; h < H_; ++h) {
        KeyList list;
        if (h < o_.local_heads) {
          for (int32_t j = std::max(0, t - o_.window + 1); j <= t; ++j)
            list.keys.push_back(j), list.multiplicity.push_back(1);
        } else {
          auto& members = s.members[int64_t(b) * H_ + h][Nearest(c.k.data() + b * HD_ + h * dh_, h)];
          members.push_back(t);
          RecentMembers(members, list);
        }
        AttendKeyList(c.q.data() + b * HD_ + h * dh_, s.k[b].data() + h * dh_, s.v[b].data() + h * dh_, HD_, dh_, scale,
                      list, o.data() + b * HD_ + h * dh_);
      }
    }
    LinearForward(o.data(), P(kWo), y, s.B, HD_, D_);
  }

  std::vector<RowMatrix> Mixing(const float* x, const int32_t*, int T) override {
    RoutingContext c;
    Mix(x, nullptr, 1, T, Buffer(int64_t(T) * D_).data(), c, ForwardMode{});
    return KeyListMaps(c.q.data(), c.k.data(), c.lists, c.logz.data(), T, H_, dh_);
  }

  MixingValuePath MixingValues(const float* x, const int32_t*, int T) override {
    return ValuePath(x, P(kWv), T, D_, HD_);
  }

  MixerDescription Cost(int T) const override {
    MixerDescription d;
    d.state_floats_per_token = 2 * HD_;
    d.flops_per_token =
        2.0 * 3 * D_ * HD_ + 2.0 * 2 * HD_ * std::min(T, o_.window) + 2.0 * dh_ * o_.n_clusters * (H_ - o_.local_heads);
    return d;
  }

 private:
  void Project(const float* x, int B, int T, RoutingContext& c) const {
    KeyListProject(x, P(kWq), P(kWv), B, T, D_, H_, dh_, c);
  }

  int Nearest(const float* k, int h) const {
    Eigen::Map<const Eigen::VectorXf> kv(k, dh_);
    int best = 0;
    float best_value = -std::numeric_limits<float>::infinity();
    for (int cl = 0; cl < o_.n_clusters; ++cl) {
      const float s =
          kv.dot(Eigen::Map<const Eigen::VectorXf>(P(kCentroids) + (int64_t(h) * o_.n_clusters + cl) * dh_, dh_));
      if (s > best_value) best_value = s, best = cl;
    }
    return best;
  }

  // The `window` most recent members of a cluster (the query last among them).
  void RecentMembers(const std::vector<int32_t>& members, KeyList& list) const {
    for (size_t n = members.size() > size_t(o_.window) ? members.size() - o_.window : 0; n < members.size(); ++n)
      list.keys.push_back(members[n]), list.multiplicity.push_back(1);
  }

  // mu_c <- normalise(decay mu_c + (1 - decay) mean of the batch's keys in c), in a fixed order.
  void UpdateCentroids(const RoutingContext& c) {
    const int64_t T = c.T;
    float* mu = params_[kCentroids].value;
    for (int h = o_.local_heads; h < H_; ++h) {
      RowMatrix sum = RowMatrix::Zero(o_.n_clusters, dh_);
      std::vector<int64_t> count(o_.n_clusters, 0);
      for (int64_t b = 0; b < c.B; ++b)
        for (int64_t t = 0; t < T; ++t) {
          const int cl = c.clusters[(b * H_ + h) * T + t];
          sum.row(cl) += Eigen::Map<const Eigen::RowVectorXf>(c.k.data() + (b * T + t) * HD_ + h * dh_, dh_);
          ++count[cl];
        }
      for (int cl = 0; cl < o_.n_clusters; ++cl) {
        if (count[cl] == 0) continue;
        Eigen::Map<Eigen::RowVectorXf> m(mu + (int64_t(h) * o_.n_clusters + cl) * dh_, dh_);
        m = o_.decay * m + (1.0f - o_.decay) * sum.row(cl) / float(count[cl]);
        m.normalize();
      }
    }
  }

  int D_, H_, dh_ = 0, HD_ = 0;
  RoutingOptions o_;
  MixerDims dims_;
  std::string signature_;
};

}  // namespace

// Small finite-difference steps keep every perturbation inside one assignment (RoutingSignature).
MIXLAB_REGISTER_MIXER(
    Entry<Routing, RoutingOptions>("routing", MixerKind::kSequence,
                                   "Routing Transformer attention: online k-means clusters + local heads, causal")
        .Tests({.fd_eps = 1e-3f,
                .extra_cases = {
                    {"routing_window3_all_routed",
                     "none",
                     {{"window", "3"}, {"local-heads", "0"}, {"n-clusters", "2"}},
                     false,
                     2e-2,
                     1e-3f},
                }}));

}  // namespace mixlab
