// The CUDA backend's small kernels (see forward_ops.hpp): memory-bound
// elementwise and row kernels, and a plain one-warp-per-query attention for
// head dimensions outside the flash kernel's {64, 128}.
#include <cmath>

#include "kernels/forward_ops.hpp"
#include "kernels/ops/check.cuh"

namespace ropescope::kernels {

namespace {

constexpr int kRowThreads = 256;

__device__ float block_sum(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += shared[w];
  return total;
}

// (max, sum of exp(x - max)) pairs combined.
__device__ void lse_merge(float& m, float& s, float m2, float s2) {
  if (m2 == -INFINITY) return;
  if (m == -INFINITY) {
    m = m2;
    s = s2;
    return;
  }
  const float mm = fmaxf(m, m2);
  s = s * expf(m - mm) + s2 * expf(m2 - mm);
  m = mm;
}

__global__ void embed_kernel(const bf16* __restrict__ table, const std::int32_t* __restrict__ tokens,
                             float* __restrict__ x, int cols) {
  const bf16* src = table + static_cast<std::size_t>(tokens[blockIdx.x]) * cols;
  float* dst = x + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

__global__ void rmsnorm_f32_kernel(const float* __restrict__ x, const bf16* __restrict__ w, bf16* __restrict__ y,
                                   int cols, float eps) {
  __shared__ float shared[kRowThreads / 32];
  const float* row = x + static_cast<std::size_t>(blockIdx.x) * cols;
  float sq = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) sq += row[i] * row[i];
  const float inv = rsqrtf(block_sum(sq, shared) / static_cast<float>(cols) + eps);
  bf16* out = y + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[i] = __float2bfloat16(row[i] * inv * __bfloat162float(w[i]));
}

__global__ void broadcast_rows_kernel(bf16* __restrict__ y, const bf16* __restrict__ b, int cols) {
  bf16* row = y + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) row[i] = b[i];
}

__global__ void add_rows_kernel(float* __restrict__ x, const bf16* __restrict__ b, int cols) {
  float* row = x + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) row[i] += __bfloat162float(b[i]);
}

__global__ void next_token_nll_kernel(const float* __restrict__ logits, int V, const std::int32_t* __restrict__ targets,
                                      float* __restrict__ nll) {
  __shared__ float ms[kRowThreads / 32], ss[kRowThreads / 32];
  const float* row = logits + static_cast<std::size_t>(blockIdx.x) * V;
  float m = -INFINITY, s = 0.f;
  for (int v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = row[v];
    if (x > m) {
      s = s * expf(m - x) + 1.f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
  for (int o = 16; o > 0; o >>= 1) lse_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    ms[warp] = m;
    ss[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float M = ms[0], S = ss[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) lse_merge(M, S, ms[w], ss[w]);
    nll[blockIdx.x] = M + logf(S) - row[targets[blockIdx.x]];
  }
}

constexpr int kMaxHeadDim = 256;

// Block = one warp for query position blockIdx.x, attention head blockIdx.y.
__global__ void attention_simple_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                        const bf16* __restrict__ v, const float* __restrict__ cos,
                                        const float* __restrict__ sin, int pairs, AttentionShape shape,
                                        bf16* __restrict__ out, float* __restrict__ lse) {
  __shared__ float query[kMaxHeadDim];
  const int t = blockIdx.x, a = blockIdx.y, lane = threadIdx.x, d = shape.head_dim;
  const int query_head = shape.imaginary_twins ? a / 2 : a;
  const bool imaginary = shape.imaginary_twins && (a % 2 == 1);
  const int kv_head = a / (shape.attention_heads / shape.kv_heads);
  const bf16* qrow = q + (static_cast<std::size_t>(t) * shape.query_heads + query_head) * d;
  for (int i = lane; i < d; i += 32) {
    float r = __bfloat162float(qrow[i]);
    if (i < 2 * pairs) {
      const int n = i < pairs ? i : i - pairs;
      const float c = cos[static_cast<std::size_t>(t) * pairs + n], s = sin[static_cast<std::size_t>(t) * pairs + n];
      const float x0 = __bfloat162float(qrow[n]), x1 = __bfloat162float(qrow[n + pairs]);
      if (i < pairs) r = imaginary ? x0 * s + x1 * c : x0 * c - x1 * s;
      else r = imaginary ? x1 * s - x0 * c : x1 * c + x0 * s;
    }
    query[i] = r;
  }
  __syncwarp();
  const float scale = rsqrtf(static_cast<float>(d));
  float acc[kMaxHeadDim / 32] = {};
  float m = -INFINITY, l = 0.f;
  const std::size_t kv_stride = static_cast<std::size_t>(shape.kv_heads) * d;
  for (int s = 0; s <= t; ++s) {
    const bf16* krow = k + s * kv_stride + static_cast<std::size_t>(kv_head) * d;
    float dot = 0.f;
    for (int i = lane; i < d; i += 32) dot += query[i] * __bfloat162float(krow[i]);
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float score = dot * scale, m_new = fmaxf(m, score);
    const float correction = expf(m - m_new), p = expf(score - m_new);
    l = l * correction + p;
    m = m_new;
    const bf16* vrow = v + s * kv_stride + static_cast<std::size_t>(kv_head) * d;
    for (int i = lane, j = 0; i < d; i += 32, ++j) acc[j] = acc[j] * correction + p * __bfloat162float(vrow[i]);
  }
  bf16* orow = out + (static_cast<std::size_t>(t) * shape.attention_heads + a) * d;
  for (int i = lane, j = 0; i < d; i += 32, ++j) orow[i] = __float2bfloat16(acc[j] / l);
  if (lane == 0) lse[static_cast<std::size_t>(a) * shape.T + t] = m + logf(l);
}

}  // namespace

