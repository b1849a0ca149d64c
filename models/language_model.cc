#include "models/language_model.h"

#include <cmath>

#include "mixers/ops/matmul.h"
#include "mixers/ops/ops.h"
#include "mixers/positional.h"
#include "mixers/registry.h"

namespace mixlab {
namespace {

void AddInto(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace

LanguageModel::LanguageModel(const ModelConfig& config, bool allocate)
    : config_(config), pre_norm_(config.norm_position == "pre") {
  const int D = config_.d_model;
  embedding_ = store_.Add("embedding", {"embedding", {config_.vocab, D}, Init::kNormal, 0.02f, false});
  if (config_.pos == "learned")
    pos_embedding_ = store_.Add("pos_embedding", {"pos_embedding", {config_.max_len, D}, Init::kNormal, 0.02f, false});
  const std::string mixer_pos = MixerPosition(config_.pos);
  const int L = int(config_.layers.size());
  layers_.resize(L);
  for (int l = 0; l < L; ++l) {
    const auto& spec = config_.layers[l];
    Layer& layer = layers_[l];
    const std::string prefix = "layers." + std::to_string(l) + ".";
    MixerDims dims{D, L, l, mixer_pos, config_.init};
    layer.mixer = MakeMixer(spec.mixer, MixerKind::kSequence, dims, spec.mixer_options);
    layer.channel = MakeMixer(spec.channel, MixerKind::kChannel, dims, spec.channel_options);
    layer.norm1 = MakeNorm(prefix + "norm1");
    for (const auto& p : layer.mixer->Params()) layer.mixer_params.push_back(store_.Add(prefix + "mixer." + p.name, p));
    layer.norm2 = MakeNorm(prefix + "norm2");
    for (const auto& p : layer.channel->Params())
      layer.channel_params.push_back(store_.Add(prefix + "channel." + p.name, p));
    layer.mixer_ctx = layer.mixer->NewContext();
    layer.channel_ctx = layer.channel->NewContext();
  }
  if (pre_norm_) final_norm_ = MakeNorm("final_norm");
  if (config_.head == "compression")
    decoder_ = std::make_unique<CompressionDecoder>(store_, D, config_.vocab, config_.norm, config_.init);
  else if (!config_.tie_embeddings)
    head_ = store_.Add(
        "lm_head",
        {"lm_head", {D, config_.vocab}, Init::kNormal, config_.init == "gpt2" ? 0.02f : 1.0f / std::sqrt(float(D))});
  if (!allocate) return;
  store_.Allocate();
  for (auto& layer : layers_) {
    std::vector<ParamRef> m, c;
    for (int i : layer.mixer_params) m.push_back(store_.Ref(i));
    for (int i : layer.channel_params) c.push_back(store_.Ref(i));
    layer.mixer->Bind(m);
    layer.channel->Bind(c);
  }
}

void LanguageModel::Initialize(uint64_t seed) {
  store_.Initialize(seed);
  for (size_t l = 0; l < layers_.size(); ++l) {
    layers_[l].mixer->InitCustomParams(seed * 1315423911ULL + 2 * l);
    layers_[l].channel->InitCustomParams(seed * 1315423911ULL + 2 * l + 1);
  }
}

void LanguageModel::RestoreTrainedSteps(int64_t steps) {
  for (auto& layer : layers_) {
    layer.mixer->RestoreTrainedSteps(steps);
    layer.channel->RestoreTrainedSteps(steps);
  }
}

LanguageModel::Norm LanguageModel::MakeNorm(const std::string& prefix) {
  return NormLayer::Declare(store_, prefix, config_.d_model, config_.norm);
}

void LanguageModel::NormForward(Norm& n, const float* x, float* y, int64_t rows) {
  n.Forward(store_, x, y, rows, config_.d_model);
}

void LanguageModel::NormBackward(Norm& n, const float* x, const float* dy, float* dx, int64_t rows) {
  n.Backward(store_, x, dy, dx, rows, config_.d_model);
}

void LanguageModel::Embed(const int32_t* tokens, const int32_t* positions, int64_t n, float* x) {
  const int D = config_.d_model;
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab)
      throw UsageError("token " + std::to_string(tokens[i]) + " outside the vocabulary [0, " +
                       std::to_string(config_.vocab) + ")");
    if (pos_embedding_ >= 0 && positions[i] >= config_.max_len)
      throw UsageError("position " + std::to_string(positions[i]) + " exceeds --max-len " +
                       std::to_string(config_.max_len) + " of the learned positional embedding");
  }
  EmbeddingForward(tokens, store_.Ref(embedding_).value, x, n, D);
  if (pos_embedding_ >= 0) {
    const float* table = store_.Ref(pos_embedding_).value;
    for (int64_t i = 0; i < n; ++i)
      for (int j = 0; j < D; ++j) x[i * D + j] += table[int64_t(positions[i]) * D + j];
  } else if (config_.pos == "sinusoidal") {
    for (int64_t i = 0; i < n; ++i) AddSinusoid(x + i * D, positions[i], D);
  }
}

void LanguageModel::EmbedBackward(const float* dx) {
  const int64_t N = int64_t(B_) * T_;
  EmbeddingBackward(tokens_.data(), dx, store_.Ref(embedding_).grad, N, config_.d_model);
  if (pos_embedding_ >= 0)
    EmbeddingBackward(positions_.data(), dx, store_.Ref(pos_embedding_).grad, N, config_.d_model);
}

// logits (n, V) = h (n, D) E^T (tied) or h W_head
void LanguageModel::Head(const float* h, float* logits, int64_t n) {
  if (head_ >= 0) LinearForward(h, store_.Ref(head_).value, logits, n, config_.d_model, config_.vocab);
  else Gemm(false, true, n, config_.vocab, config_.d_model, h, store_.Ref(embedding_).value, logits, false);
}

void LanguageModel::Readout(const float* h, float* logits, CompressionDecoder& decoder) {
  const int D = config_.d_model;
  z_.resize(int64_t(B_) * D);
  for (int64_t b = 0; b < B_; ++b) std::copy_n(h + (b * T_ + T_ - 1) * D, D, z_.data() + b * D);
  decoder.Forward(store_, z_.data(), B_, T_, logits);
}

void LanguageModel::LogitLens(int l, float* logits) {
  const int64_t N = int64_t(B_) * T_;
  const float* h = resid_[l].data();
  Buffer normed;
  if (pre_norm_) {
    Norm scratch = final_norm_;  // its own mean/rstd: final_norm_'s stay as Backward needs them
    normed.resize(N * config_.d_model);
    NormForward(scratch, h, normed.data(), N);
    h = normed.data();
  }
  if (decoder_) {
    CompressionDecoder scratch = *decoder_;
    Readout(h, logits, scratch);
  } else {
    Head(h, logits, N);
  }
}

void LanguageModel::AddOffset(const std::vector<float>& offset, float* y, int64_t rows) {
  const int64_t D = int64_t(offset.size());
  for (int64_t r = 0; r < rows && D; ++r)
    for (int64_t d = 0; d < D; ++d) y[r * D + d] += offset[d];
}

void LanguageModel::Resize(int B, int T) {
  if (B == B_ && T == T_) return;
  B_ = B;
  T_ = T;
  const int64_t ND = int64_t(B) * T * config_.d_model, NV = int64_t(B) * T * config_.vocab;
  resid_.assign(layers_.size() + 1, Buffer(ND));
  for (auto& l : layers_)
    for (auto* buf : {&l.norm1_out, &l.mix_out, &l.sum1, &l.mid, &l.norm2_out, &l.ch_out, &l.sum2}) buf->assign(ND, 0);
  final_out_.assign(ND, 0);
  logits_.assign(NV, 0);
  probs_.assign(NV, 0);
  dlogits_.assign(NV, 0);
  for (auto* buf : {&dh_, &dx_, &dtmp_, &dtmp2_}) buf->assign(ND, 0);
  positions_.resize(int64_t(B) * T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) positions_[int64_t(b) * T + t] = t;
}

namespace {

// One block's activations: a layer's saved buffers in Forward, scratch in Step.
struct BlockBuffers {
  float *norm1_out, *mix_out, *sum1, *mid, *norm2_out, *ch_out, *sum2;
};

// The block's wiring, shared by Forward and Step (Backward, its adjoint, mirrors it):
//   pre-norm:  mid = x + M(N1(x));  out = mid + C(N2(mid))
//   post-norm: mid = N1(x + M(x));  out = N2(mid + C(mid))
// mix / channel (in, out) run the layer's two mixers (mix adds the ablation offset); norm(k, in, out) its norm k.
// n = rows * d_model; out may alias x.
template <class Mix, class Channel, class Norm>
void BlockForward(bool pre_norm, const float* x, float* out, int64_t n, const BlockBuffers& b, Mix mix, Channel channel,
                  Norm norm) {
  if (pre_norm) {
    norm(1, x, b.norm1_out);
    mix(b.norm1_out, b.mix_out);
    AddInto(b.mid, x, b.mix_out, n);
    norm(2, b.mid, b.norm2_out);
    channel(b.norm2_out, b.ch_out);
    AddInto(out, b.mid, b.ch_out, n);
  } else {
    mix(x, b.mix_out);
    AddInto(b.sum1, x, b.mix_out, n);
    norm(1, b.sum1, b.mid);
    channel(b.mid, b.ch_out);
    AddInto(b.sum2, b.mid, b.ch_out, n);
    norm(2, b.sum2, out);
  }
}

}  // namespace

void LanguageModel::Forward(const int32_t* tokens, int B, int T, const ForwardMode& mode) {
  Resize(B, T);
  const int64_t N = int64_t(B) * T, ND = N * config_.d_model;
  tokens_.assign(tokens, tokens + N);
  Embed(tokens, positions_.data(), N, resid_[0].data());
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    ForwardMode layer_mode = mode;
    layer_mode.dropout_seed = mode.dropout_seed * 1000003ULL + l;
    const BlockBuffers buffers{L.norm1_out.data(), L.mix_out.data(), L.sum1.data(), L.mid.data(),
                               L.norm2_out.data(), L.ch_out.data(),  L.sum2.data()};
    BlockForward(
        pre_norm_, resid_[l].data(), resid_[l + 1].data(), ND, buffers,
        [&](const float* in, float* out) {
          L.mixer->Forward(in, positions_.data(), B, T, out, *L.mixer_ctx, layer_mode);
          AddOffset(L.mix_offset, out, N);
        },
        [&](const float* in, float* out) {
          L.channel->Forward(in, positions_.data(), B, T, out, *L.channel_ctx, layer_mode);
        },
        [&](int k, const float* in, float* out) { NormForward(k == 1 ? L.norm1 : L.norm2, in, out, N); });
  }
  const float* h = resid_.back().data();
  if (pre_norm_) {
    NormForward(final_norm_, h, final_out_.data(), N);
    h = final_out_.data();
  }
  if (decoder_) Readout(h, logits_.data(), *decoder_);
  else Head(h, logits_.data(), N);
}

