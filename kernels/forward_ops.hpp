// Host API of the small kernels the CUDA backend needs beside kernels/ops/
// (kernels/forward_ops.cu): embedding gather into the fp32 residual stream,
// RMSNorm of an fp32 stream, the other norms (LayerNorm, qk-norm, post norms
// added into the stream), MLP activations, the final logit softcap, bias
// rows, the non-finite check of the residual stream, the chunked next-token
// loss, and a plain attention kernel for head dimensions the flash kernel
// does not take.
// Also the pieces the analyses need: rotated (and noised) queries, and
// materialised score / probability blocks for attention observers.
// Same conventions as ops/ops.hpp: device pointers, row-major [tokens, features],
// launches on `stream`, std::runtime_error on a CUDA error. Plain C++17.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {

// The dtype weights keep on the device: the checkpoint's own (F64 checkpoints
// are held as f32, rounded once).
enum class WeightType { bf16, f16, f32 };

// x[t, :] = float(table[tokens[t], :]) * scale for t < T (ids already checked
// on the host; scale the model's embedding multiplier, 1 for most families).
void embed_rows_f32(const void* table, WeightType type, const std::int32_t* tokens, float* x, int T, int cols,
                    float scale, cudaStream_t stream);

// The non-finite check of flag_non_finite_rows_f32 (below), made by a norm
// that reads the residual stream's rows anyway: *flag = min(*flag, base + r)
// for the first row r of x holding a NaN or an infinity. No check when flag
// is null.
struct RowCheck {
  unsigned long long* flag = nullptr;
  unsigned long long base = 0;
};

// y[t, :] = bf16(x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * w) with x in fp32
// (the residual stream) and w the norm weight in fp32; statistics in fp32,
// one bf16 rounding. `check` flags x's non-finite rows.
void rmsnorm_f32_bf16(const float* x, const float* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream,
                      const RowCheck& check = {});

// A norm as the kernels below take it (model::NormSpec with its weights on the
// device). Segment s of a row (cols / seg of them) is normalised over its own
// seg values and multiplied by weight[s * weight_stride + i] (+ bias, same
// index): weight_stride 0 shares one weight (a residual norm, or Qwen3's
// per-head qk-norm), seg for a weight per head (Cohere, StableLM).
struct NormParams {
  const float* weight = nullptr;  // the multiplier: w, or 1 + w for rms_offset (made so at upload)
  const float* bias = nullptr;    // layer_norm with bias; null otherwise
  int weight_stride = 0;
  bool center = false;            // layer_norm: subtract the mean first
  float eps = 0.f;
};
// y = bf16(norm(x)) per seg-wide segment of x [rows, cols] (bf16, cols % seg
// == 0; y may be x): qk-norm on q or k after their projection. Statistics in
// fp32 (two passes for the mean), one bf16 rounding.
void norm_segments_bf16(const bf16* x, bf16* y, int rows, int cols, int seg, const NormParams& p, cudaStream_t stream);
// y = bf16(norm(x)) per row of the fp32 residual stream x [rows, cols], any
// norm kind (rmsnorm_f32_bf16 is the faster RMS-only path); `check` flags
// x's non-finite rows.
void norm_f32_bf16(const float* x, bf16* y, int rows, int cols, const NormParams& p, cudaStream_t stream,
                   const RowCheck& check = {});
// x += scale * norm(y) per row (both fp32, [rows, cols]); with p null, x +=
// scale * y. A branch output with a post norm (sandwich, post-norm blocks)
// and / or a residual multiplier (Granite), added to the residual stream.
void norm_add_f32(const float* y, float* x, int rows, int cols, const NormParams* p, float scale, cudaStream_t stream);

// The MLP's activation (model::Activation).
enum class MlpActivation { silu, gelu_erf, gelu_tanh };
// out[i] = bf16(act(a[i]) * b[i]) (gated MLP: a the gate, b up), or
// bf16(act(a[i])) with b null (plain MLP); fp32 arithmetic, one rounding.
void mlp_activation_bf16(const bf16* a, const bf16* b, bf16* out, std::size_t n, MlpActivation act,
                         cudaStream_t stream);

// x[i] = cap * tanh(x[i] / cap), i < n (fp32): the final logit softcap (Gemma 2).
void softcap_f32(float* x, std::size_t n, float cap, cudaStream_t stream);

// y[t, :] = bf16(b): a bf16 GEMM with beta = 1 then adds x W^T with one
// rounding (exact for the bf16 biases of bf16 checkpoints).
void broadcast_rows_bf16(bf16* y, const float* b, int rows, int cols, cudaStream_t stream);
// x[t, :] += b (fp32 residual stream).
void add_rows_f32(float* x, const float* b, int rows, int cols, cudaStream_t stream);
// y[i] = x[i] as f16 (exact unless |x| > 65504) or f32 (exact), i < n: the
// bf16 activations as the A operand of an f16 / f32 weight's GEMM.
void convert_bf16(const bf16* x, void* y, WeightType type, std::size_t n, cudaStream_t stream);
// y[t, :] = bf16(y32[t, :] + b) (b may be null): the bf16 output of a GEMM
// that ran in fp32 (f16 / f32 weights), rounded once.
void round_rows_bf16(const float* y32, const float* b, bf16* y, int rows, int cols, cudaStream_t stream);

