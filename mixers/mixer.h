// The mixer contract. A sequence mixer maps x (B, T, D) to y (B, T, D) causally; a channel mixer maps each
// token on its own. Both declare their parameters, run a forward that fills a reusable context with what
// backward needs, a backward that returns dx and accumulates parameter gradients, a one-token Step with a
// decoding state, a mixing-matrix export for analysis, and a description (parameters, state, FLOPs).
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mixers/ops/options.h"
#include "mixers/ops/tensor.h"

namespace mixlab {

enum class MixerKind { kSequence, kChannel };

// How a parameter is initialised: N(0, std^2), zeros, ones, or a mixer-specific rule applied in InitParams.
enum class Init { kNormal, kZeros, kOnes, kCustom };

// What analysis may do with a parameter. kHeadOutput marks a sequence mixer's per-head output projection: a
// (rows, d_model) matrix whose rows split into `head_groups` contiguous blocks (mixers/head_groups.h), block g
// carrying exactly what Mixing()[g] mixes into the output. Ablation, mean ablation, pruning and head output shares
// zero one block to remove one head. A mixer without one trains and is analysed like any other; analysis then
// skips what needs it and says so. kState marks a state the mixer updates itself in its training forward rather than
// by gradient (the Routing Transformer's k-means centroids): it lives with the parameters so checkpoints and resumes
// carry it, its gradient stays zero and it takes no weight decay, so AdamW leaves it as the mixer set it.
enum class ParamRole { kNone, kHeadOutput, kState };

struct ParamSpec {
  std::string name;            // e.g. "wq"; the model prefixes it: "layers.0.mixer.wq"
  std::vector<int64_t> shape;  // row-major
  Init init = Init::kNormal;
  float std = 0.02f;
  bool weight_decay = true;  // false for norms, biases, gains
  ParamRole role = ParamRole::kNone;
  int head_groups = 0;  // kHeadOutput: how many heads / channel groups its rows split into
  int64_t Numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

// A view of one parameter and its gradient inside the model's flat buffers.
struct ParamRef {
  float* value = nullptr;
  float* grad = nullptr;
};

// What a mixer is built with besides its own options.
struct MixerDims {
  int d_model = 64;
  int n_layers = 1;  // for depth-scaled init
  int layer_index = 0;
  std::string pos =
      "none";             // positional encoding handed to the mixer: none | rope | alibi (others stay in the skeleton)
  std::string name = "";  // the registry name the mixer is built under (for its error messages); set by MakeMixer
  std::string init = "fan-in";  // fan-in: N(0, 1/fan_in); gpt2: N(0, 0.02^2)
};

// Initial std of a weight matrix reading `fan_in` inputs. Projections that write into the residual stream
// are further scaled by 1/sqrt(2 * n_layers) (GPT-2) so the stream's scale does not grow with depth.
inline float InputStd(const MixerDims& d, int64_t fan_in) {
  return d.init == "gpt2" ? 0.02f : 1.0f / std::sqrt(float(fan_in));
}
inline float ResidualOutputStd(const MixerDims& d, int64_t fan_in) {
  return InputStd(d, fan_in) / std::sqrt(2.0f * float(d.n_layers));
}

struct ForwardMode {
  bool training = false;      // enables dropout
  uint64_t dropout_seed = 0;  // changes every step; dropout masks are a pure function of (seed, indices)
  int64_t step = 0;           // training step (Performer redraws its random features from it)
  bool inference = false;     // no Backward follows: a mixer may keep nothing for it (Mamba then runs in windows)
  // A micro-batch of a larger batch (--grad-accum, data-parallel ranks): the index of its first sequence in the batch
  // (dropout masks are a function of the batch-wide sequence index, so they match the whole batch's) and its share of
  // the batch's auxiliary losses (MoE's load-balancing and z losses, computed per micro-batch and weighted by it).
  int64_t first_sequence = 0;
  float aux_weight = 1.0f;
};

struct MixerDescription {
  int64_t params = 0;
  int64_t state_floats_fixed = 0;      // decoding state that does not grow (recurrent state)
  int64_t state_floats_per_token = 0;  // decoding state added per token (KV cache)
  double flops_per_token = 0;          // forward FLOPs per token at the given T
};

// Everything a forward saves for its backward; each mixer subclasses it. Contexts are reused across steps
// so buffers are allocated once per shape.
struct MixerContext {
  virtual ~MixerContext() = default;
};

// Decoding state for Step (KV cache, recurrent state), created for a batch size.
struct MixerState {
  virtual ~MixerState() = default;
  // An independent copy to continue from (beam search forks decoding states).
  virtual std::unique_ptr<MixerState> Clone() const = 0;
};

// A state whose members are all copyable clones itself by copy construction.
template <class Derived>
struct CopyableState : MixerState {
  std::unique_ptr<MixerState> Clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
};

struct MixingValuePath {
  RowMatrix values, gate;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  // The registry entry the mixer was built from (MakeMixer sets both): a mixer never spells its own name.
  const std::string& Name() const { return name_; }
  MixerKind Kind() const { return kind_; }
  void SetIdentity(std::string name, MixerKind kind) {
    name_ = std::move(name);
    kind_ = kind;
  }
  virtual std::vector<ParamSpec> Params() const = 0;
  // Receives views for Params(), in order. Parameters are initialised by the model; kCustom ones here.
  void Bind(std::vector<ParamRef> refs) { params_ = std::move(refs); }
  virtual void InitCustomParams(uint64_t seed) {}
  // Called when weights trained for `steps` optimizer steps are loaded: a mixer whose forward depends on the training
  // step (Performer's periodically redrawn features) restores the state those weights were trained with.
  virtual void RestoreTrainedSteps(int64_t steps) {}