float LanguageModel::Loss(const int32_t* targets, const float* mask, float normalizer) {
  const int64_t N = int64_t(B_) * T_;
  targets_.assign(targets, targets + N);
  mask_.assign(mask, mask + N);
  loss_normalizer_ = normalizer;
  last_ce_ = CrossEntropyForward(logits_.data(), targets, mask, probs_.data(), N, config_.vocab, normalizer);
  last_aux_ = 0;
  for (auto& l : layers_) last_aux_ += l.mixer->AuxLoss() + l.channel->AuxLoss();
  return last_ce_ + last_aux_;
}

void LanguageModel::Backward() {
  const int64_t N = int64_t(B_) * T_, ND = N * config_.d_model;
  const int D = config_.d_model, V = config_.vocab;
  CrossEntropyBackward(probs_.data(), targets_.data(), mask_.data(), dlogits_.data(), N, V, loss_normalizer_);
  const float* h = pre_norm_ ? final_out_.data() : resid_.back().data();
  // dh (N, D): gradient w.r.t. the head input
  if (decoder_) {
    dz_.resize(int64_t(B_) * D);
    decoder_->Backward(store_, dlogits_.data(), dz_.data());
    std::fill(dh_.begin(), dh_.end(), 0.0f);
    for (int64_t b = 0; b < B_; ++b) std::copy_n(dz_.data() + b * D, D, dh_.data() + (b * T_ + T_ - 1) * D);
  } else if (head_ >= 0) {
    auto w = store_.Ref(head_);
    LinearBackward(h, w.value, dlogits_.data(), dh_.data(), w.grad, N, D, V);
  } else {
    auto e = store_.Ref(embedding_);
    Gemm(false, false, N, D, V, dlogits_.data(), e.value, dh_.data(), false);
    AddWeightGradient(dlogits_.data(), h, e.grad, N, V, D);
  }
  // dx_ carries the gradient of the residual stream downwards.
  if (pre_norm_) NormBackward(final_norm_, resid_.back().data(), dh_.data(), dx_.data(), N);
  else dx_ = dh_;
  for (int l = int(layers_.size()) - 1; l >= 0; --l) {
    Layer& L = layers_[l];
    const float* x = resid_[l].data();
    if (pre_norm_) {
      // out = mid + C(N2(mid)); mid = x + M(N1(x))
      L.channel->Backward(*L.channel_ctx, dx_.data(), dtmp_.data());
      NormBackward(L.norm2, L.mid.data(), dtmp_.data(), dtmp2_.data(), N);
      AddInto(dx_.data(), dx_.data(), dtmp2_.data(), ND);  // d mid
      L.mixer->Backward(*L.mixer_ctx, dx_.data(), dtmp_.data());
      NormBackward(L.norm1, x, dtmp_.data(), dtmp2_.data(), N);
      AddInto(dx_.data(), dx_.data(), dtmp2_.data(), ND);  // d x
    } else {
      // out = N2(mid + C(mid)); mid = N1(x + M(x))
      NormBackward(L.norm2, L.sum2.data(), dx_.data(), dtmp2_.data(), N);  // d sum2
      L.channel->Backward(*L.channel_ctx, dtmp2_.data(), dtmp_.data());
      AddInto(dtmp2_.data(), dtmp2_.data(), dtmp_.data(), ND);             // d mid
      NormBackward(L.norm1, L.sum1.data(), dtmp2_.data(), dx_.data(), N);  // d sum1
      L.mixer->Backward(*L.mixer_ctx, dx_.data(), dtmp_.data());
      AddInto(dx_.data(), dx_.data(), dtmp_.data(), ND);  // d x
    }
  }
  EmbedBackward(dx_.data());
}