// Query noise as the kernels take it (backend::QueryNoise).
struct NoiseParams {
  bool imaginary = false;  // the component it applies to
  double std = 0.0;
  std::uint64_t seed = 0;
  int first_head = 0;  // the model's number of head 0 (backend::QueryNoise::first_head)
};

// Materialises the rotated query of every attention head: out [T, A*d] bf16,
// head a the real or imaginary rotation (shape's layout) of its query head,
// plus std * query_noise_value(seed, layer, first_head + a, t, i) on the heads of the
// noise's component when `noise` is given; fp32, one bf16 rounding. The
// attention kernels then take out as pre-rotated queries: shape with
// query_heads = A, no twins, and identity_rope(T) (pairs = 0).
void rotate_queries_bf16(const bf16* q, const DeviceRopeTable& rope, const AttentionShape& shape,
                         const NoiseParams* noise, int layer, bf16* out, cudaStream_t stream);
// A table with no rotated pairs: every dim passes through.
inline DeviceRopeTable identity_rope(long positions) { return DeviceRopeTable{nullptr, nullptr, positions, 0}; }

// How one attention head's queries are read by attention_scores_f32.
struct QuerySource {
  const bf16* q = nullptr;  // [T, cols]
  int cols = 0;
  int column = 0;           // first column of the head's d values
  QueryRotation rotation = QueryRotation::real;
};
// Scaled scores of one head for query rows q_begin .. q_begin+rows-1 against
// keys 0 .. k_end-1: scores [rows, k_end] fp32, -inf after the query. The
// query is rotated in fp32 and, with round_query, rounded to bf16 (as the
// flash kernel stages it; the plain kernel keeps fp32); products with the
// bf16 rotated keys k [T, kv_cols] (column kv_column onwards) summed in fp32,
// then shape's scale and softcap (shape.head_dim is the head's d); -inf also
// before the window of shape.window.
void attention_scores_f32(const QuerySource& query, const DeviceRopeTable& rope, bool round_query, const bf16* k,
                          int kv_cols, int kv_column, const AttentionShape& shape, long q_begin, long rows, long k_end,
                          float* scores, cudaStream_t stream);
// probs[r, :] = softmax of scores[r, first .. q_begin + r] (fp32 exp, sum in
// fp64), first = q_begin + r - window + 1 under a window (else 0); 0 elsewhere.
void softmax_rows_f32(const float* scores, float* probs, long q_begin, long rows, long k_end, int window,
                      cudaStream_t stream);

// Non-finite activations, flagged on the device: *flag = min(*flag, base +
// r) for the first row r of x [rows, cols] (fp32) holding a NaN or an
// infinity; *flag is untouched when every value is finite. The caller resets
// *flag to kNoNonFinite, encodes in `base` where the check is (the backend:
// (2 * layer + branch) * T), and reads *flag back once, at a sync point it
// already has. One coalesced pass over x, one atomic per block at most.
constexpr unsigned long long kNoNonFinite = ~0ull;
void flag_non_finite_rows_f32(const float* x, int rows, int cols, unsigned long long base, unsigned long long* flag,
                              cudaStream_t stream);

// For each row r < rows of logits [rows, V] (fp32): the natural-log
// log-sum-exp minus the target logit, nll[r] = lse - logits[r, targets[r]].
// fp32 online max / sum per thread, combined per row.
void next_token_nll_f32(const float* logits, int rows, int V, const std::int32_t* targets, float* nll,
                        cudaStream_t stream);

// Causal attention with the contract of attention_forward_bf16 (unrotated q,
// rotated k, same layout and outputs, shape's scale, softcap and window) for
// any even head_dim <= 256: one warp
// per (position, head), fp32 scores, online softmax and accumulation in fp32.
// For the small test models (d = 16); the flash kernels serve d = 64, 80, 96, 128, 256.
void attention_simple_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                           const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream);

// attention_distance_sums_bf16 (ops.hpp) for any shape and any number of
// slots: one warp per (position, head), exact fixed-point integer atomics per
// pair (bitwise reproducible, like the tiled kernels). The query is
// rounded to bf16 after rotation when `round_query` (to match an lse from the
// flash kernel), else kept in fp32 (the plain attention kernel's lse).
void attention_distance_sums_simple_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                         const AttentionShape& shape, const float* lse, bool round_query,
                                         const DistanceSumsOut& out, cudaStream_t stream);

}  // namespace ropescope::kernels