void embed_rows_f32(const bf16* table, const std::int32_t* tokens, float* x, int T, int cols, cudaStream_t stream) {
  embed_kernel<<<T, kRowThreads, 0, stream>>>(table, tokens, x, cols);
  cuda_check(cudaGetLastError(), "embed_kernel launch");
}

void rmsnorm_f32_bf16(const float* x, const bf16* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream) {
  rmsnorm_f32_kernel<<<rows, kRowThreads, 0, stream>>>(x, w, y, cols, eps);
  cuda_check(cudaGetLastError(), "rmsnorm_f32_kernel launch");
}

void broadcast_rows_bf16(bf16* y, const bf16* b, int rows, int cols, cudaStream_t stream) {
  broadcast_rows_kernel<<<rows, kRowThreads, 0, stream>>>(y, b, cols);
  cuda_check(cudaGetLastError(), "broadcast_rows_kernel launch");
}

void add_rows_f32(float* x, const bf16* b, int rows, int cols, cudaStream_t stream) {
  add_rows_kernel<<<rows, kRowThreads, 0, stream>>>(x, b, cols);
  cuda_check(cudaGetLastError(), "add_rows_kernel launch");
}

void next_token_nll_f32(const float* logits, int rows, int V, const std::int32_t* targets, float* nll,
                        cudaStream_t stream) {
  next_token_nll_kernel<<<rows, kRowThreads, 0, stream>>>(logits, V, targets, nll);
  cuda_check(cudaGetLastError(), "next_token_nll_kernel launch");
}

void attention_simple_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                           const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream) {
  if (shape.head_dim % 2 != 0 || shape.head_dim > kMaxHeadDim)
    throw std::runtime_error("attention_simple_bf16: head_dim must be even and <= 256, got " +
                             std::to_string(shape.head_dim));
  attention_simple_kernel<<<dim3(shape.T, shape.attention_heads), 32, 0, stream>>>(q, k, v, rope.cos, rope.sin,
                                                                                   rope.pairs, shape, out, lse);
  cuda_check(cudaGetLastError(), "attention_simple_kernel launch");
}

}  // namespace ropescope::kernels