std::unique_ptr<LanguageModel::DecodeState> LanguageModel::NewDecodeState(int B) const {
  auto s = std::make_unique<DecodeState>();
  for (const auto& l : layers_) {
    s->mixer.push_back(l.mixer->NewState(B));
    s->channel.push_back(l.channel->NewState(B));
  }
  return s;
}

std::unique_ptr<LanguageModel::DecodeState> LanguageModel::CloneDecodeState(const DecodeState& state) {
  auto s = std::make_unique<DecodeState>();
  for (const auto& m : state.mixer) s->mixer.push_back(m->Clone());
  for (const auto& c : state.channel) s->channel.push_back(c->Clone());
  return s;
}

void LanguageModel::Step(const int32_t* tokens, const int32_t* positions, int B, float* logits, DecodeState& state) {
  if (decoder_)
    throw UsageError(
        "step-wise decoding needs the language-model head; this model has MAD's compression decoder, "
        "which reconstructs a whole sequence from its last position");
  const int64_t ND = int64_t(B) * config_.d_model;
  Buffer x(ND), a(ND), norm1_out(ND), mix_out(ND), sum1(ND), mid(ND), norm2_out(ND), ch_out(ND), sum2(ND);
  const BlockBuffers buffers{norm1_out.data(), mix_out.data(), sum1.data(), mid.data(),
                             norm2_out.data(), ch_out.data(),  sum2.data()};
  Norm scratch;  // the layer's norm weights with its own statistics: the layer's stay as Backward needs them
  auto norm = [&](const Norm& n, const float* in, float* out) {
    scratch.weight = n.weight;
    scratch.bias = n.bias;
    NormForward(scratch, in, out, B);
  };
  Embed(tokens, positions, B, x.data());
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    BlockForward(
        pre_norm_, x.data(), x.data(), ND, buffers,
        [&](const float* in, float* out) {
          L.mixer->Step(in, positions, out, *state.mixer[l]);
          AddOffset(L.mix_offset, out, B);
        },
        [&](const float* in, float* out) { L.channel->Step(in, positions, out, *state.channel[l]); },
        [&](int k, const float* in, float* out) { norm(k == 1 ? L.norm1 : L.norm2, in, out); });
  }
  if (pre_norm_) {
    norm(final_norm_, x.data(), a.data());
    x.swap(a);
  }
  Head(x.data(), logits, B);
}

}  // namespace mixlab
