// Mixture-of-experts channel mixer (Shazeer et al. 2017; Switch Transformer, Fedus et al. 2022), replacing the
// MLP slot:
//   p = softmax(x Wr) over E experts;  the top_k experts of each token run their GELU MLP
//   y = sum_{e in topk} g_e * MLP_e(x),  g = p restricted to the top-k (renormalised to sum 1 by default)
// Auxiliary losses added to the training loss: Switch load balancing aux_coef * E * sum_e f_e * P_e (f_e the
// fraction of assignments to e, P_e its mean router probability; gradient through P only) and the router z-loss
// z_coef * mean(logsumexp(x Wr)^2). capacity_factor > 0 caps each expert at ceil(cf * N * k / E) assignments,
// taken in token order; the rest are dropped (counted). Capacity applies in training only (as in Switch, where it
// exists to balance a batch over devices): evaluation and decoding route every token, so a position's prediction
// never depends on the sequence length or on the other sequences of a batch, and Step equals Forward. Cost O(T * k * D
// * d_ff). The context saves x, the router probabilities, the routing, and each expert's hidden pre-activations.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "mixers/mixer_base.h"
#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

struct MoeOptions : Options {
  int n_experts = 8;
  int top_k = 2;
  int d_ff = 0;
  float aux_coef = 0.01f;
  float z_coef = 0.0f;
  float capacity_factor = 0.0f;
  bool renormalize = true;
  void Visit(OptionVisitor& v) override {
    v.Int("n-experts", n_experts, "experts", 1, 4096);
    v.Int("top-k", top_k, "experts per token (1 = Switch, 2 = top-2)", 1, 4096);
    v.Int("d-ff", d_ff, "hidden width of each expert; 0 = 4 * d_model", 0, 1 << 16);
    v.Float("aux-coef", aux_coef, "Switch load-balancing loss coefficient", 0.0f, 100.0f);
    v.Float("z-coef", z_coef, "router z-loss coefficient; 0 = off", 0.0f, 100.0f);
    v.Float("capacity-factor", capacity_factor,
            "expert capacity in training as a multiple of N*k/E; 0 = unlimited (evaluation and decoding never drop)",
            0.0f, 1000.0f);
    v.Bool("renormalize", renormalize, "renormalise the top-k gates to sum to 1");
  }
};

struct Assignment {
  int64_t token;
  float gate;
};

enum Param { kRouter, kW1, kB1, kW2, kB2 };  // experts stacked along the first axis

struct MoeContext : MixerContext {
  int64_t N = 0;
  Buffer x, logits, probs, lse;                 // probs (N, E), lse (N)
  std::vector<std::vector<int>> topk;           // per token: chosen experts (kept or dropped)
  std::vector<std::vector<bool>> kept;          // per token: whether each choice survived capacity
  std::vector<std::vector<Assignment>> routed;  // per expert: its tokens and gates
  std::vector<std::pair<int, int64_t>> slots;   // (N, k): per token, (expert, row in routed[expert]) by expert, or -1
  std::vector<Buffer> xe, he, ae, ye;           // per expert: gathered inputs, hidden pre-act, act, outputs
  std::vector<double> load;                     // f_e: fraction of assignments per expert
  int64_t dropped = 0;
  double aux = 0, z = 0, entropy = 0;
  float aux_weight = 1;  // ForwardMode::aux_weight: this micro-batch's share of the batch's auxiliary losses
};

class Moe : public ChannelMixer<MoeContext> {
 public:
  Moe(const MixerDims& dims, const MoeOptions& o)
      : D_(dims.d_model), E_(o.n_experts), K_(o.top_k), F_(o.d_ff ? o.d_ff : 4 * dims.d_model), o_(o), dims_(dims) {
    if (K_ > E_) throw UsageError("moe: top-k " + std::to_string(K_) + " exceeds n-experts " + std::to_string(E_));
  }
  std::vector<ParamSpec> Params() const override {
    return {{"router", {D_, E_}, Init::kNormal, InputStd(dims_, D_)},
            {"w1", {E_, D_, F_}, Init::kNormal, InputStd(dims_, D_)},
            {"b1", {E_, F_}, Init::kZeros, 0, false},
            {"w2", {E_, F_, D_}, Init::kNormal, ResidualOutputStd(dims_, F_)},
            {"b2", {E_, D_}, Init::kZeros, 0, false}};
  }

