// Host API of the small kernels the CUDA backend needs beside kernels/ops/
// (kernels/forward_ops.cu): embedding gather into the fp32 residual stream,
// RMSNorm of an fp32 stream, bias rows, the chunked next-token loss, and a
// plain attention kernel for head dimensions the flash kernel does not take.
// Same conventions as ops/ops.hpp: device pointers, row-major [tokens, features],
// launches on `stream`, std::runtime_error on a CUDA error. Plain C++17.
#pragma once

#include <cstdint>

#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {

// x[t, :] = float(table[tokens[t], :]) for t < T (ids already checked on the host).
void embed_rows_f32(const bf16* table, const std::int32_t* tokens, float* x, int T, int cols, cudaStream_t stream);

// y[t, :] = bf16(x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * w) with x in fp32
// (the residual stream); statistics in fp32, one bf16 rounding.
void rmsnorm_f32_bf16(const float* x, const bf16* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream);

// y[t, :] = b (bf16): a GEMM with beta = 1 then adds x W^T with one rounding.
void broadcast_rows_bf16(bf16* y, const bf16* b, int rows, int cols, cudaStream_t stream);
// x[t, :] += float(b) (fp32 residual stream).
void add_rows_f32(float* x, const bf16* b, int rows, int cols, cudaStream_t stream);

// For each row r < rows of logits [rows, V] (fp32): the natural-log
// log-sum-exp minus the target logit, nll[r] = lse - logits[r, targets[r]].
// fp32 online max / sum per thread, combined per row.
void next_token_nll_f32(const float* logits, int rows, int V, const std::int32_t* targets, float* nll,
                        cudaStream_t stream);

// Causal attention with the contract of attention_forward_bf16 (unrotated q,
// rotated k, same layout and outputs) for any even head_dim <= 256: one warp
// per (position, head), fp32 scores, online softmax and accumulation in fp32.
// For the small test models (d = 16); the flash kernel serves d = 64 and 128.
void attention_simple_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                           const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream);

}  // namespace ropescope::kernels
