// Host API of the CUDA op kernels (kernels/ops/*.cu): bf16 activations with
// fp32 accumulation. Every function launches on `stream`, checks the launch
// and throws std::runtime_error on a CUDA error. Pointers are device pointers;
// matrices are row-major with tokens as rows, as in the CPU backend.
// Plain C++17 so that both nvcc and the C++20 host code can include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>

namespace ropescope::kernels {

using bf16 = __nv_bfloat16;

// y[t, :] = bf16(x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * w), statistics in fp32.
// cols must be a multiple of 8 (16-byte vector accesses).
void rmsnorm_bf16(const bf16* x, const bf16* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream);

// out[i] = bf16(silu(gate[i]) * up[i]) in fp32, i < n.
void swiglu_bf16(const bf16* gate, const bf16* up, bf16* out, std::size_t n, cudaStream_t stream);

// The cos/sin table of model::make_rope_table (host-computed, exact angles)
// on the device: [positions, pairs] floats each.
struct DeviceRopeTable {
  float* cos = nullptr;
  float* sin = nullptr;
  long positions = 0;
  int pairs = 0;
};
DeviceRopeTable upload_rope_table(const float* cos, const float* sin, long positions, int pairs);
void free_rope_table(DeviceRopeTable& table);

// Rotates every head of k [T, heads * head_dim] in place as a real key
// (HF's k cos + rotate_half(k) sin; dims from 2 * pairs on pass through).
void rope_keys_bf16(bf16* k, int T, int heads, int head_dim, const DeviceRopeTable& rope, cudaStream_t stream);

// Causal attention of one sequence, model/head_layout.hpp's layout.
struct AttentionShape {
  int T = 0;
  int head_dim = 0;         // d: 64 or 128
  int query_heads = 0;      // Q: columns of q are Q * d
  int kv_heads = 0;         // KV: columns of k, v are KV * d
  int attention_heads = 0;  // A: columns of out are A * d; G = A / KV in {1, 2, 4, 8}
  bool imaginary_twins = false;  // RoPE++ (ec, eh): head 2j real, 2j+1 imaginary of query head j (A = 2Q)
};

// q: projected, unrotated queries [T, Q*d]; k: keys already rotated by
// rope_keys_bf16 [T, KV*d]; v [T, KV*d]. The kernel rotates each query (real
// or imaginary) on the fly from q and the table. Writes out [T, A*d] (bf16)
// and the natural-log row log-sum-exp of the scaled scores lse [A, T] (fp32).
void attention_forward_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                            const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream);

}  // namespace ropescope::kernels
