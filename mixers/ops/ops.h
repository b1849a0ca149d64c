// Elementwise and row-wise ops as forward/backward pairs (llm.c style). Every backward writes (or, where
// it says so, accumulates) the input gradient and accumulates parameter gradients.
#pragma once
#include <cstdint>
#include <vector>

namespace mixlab {

// ---- normalisation over the last dim. x, y are (N, D); gamma, beta are (D); mean/rstd are (N).
void LayerNormForward(const float* x, const float* gamma, const float* beta, float* y, float* mean, float* rstd,
                      int64_t n, int64_t d, float eps = 1e-5f);
void LayerNormBackward(const float* x, const float* gamma, const float* mean, const float* rstd, const float* dy,
                       float* dx, float* dgamma, float* dbeta, int64_t n, int64_t d);
void RMSNormForward(const float* x, const float* gamma, float* y, float* rstd, int64_t n, int64_t d, float eps = 1e-5f);
void RMSNormBackward(const float* x, const float* gamma, const float* rstd, const float* dy, float* dx, float* dgamma,
                     int64_t n, int64_t d);

// ---- activations, elementwise over n values.
void GeluForward(const float* x, float* y, int64_t n);  // tanh approximation (GPT-2)
void GeluBackward(const float* x, const float* dy, float* dx, int64_t n);
// The bias and GELU after a linear layer, in one parallel pass: h (rows, cols) += bias (in place: backward needs the
// pre-activation), a = gelu(h). Backward: dh = gelu'(h) * da (dh may be da) and dbias += the column sums of dh.
void BiasGeluForward(float* h, const float* bias, float* a, int64_t rows, int64_t cols);
void BiasGeluBackward(const float* h, const float* da, float* dh, float* dbias, int64_t rows, int64_t cols);
// SwiGLU: h is (N, 2F) = [a | b]; y (N, F) = silu(a) * b.
void SwiGLUForward(const float* h, float* y, int64_t n, int64_t f);
void SwiGLUBackward(const float* h, const float* dy, float* dh, int64_t n, int64_t f);

// ---- softmax over the last dim of (N, D), in place allowed. Backward: dx = y * (dy - <dy, y>).
void SoftmaxForward(const float* x, float* y, int64_t n, int64_t d);
void SoftmaxBackward(const float* y, const float* dy, float* dx, int64_t n, int64_t d);

// ---- embedding lookup. tokens (N), table (V, D), y (N, D); backward accumulates into dtable.
void EmbeddingForward(const int32_t* tokens, const float* table, float* y, int64_t n, int64_t d);
void EmbeddingBackward(const int32_t* tokens, const float* dy, float* dtable, int64_t n, int64_t d);

// ---- cross-entropy with a loss mask. logits (N, V), targets (N), mask (N) in {0,1} or weights.
// Returns sum(mask * -log p[target]) / normalizer and writes probs (N, V); the normalizer defaults (0) to
// MaskTotal(mask, n). A micro-batch passes the whole batch's MaskTotal, so its loss and gradient are its exact share.
// Backward writes dlogits = mask * (probs - onehot) / normalizer.
float MaskTotal(const float* mask, int64_t n);  // max(sum(mask), 1)
float CrossEntropyForward(const float* logits, const int32_t* targets, const float* mask, float* probs, int64_t n,
                          int64_t v, float normalizer = 0);
void CrossEntropyBackward(const float* probs, const int32_t* targets, const float* mask, float* dlogits, int64_t n,
                          int64_t v, float normalizer = 0);

}  // namespace mixlab