  void Mix(const float* x, const int32_t*, int B, int T, float* y, MoeContext& c, const ForwardMode& mode) override {
    last_ = &c;
    const int64_t N = int64_t(B) * T;
    c.N = N;
    c.aux_weight = mode.aux_weight;
    c.x.assign(x, x + N * D_);
    c.logits.resize(N * E_);
    c.probs.resize(N * E_);
    c.lse.resize(N);
    LinearForward(x, P(kRouter), c.logits.data(), N, D_, E_);
    SoftmaxForward(c.logits.data(), c.probs.data(), N, E_);
    Route(c, mode.training);
    c.xe.resize(E_), c.he.resize(E_), c.ae.resize(E_), c.ye.resize(E_);
    const std::vector<int> order = LargestFirst(c);
#pragma omp parallel for schedule(dynamic, 1)
    for (int at = 0; at < E_; ++at) {
      const int e = order[at];
      const int64_t n = int64_t(c.routed[e].size());
      c.xe[e].resize(n * D_), c.he[e].resize(n * F_), c.ae[e].resize(n * F_), c.ye[e].resize(n * D_);
      if (n == 0) continue;
      for (int64_t i = 0; i < n; ++i) std::copy_n(x + c.routed[e][i].token * D_, D_, c.xe[e].data() + i * D_);
      LinearForward(c.xe[e].data(), P(kW1) + int64_t(e) * D_ * F_, c.he[e].data(), n, D_, F_);
      BiasGeluForward(c.he[e].data(), P(kB1) + int64_t(e) * F_, c.ae[e].data(), n, F_);
      LinearForward(c.ae[e].data(), P(kW2) + int64_t(e) * F_ * D_, c.ye[e].data(), n, F_, D_);
      AsMatrix(c.ye[e].data(), n, D_).rowwise() += AsMatrix(P(kB2) + int64_t(e) * D_, 1, D_).row(0);
    }
    // y_t = sum of its experts' gated outputs, added in expert order (deterministic)
    GatherBySlots(c, N, y, [&](int e, int64_t i) { return std::pair{c.routed[e][i].gate, c.ye[e].data() + i * D_}; });
  }