  virtual std::unique_ptr<MixerContext> NewContext() const = 0;
  // x, y are (B, T, D); positions (B, T). y is overwritten.
  virtual void Forward(const float* x, const int32_t* positions, int B, int T, float* y, MixerContext& ctx,
                       const ForwardMode& mode) = 0;
  // dy, dx are (B, T, D) for the last Forward run with ctx; dx is overwritten, parameter grads accumulate.
  virtual void Backward(MixerContext& ctx, const float* dy, float* dx) = 0;

  virtual std::unique_ptr<MixerState> NewState(int B) const = 0;
  // One token per sequence: x, y are (B, D), positions (B). Equal to Forward at that position.
  virtual void Step(const float* x, const int32_t* positions, float* y, MixerState& state) = 0;

  // Mixing matrices of one sequence x (T, D): one (T, T) matrix per head or channel group, row t holding
  // how much each position s <= t contributes to output t. Empty for mixers that do not mix positions.
  // One map per group of the kHeadOutput projection when the mixer declares one.
  virtual std::vector<RowMatrix> Mixing(const float* x, const int32_t* positions, int T) { return {}; }
  // The value path behind Mixing() where the identity holds exactly: what the maps mix at each position
  // (values, (T, C) with C the rows of the kHeadOutput projection) and an elementwise gate applied after mixing
  // (gate, (T, C); empty for none), so that for one sequence, with group g's columns / rows,
  //   y = sum_g ((M_g values_g) .* gate_g) Wo_g.
  // Attention-like mixers return their values (no gate); mamba its convolved input u and gate silu(z), exact
  // with one channel per group. Empty (the default) where no such identity holds; the contract test then checks
  // the maps' shape and causality only.
  virtual MixingValuePath MixingValues(const float* x, const int32_t* positions, int T) { return {}; }

  virtual MixerDescription Describe(int T) const = 0;
  // Auxiliary loss of the last Forward (MoE load balancing); zero for most mixers. Its gradient is added by
  // Backward.
  virtual float AuxLoss() const { return 0.0f; }
  // Named statistics of the last Forward for logging (MoE: expert load, router entropy, dropped tokens).
  virtual std::map<std::string, double> Stats() const { return {}; }
  // Discrete decisions of the last Forward (MoE routing); gradient checks assert it does not change under
  // their perturbations, since the loss is not differentiable across a change.
  virtual std::string RoutingSignature() const { return ""; }
  // Experts each token of the last Forward was routed to and kept (MoE), in (B, T) order; empty for other mixers.
  virtual std::vector<std::vector<int>> Routes() const { return {}; }

 protected:
  const float* P(int i) const { return params_[i].value; }
  float* G(int i) const { return params_[i].grad; }
  std::vector<ParamRef> params_;

 private:
  std::string name_;
  MixerKind kind_ = MixerKind::kSequence;
};

// A channel mixer acts on each token alone, so Step is Forward with T = 1 and there is no state.
class ChannelMixerBase : public Mixer {
 public:
  std::unique_ptr<MixerState> NewState(int B) const override;
  void Step(const float* x, const int32_t* positions, float* y, MixerState& state) override;
};

int64_t CountParams(const std::vector<ParamSpec>& specs);

}  // namespace mixlab
