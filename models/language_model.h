// The model skeleton: token embedding (+ learned or sinusoidal positions), blocks with a sequence-mixer slot
// and a channel-mixer slot (pre-norm x + f(norm(x)) or post-norm norm(x + f(x))), a final norm, and an LM head
// tied to the embedding by default (or, for MAD's compression task, a decoder reading only the last position).
// Forward keeps every activation for the hand-written Backward; buffers are allocated once per (B, T) and reused.
#pragma once
#include <memory>
#include <vector>

#include "mixers/mixer.h"
#include "models/compression_decoder.h"
#include "models/model_config.h"
#include "models/norm_layer.h"
#include "models/param_store.h"

namespace mixlab {

class LanguageModel {
 public:
  explicit LanguageModel(const ModelConfig& config) : LanguageModel(config, true) {}
  // Parameters the config declares, counted without allocating them (memory checks before a run or a load).
  static int64_t PlannedParams(const ModelConfig& config) { return Declared(config)->store_.declared_size(); }
  // The model's structure (mixers, parameter declarations) without parameter memory: for counts and Describe().
  static std::unique_ptr<LanguageModel> Declared(const ModelConfig& config) {
    return std::unique_ptr<LanguageModel>(new LanguageModel(config, false));
  }
  void Initialize(uint64_t seed);
  // After loading weights trained for `steps` steps: every mixer restores the step-dependent state they were trained
  // with.
  void RestoreTrainedSteps(int64_t steps);

  // tokens (B, T); positions are 0..T-1. Keeps activations for Backward.
  void Forward(const int32_t* tokens, int B, int T, const ForwardMode& mode = {});
  // After Forward: mean masked cross-entropy over (B, T) plus the mixers' auxiliary losses. A micro-batch of a larger
  // batch passes the whole batch's MaskTotal as `normalizer` (its loss and gradient are then its share of the batch's)
  // and its share of the auxiliary losses in ForwardMode::aux_weight.
  float Loss(const int32_t* targets, const float* mask, float normalizer = 0);
  // After Loss: accumulates every parameter gradient.
  void Backward();

  const float* logits() const { return logits_.data(); }  // (B, T, V) of the last Forward
  const float* probs() const { return probs_.data(); }    // (B, T, V) after Loss
  // Residual stream entering layer l (l = n_layers: the output of the last block), (B, T, D).
  const float* residual(int l) const { return resid_[l].data(); }
  // After Forward: the (B, T, D) input layer l's sequence mixer saw (the normalised stream under pre-norm).
  const float* mixer_input(int l) const { return pre_norm_ ? layers_[l].norm1_out.data() : resid_[l].data(); }
  // After Forward: the logit lens, logits (B, T, V) read from the residual stream entering layer l (l = n_layers:
  // the model's own output) through the final norm and the LM head. Leaves the saved activations untouched.
  void LogitLens(int l, float* logits);
  // After Forward: layer l's sequence-mixer output (B, T, D), before it joins the residual stream.
  const float* mixer_output(int l) const { return layers_[l].mix_out.data(); }
  // Analysis hook (mean ablation): a constant (D) vector added to layer l's sequence-mixer output in Forward and
  // Step; empty removes it. Training never sets it.
  void SetMixerOffset(int l, std::vector<float> offset) { layers_[l].mix_offset = std::move(offset); }
  float last_cross_entropy() const { return last_ce_; }
  float last_aux_loss() const { return last_aux_; }

  // Incremental decoding: one token per sequence through every mixer's Step.
  struct DecodeState {
    std::vector<std::unique_ptr<MixerState>> mixer, channel;
  };
  std::unique_ptr<DecodeState> NewDecodeState(int B) const;
  static std::unique_ptr<DecodeState> CloneDecodeState(const DecodeState& state);
  // tokens, positions (B); logits (B, V).
  void Step(const int32_t* tokens, const int32_t* positions, int B, float* logits, DecodeState& state);

  const ModelConfig& config() const { return config_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }
  int n_layers() const { return int(layers_.size()); }
  Mixer& mixer(int l) { return *layers_[l].mixer; }
  Mixer& channel(int l) { return *layers_[l].channel; }
  int vocab() const { return config_.vocab; }
  int d_model() const { return config_.d_model; }

 private:
  LanguageModel(const ModelConfig& config, bool allocate);
  using Norm = NormLayer;
  struct Layer {
    std::unique_ptr<Mixer> mixer, channel;
    std::unique_ptr<MixerContext> mixer_ctx, channel_ctx;
    std::vector<int> mixer_params, channel_params;  // indices into the store, in Params() order
    Norm norm1, norm2;
    // (N, D) each: pre-norm uses norm1_out/norm2_out, post-norm uses sum1/sum2.
    Buffer norm1_out, mix_out, sum1, mid, norm2_out, ch_out, sum2;
    std::vector<float> mix_offset;  // SetMixerOffset
  };

  Norm MakeNorm(const std::string& prefix);
  void NormForward(Norm& n, const float* x, float* y, int64_t rows);
  void NormBackward(Norm& n, const float* x, const float* dy, float* dx, int64_t rows);
  void Embed(const int32_t* tokens, const int32_t* positions, int64_t n, float* x);
  void EmbedBackward(const float* dx);
  void Head(const float* h, float* logits, int64_t n);
  // logits (B, T, V) of the compression decoder from the last position of the final stream h (B, T, D); `decoder` is
  // decoder_ or a scratch copy that leaves decoder_'s saved activations intact.
  void Readout(const float* h, float* logits, CompressionDecoder& decoder);
  void Resize(int B, int T);
  static void AddOffset(const std::vector<float>& offset, float* y, int64_t rows);

  ModelConfig config_;
  ParamStore store_;
  std::vector<Layer> layers_;
  int embedding_ = -1, pos_embedding_ = -1, head_ = -1;
  std::unique_ptr<CompressionDecoder> decoder_;  // config.head == "compression"
  Buffer z_, dz_;                                // (B, D) the decoder's input and its gradient
  Norm final_norm_;
  bool pre_norm_ = true;

  int B_ = 0, T_ = 0;
  std::vector<int32_t> tokens_, positions_, targets_;
  Buffer mask_;
  std::vector<Buffer> resid_;  // n_layers + 1 streams of (N, D)
  Buffer final_out_, logits_, probs_, dlogits_, dh_, dx_, dtmp_, dtmp2_;
  float last_ce_ = 0, last_aux_ = 0, loss_normalizer_ = 0;
};

}  // namespace mixlab