  void MixBackward(MoeContext& c, const float* dy, float* dx) override {
    const int64_t N = c.N;
    Buffer dgate(N * E_, 0.0f);  // d loss / d g_{t,e}
    std::vector<Buffer> dxe(E_);
    const std::vector<int> order = LargestFirst(c);
#pragma omp parallel for schedule(dynamic, 1)
    for (int at = 0; at < E_; ++at) {
      const int e = order[at];
      const int64_t n = int64_t(c.routed[e].size());
      if (n == 0) continue;
      Buffer dye(n * D_), dae(n * F_);
      dxe[e].resize(n * D_);
      for (int64_t i = 0; i < n; ++i) {
        const auto& a = c.routed[e][i];
        float dot = 0;
        for (int d = 0; d < D_; ++d) {
          dye[i * D_ + d] = a.gate * dy[a.token * D_ + d];
          dot += dy[a.token * D_ + d] * c.ye[e][i * D_ + d];
        }
        dgate[a.token * E_ + e] = dot;
      }
      AddColumnSums(dye.data(), n, D_, G(kB2) + int64_t(e) * D_);
      LinearBackward(c.ae[e].data(), P(kW2) + int64_t(e) * F_ * D_, dye.data(), dae.data(),
                     G(kW2) + int64_t(e) * F_ * D_, n, F_, D_);
      BiasGeluBackward(c.he[e].data(), dae.data(), dae.data(), G(kB1) + int64_t(e) * F_, n, F_);
      LinearBackward(c.xe[e].data(), P(kW1) + int64_t(e) * D_ * F_, dae.data(), dxe[e].data(),
                     G(kW1) + int64_t(e) * D_ * F_, n, D_, F_);
    }
    GatherBySlots(c, N, dx, [&](int e, int64_t i) { return std::pair{1.0f, dxe[e].data() + i * D_}; });
    // gates -> router probabilities -> logits
    Buffer dprobs(N * E_, 0.0f), dlogits(N * E_);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N; ++t) {
      const float* p = c.probs.data() + t * E_;
      float* dp = dprobs.data() + t * E_;
      const auto& chosen = c.topk[t];
      if (o_.renormalize) {
        float S = 0, dot = 0;
        for (int e : chosen) S += p[e];
        for (int e : chosen) dot += dgate[t * E_ + e] * p[e] / S;
        for (int e : chosen) dp[e] += (dgate[t * E_ + e] - dot) / S;
      } else {
        for (int e : chosen) dp[e] += dgate[t * E_ + e];
      }
      for (int e = 0; e < E_; ++e) dp[e] += c.aux_weight * o_.aux_coef * float(E_) * float(c.load[e]) / float(N);
    }
    SoftmaxBackward(c.probs.data(), dprobs.data(), dlogits.data(), N, E_);
    if (o_.z_coef > 0)
      for (int64_t t = 0; t < N; ++t)
        for (int e = 0; e < E_; ++e)
          dlogits[t * E_ + e] += c.aux_weight * o_.z_coef * 2.0f * c.lse[t] / float(N) * c.probs[t * E_ + e];
    LinearBackward(c.x.data(), P(kRouter), dlogits.data(), dx, G(kRouter), N, D_, E_, true);
  }

  float AuxLoss() const override {
    return last_ ? last_->aux_weight * float(o_.aux_coef * last_->aux + o_.z_coef * last_->z) : 0.0f;
  }

  std::map<std::string, double> Stats() const override {
    std::map<std::string, double> s;
    if (!last_) return s;
    for (int e = 0; e < E_; ++e) s["load." + std::to_string(e)] = last_->load[e];
    s["router_entropy"] = last_->entropy;
    s["dropped"] = double(last_->dropped);
    s["aux_loss"] = last_->aux;
    s["z_loss"] = last_->z;
    return s;
  }

  std::string RoutingSignature() const override {
    std::string sig;
    if (!last_) return sig;
    for (size_t t = 0; t < last_->topk.size(); ++t)
      for (size_t i = 0; i < last_->topk[t].size(); ++i)
        sig += std::to_string(last_->topk[t][i]) + (last_->kept[t][i] ? "," : "x,");
    return sig;
  }

  std::vector<std::vector<int>> Routes() const override {
    std::vector<std::vector<int>> routes;
    if (!last_) return routes;
    for (size_t t = 0; t < last_->topk.size(); ++t) {
      routes.emplace_back();
      for (size_t i = 0; i < last_->topk[t].size(); ++i)
        if (last_->kept[t][i]) routes.back().push_back(last_->topk[t][i]);
    }
    return routes;
  }

  MixerDescription Cost(int T) const override { return {0, 0, 0, 2.0 * D_ * E_ + 2.0 * 2 * K_ * D_ * F_}; }

 private:
  // Experts run side by side, one per thread, the most loaded first (so the last ones to start are the shortest);
  // the products inside an expert run on its thread (oneDNN and AddWeightGradient do not nest), so each expert's
  // results are the same whatever the thread count.
  static std::vector<int> LargestFirst(const MoeContext& c) {
    std::vector<int> order(c.routed.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return c.routed[a].size() > c.routed[b].size(); });
    return order;
  }

  // out_t (D) = sum over token t's kept slots, in expert order, of w * row, where (w, row) = term(expert, index).
  template <typename Term>
  void GatherBySlots(const MoeContext& c, int64_t N, float* out, Term term) const {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N; ++t) {
      Eigen::Map<Eigen::ArrayXf> o(out + t * D_, D_);
      o.setZero();
      for (int k = 0; k < K_; ++k) {
        const auto [e, i] = c.slots[t * K_ + k];
        if (e < 0) break;
        const auto [w, row] = term(e, i);
        o += w * Eigen::Map<const Eigen::ArrayXf>(row, D_);
      }
    }
  }

  // Chooses the top-k experts per token (ties to the lower index), applies capacity (training only), and fills the
  // losses.
  void Route(MoeContext& c, bool training) const {
    const int64_t N = c.N;
    c.topk.assign(N, {});
    c.kept.assign(N, {});
    c.routed.assign(E_, {});
    c.load.assign(E_, 0.0);
    const int64_t capacity = o_.capacity_factor > 0 && training
                                 ? int64_t(std::ceil(o_.capacity_factor * double(N) * K_ / E_))
                                 : std::numeric_limits<int64_t>::max();
    c.dropped = 0;
    c.z = 0;
    c.entropy = 0;
    std::vector<double> mean_prob(E_, 0.0);
    std::vector<int> order(E_);
    for (int64_t t = 0; t < N; ++t) {
      const float* p = c.probs.data() + t * E_;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + K_, order.end(),
                        [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      float S = 0;
      for (int i = 0; i < K_; ++i) S += p[order[i]];
      for (int i = 0; i < K_; ++i) {
        const int e = order[i];
        const bool keep = int64_t(c.routed[e].size()) < capacity;
        c.topk[t].push_back(e);
        c.kept[t].push_back(keep);
        c.load[e] += 1.0 / double(N * K_);
        if (keep) c.routed[e].push_back({t, o_.renormalize ? p[e] / S : p[e]});
        else ++c.dropped;
      }
      const float* l = c.logits.data() + t * E_;
      const float m = *std::max_element(l, l + E_);
      double s = 0;
      for (int e = 0; e < E_; ++e) {
        s += std::exp(double(l[e] - m));
        mean_prob[e] += p[e] / double(N);
        if (p[e] > 0) c.entropy -= p[e] * std::log(double(p[e])) / double(N);
      }
      c.lse[t] = float(m + std::log(s));
      c.z += double(c.lse[t]) * c.lse[t] / double(N);
    }
    c.aux = 0;
    for (int e = 0; e < E_; ++e) c.aux += double(E_) * c.load[e] * mean_prob[e];
    c.slots.assign(N * K_, {-1, 0});
    std::vector<int> filled(N, 0);
    for (int e = 0; e < E_; ++e)
      for (int64_t i = 0; i < int64_t(c.routed[e].size()); ++i) {
        const int64_t t = c.routed[e][i].token;
        c.slots[t * K_ + filled[t]++] = {e, i};
      }
  }

  int D_, E_, K_, F_;
  MoeOptions o_;
  MixerDims dims_;
  mutable const MoeContext* last_ = nullptr;  // context of the last Forward, read by AuxLoss, Stats, RoutingSignature
};

}  // namespace

// Finite differences use eps 1e-3 so that every perturbation stays inside one routing.
MIXLAB_REGISTER_MIXER(
    Entry<Moe, MoeOptions>("moe", MixerKind::kChannel,
                           "mixture of GELU-MLP experts, softmax router, top-k, Switch aux + z losses, capacity")
        .Tests(
            {.fd_eps = 1e-3f,
             .extra_cases = {
                 {"moe_switch_zloss", "none", {{"top-k", "1"}, {"z-coef", "0.1"}, {"d-ff", "8"}}, false, 2e-2, 1e-3f},
                 {"moe_top3_raw_gates",
                  "none",
                  {{"top-k", "3"}, {"renormalize", "false"}, {"n-experts", "4"}, {"aux-coef", "1"}},
                  false,
                  2e-2,
                  1e-3f},
                 // Capacity drops tokens in training only; outside it Step must equal Forward whatever the batch holds.
                 {"moe_capacity",
                  "none",
                  {{"capacity-factor", "0.25"}, {"top-k", "1"}, {"n-experts", "4"}},
                  false,
                  2e-2,
                  1e-3f},
             }}));

}  // namespace mixlab
