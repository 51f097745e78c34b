// The CUDA backend's small kernels (see forward_ops.hpp): memory-bound
// elementwise and row kernels, the non-finite flag, and a plain one-warp-per-query attention for
// head dimensions outside the flash kernel's {64, 128}, with its distance sums (exact fixed-point
// integer atomics per pair: fixed_point.hpp, so the sums are bitwise reproducible).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backend/query_noise_value.hpp"

#include "kernels/forward_ops.hpp"
#include "kernels/ops/check.cuh"
#include "kernels/ops/fixed_point.cuh"
#include "kernels/ops/rope_query.cuh"

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

// A RowCheck of the block's row (every thread of the block calls it): `bad`
// whether any element the thread read was not finite.
__device__ void check_row(const RowCheck& check, unsigned long long row, bool bad) {
  if (check.flag && __syncthreads_or(bad) && threadIdx.x == 0) atomicMin(check.flag, check.base + row);
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

__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(float x) { return x; }

template <class W>
__global__ void embed_kernel(const W* __restrict__ table, const std::int32_t* __restrict__ tokens,
                             float* __restrict__ x, int cols, float scale) {
  const W* src = table + static_cast<std::size_t>(tokens[blockIdx.x]) * cols;
  float* dst = x + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = scale == 1.f ? to_float(src[i]) : to_float(src[i]) * scale;
}

// One block per (row, segment): blockIdx.x = row * segments + segment, so the
// segment starts at blockIdx.x * seg in x and its weights at segment *
// weight_stride. Statistics in fp32: the mean (layer_norm only), then the sum
// of squared deviations in a second pass over the (cached) segment; no
// fast-math. Out = bf16 writes norm(x); Add writes out += scale * norm(x) (fp32).
// x and y may alias (qk-norm in place): the statistics' reads all precede
// the block_sum barrier, and the last pass reads and writes only the
// thread's own elements.
template <class In, class Out, bool Add>
__global__ void norm_kernel(const In* x, Out* y, int seg, int segments, NormParams p, float scale,
                            RowCheck check = {}) {
  __shared__ float shared[kRowThreads / 32];
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * seg;
  const int segment = static_cast<int>(blockIdx.x % static_cast<unsigned>(segments));
  const float* w = p.weight + static_cast<std::size_t>(segment) * p.weight_stride;
  const float* b = p.bias ? p.bias + static_cast<std::size_t>(segment) * p.weight_stride : nullptr;
  float mean = 0.f;
  if (p.center) {
    float sum = 0.f;
    for (int i = threadIdx.x; i < seg; i += blockDim.x) sum += to_float(x[base + i]);
    mean = block_sum(sum, shared) / static_cast<float>(seg);
    __syncthreads();  // every thread has read `shared` before the next block_sum writes it
  }
  float sq = 0.f;
  bool bad = false;
  for (int i = threadIdx.x; i < seg; i += blockDim.x) {
    const float xi = to_float(x[base + i]);
    bad |= !isfinite(xi);
    const float v = xi - mean;
    sq += v * v;
  }
  check_row(check, blockIdx.x / static_cast<unsigned>(segments), bad);
  const float inv = rsqrtf(block_sum(sq, shared) / static_cast<float>(seg) + p.eps);
  for (int i = threadIdx.x; i < seg; i += blockDim.x) {
    float v = (to_float(x[base + i]) - mean) * inv * w[i];
    if (b) v += b[i];
    if constexpr (Add) y[base + i] += scale * v;
    else y[base + i] = __float2bfloat16(v);
  }
}

// x[i] += scale * y[i] (no norm): a branch output times the residual multiplier.
__global__ void scaled_add_kernel(const float* __restrict__ y, float* __restrict__ x, std::size_t n, float scale) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    x[i] += scale * y[i];
}

// The activations of model::Activation in fp32 (erff, tanhf, expf: full precision).
__device__ __forceinline__ float activate(float x, MlpActivation act) {
  switch (act) {
    case MlpActivation::silu: return x / (1.f + expf(-x));
    case MlpActivation::gelu_erf: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case MlpActivation::gelu_tanh: break;
  }
  const float k = 0.79788456080286536f;  // sqrt(2 / pi)
  return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
}

__global__ void mlp_activation_kernel(const bf16* __restrict__ a, const bf16* __restrict__ b, bf16* __restrict__ out,
                                      std::size_t n, MlpActivation act) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float v = activate(__bfloat162float(a[i]), act);
    out[i] = __float2bfloat16(b ? v * __bfloat162float(b[i]) : v);
  }
}

__global__ void softcap_kernel(float* __restrict__ x, std::size_t n, float cap) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}

// Threads per norm block: the segment rounded up to whole warps, at most kRowThreads.
unsigned norm_threads(int seg) { return static_cast<unsigned>(std::min(kRowThreads, (seg + 31) / 32 * 32)); }

// One block per row; float4 reads of x and w when cols % 4 == 0 (rows of the
// backend's buffers are then 16-byte aligned), four bf16 written at once.
__global__ void rmsnorm_f32_kernel(const float* __restrict__ x, const float* __restrict__ w, bf16* __restrict__ y,
                                   int cols, float eps, RowCheck check) {
  __shared__ float shared[kRowThreads / 32];
  const float* row = x + static_cast<std::size_t>(blockIdx.x) * cols;
  bf16* out = y + static_cast<std::size_t>(blockIdx.x) * cols;
  bool bad = false;
  if (cols % 4 == 0) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
    float sq = 0.f;
    for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
      const float4 v = row4[i];
      bad |= !(isfinite(v.x) && isfinite(v.y) && isfinite(v.z) && isfinite(v.w));
      sq += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    check_row(check, blockIdx.x, bad);
    const float inv = rsqrtf(block_sum(sq, shared) / static_cast<float>(cols) + eps);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
      const float4 v = row4[i], g = w4[i];
      __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(out + 4 * i);
      o[0] = __floats2bfloat162_rn(v.x * inv * g.x, v.y * inv * g.y);
      o[1] = __floats2bfloat162_rn(v.z * inv * g.z, v.w * inv * g.w);
    }
    return;
  }
  float sq = 0.f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    bad |= !isfinite(row[i]);
    sq += row[i] * row[i];
  }
  check_row(check, blockIdx.x, bad);
  const float inv = rsqrtf(block_sum(sq, shared) / static_cast<float>(cols) + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[i] = __float2bfloat16(row[i] * inv * w[i]);
}

__global__ void broadcast_rows_kernel(bf16* __restrict__ y, const float* __restrict__ b, int cols) {
  bf16* row = y + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) row[i] = __float2bfloat16(b[i]);
}

__global__ void add_rows_kernel(float* __restrict__ x, const float* __restrict__ b, int cols) {
  float* row = x + static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) row[i] += b[i];
}

// Grid-stride over x; each thread's first bad element is its smallest row
// (indices grow), the block's minimum goes to *flag in one atomic.
__global__ void flag_non_finite_kernel(const float* __restrict__ x, std::size_t n, int cols, unsigned long long base,
                                       unsigned long long* __restrict__ flag) {
  unsigned long long first = kNoNonFinite;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    if (!isfinite(x[i])) {
      first = base + i / static_cast<std::size_t>(cols);
      break;
    }
  if (!__syncthreads_or(first != kNoNonFinite)) return;
  __shared__ unsigned long long block_first;
  if (threadIdx.x == 0) block_first = kNoNonFinite;
  __syncthreads();
  if (first != kNoNonFinite) atomicMin(&block_first, first);
  __syncthreads();
  if (threadIdx.x == 0) atomicMin(flag, block_first);
}

template <class W>
__global__ void convert_kernel(const bf16* __restrict__ x, W* __restrict__ y, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<W, float>) y[i] = __bfloat162float(x[i]);
    else y[i] = __float2half_rn(__bfloat162float(x[i]));
  }
}

__global__ void round_rows_kernel(const float* __restrict__ y32, const float* __restrict__ b, bf16* __restrict__ y,
                                  int cols) {
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) y[base + i] = __float2bfloat16(y32[base + i] + (b ? b[i] : 0.f));
}

// One thread per element (t, a, i) of out [T, A*d].
__global__ void rotate_queries_kernel(const bf16* __restrict__ q, const float* __restrict__ cos,
                                      const float* __restrict__ sin, int pairs, AttentionShape shape,
                                      NoiseParams noise, bool noisy, int layer, bf16* __restrict__ out) {
  const int d = shape.head_dim, A = shape.attention_heads;
  const std::size_t n = static_cast<std::size_t>(shape.T) * A * d;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(e % d), a = static_cast<int>((e / d) % A);
    const long t = static_cast<long>(e / (static_cast<std::size_t>(d) * A));
    const bool imaginary = shape.imaginary_twins && (a & 1);
    const int query_head = shape.imaginary_twins ? a >> 1 : a;
    const bf16* row = q + (static_cast<std::size_t>(t) * shape.query_heads + query_head) * d;
    const std::size_t table_row = static_cast<std::size_t>(t) * pairs;
    float value = rotated_query_dim(row, i, pairs, cos + table_row, sin + table_row,
                              imaginary ? QueryRotation::imaginary : QueryRotation::real);
    if (noisy && noise.imaginary == imaginary)
      value += static_cast<float>(noise.std * backend::query_noise_value(noise.seed, layer, noise.first_head + a, t, i));
    out[e] = __float2bfloat16(value);
  }
}

// The score of a dot product as the CPU backend forms it: dot * scale, then
// cap * tanh(score / cap) when cap > 0 (fp32, tanhf).
__device__ __forceinline__ float capped_score(float dot, float scale, float cap) {
  const float score = dot * scale;
  return cap > 0.f ? cap * tanhf(score / cap) : score;
}
// The first key query t sees under a window (0: all keys up to t).
__device__ __forceinline__ int first_visible_key(int t, int window) { return window > 0 ? max(0, t - window + 1) : 0; }

constexpr int kScoreKeys = 128;  // keys per block of attention_scores_kernel

// Block = (keys kScoreKeys * blockIdx.x .., query row blockIdx.y); a thread per key.
__global__ void attention_scores_kernel(QuerySource query, const float* __restrict__ cos,
                                        const float* __restrict__ sin, int pairs, bool round_query,
                                        const bf16* __restrict__ k,
                                        int kv_cols, int kv_column, int d, long q_begin, long k_end, float scale,
                                        float cap, int window, float* __restrict__ scores) {
  extern __shared__ float rotated[];  // [d]
  const long t = q_begin + blockIdx.y;
  const bf16* row = query.q + static_cast<std::size_t>(t) * query.cols + query.column;
  const std::size_t table_row = static_cast<std::size_t>(t) * pairs;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float r = rotated_query_dim(row, i, pairs, cos + table_row, sin + table_row, query.rotation);
    rotated[i] = round_query ? __bfloat162float(__float2bfloat16(r)) : r;
  }
  __syncthreads();
  const long key = static_cast<long>(blockIdx.x) * kScoreKeys + threadIdx.x;
  if (key >= k_end) return;
  float score = -INFINITY;
  if (key <= t && (window == 0 || t - key < window)) {
    const bf16* krow = k + static_cast<std::size_t>(key) * kv_cols + kv_column;
    float dot = 0.f;
    for (int i = 0; i < d; ++i) dot += rotated[i] * __bfloat162float(krow[i]);
    score = capped_score(dot, scale, cap);
  }
  scores[static_cast<std::size_t>(blockIdx.y) * k_end + key] = score;
}

__global__ void softmax_rows_kernel(const float* __restrict__ scores, float* __restrict__ probs, long q_begin,
                                    long k_end, int window) {
  __shared__ float maxes[kRowThreads / 32];
  __shared__ double sums[kRowThreads / 32];
  const std::size_t base = static_cast<std::size_t>(blockIdx.x) * k_end;
  // Keys first .. visible - 1 (the query's own position) are visible.
  const long visible = q_begin + blockIdx.x + 1, first = window > 0 ? max(0L, visible - window) : 0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  float m = -INFINITY;
  for (long j = first + threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, scores[base + j]);
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if (lane == 0) maxes[warp] = m;
  __syncthreads();
  for (int w = 0; w < warps; ++w) m = fmaxf(m, maxes[w]);
  double sum = 0;
  for (long j = first + threadIdx.x; j < visible; j += blockDim.x) sum += expf(scores[base + j] - m);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) sums[warp] = sum;
  __syncthreads();
  double total = 0;
  for (int w = 0; w < warps; ++w) total += sums[w];
  const float inv = static_cast<float>(1.0 / total);
  for (long j = threadIdx.x; j < k_end; j += blockDim.x)
    probs[base + j] = j >= first && j < visible ? expf(scores[base + j] - m) * inv : 0.f;
}

constexpr int kNllThreads = 512;

// Online (max, sum of exp(x - max)) of one thread over some logits.
struct LseState {
  float m = -INFINITY, s = 0.f;
  __device__ void add4(float a, float b, float c, float d) {
    const float top = fmaxf(fmaxf(a, b), fmaxf(c, d));
    if (top > m) {
      s *= expf(m - top);
      m = top;
    }
    s += (expf(a - m) + expf(b - m)) + (expf(c - m) + expf(d - m));
  }
  __device__ void add(float x) {
    if (x > m) {
      s = s * expf(m - x) + 1.f;
      m = x;
    } else {
      s += expf(x - m);
    }
  }
};

// One block per row. Rows are read as float4 (16-byte aligned when V % 4 == 0,
// as for Llama vocabularies), two loads in flight per thread, so the kernel
// runs at memory bandwidth rather than at one 4-byte load per thread in flight.
__global__ void next_token_nll_kernel(const float* __restrict__ logits, int V, const std::int32_t* __restrict__ targets,
                                      float* __restrict__ nll) {
  __shared__ float ms[kNllThreads / 32], ss[kNllThreads / 32];
  const float* row = logits + static_cast<std::size_t>(blockIdx.x) * V;
  LseState st;
  const bool aligned = V % 4 == 0 && reinterpret_cast<std::uintptr_t>(row) % 16 == 0;
  const int quads = aligned ? V / 4 : 0;
  const float4* row4 = reinterpret_cast<const float4*>(row);
  int i = threadIdx.x;
  for (; i + static_cast<int>(blockDim.x) < quads; i += 2 * blockDim.x) {
    const float4 x = row4[i], y = row4[i + blockDim.x];
    st.add4(x.x, x.y, x.z, x.w);
    st.add4(y.x, y.y, y.z, y.w);
  }
  if (i < quads) {
    const float4 x = row4[i];
    st.add4(x.x, x.y, x.z, x.w);
  }
  for (int v = 4 * quads + threadIdx.x; v < V; v += blockDim.x) st.add(row[v]);
  float m = st.m, s = st.s;
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

// The plain kernels' prologue (one warp): the rotated query of attention head
// a at position t into query[0 .. d-1] (fp32, or rounded to bf16 with
// round_query); returns the head's KV head.
__device__ int stage_query_row(const bf16* __restrict__ q, const float* __restrict__ cos,
                               const float* __restrict__ sin, int pairs, const AttentionShape& shape, int t, int a,
                               bool round_query, float* query) {
  const int d = shape.head_dim;
  const int query_head = shape.imaginary_twins ? a / 2 : a;
  const bool imaginary = shape.imaginary_twins && (a % 2 == 1);
  const bf16* qrow = q + (static_cast<std::size_t>(t) * shape.query_heads + query_head) * d;
  const std::size_t table_row = static_cast<std::size_t>(t) * pairs;
  for (int i = threadIdx.x % 32; i < d; i += 32) {
    const float r = rotated_query_dim(qrow, i, pairs, cos + table_row, sin + table_row,
                                      imaginary ? QueryRotation::imaginary : QueryRotation::real);
    query[i] = round_query ? __bfloat162float(__float2bfloat16(r)) : r;
  }
  __syncwarp();
  return a / (shape.attention_heads / shape.kv_heads);
}

// Block = one warp for query position blockIdx.x, attention head blockIdx.y.
__global__ void attention_simple_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                        const bf16* __restrict__ v, const float* __restrict__ cos,
                                        const float* __restrict__ sin, int pairs, AttentionShape shape,
                                        bf16* __restrict__ out, float* __restrict__ lse) {
  __shared__ float query[kMaxHeadDim];
  const int t = blockIdx.x, a = blockIdx.y, lane = threadIdx.x, d = shape.head_dim;
  const int kv_head = stage_query_row(q, cos, sin, pairs, shape, t, a, false, query);
  const float scale = static_cast<float>(shape.scale), cap = static_cast<float>(shape.softcap);  // scale set by the host
  float acc[kMaxHeadDim / 32] = {};
  float m = -INFINITY, l = 0.f;
  const std::size_t kv_stride = static_cast<std::size_t>(shape.kv_heads) * d;
  for (int s = first_visible_key(t, shape.window); s <= t; ++s) {
    const bf16* krow = k + s * kv_stride + static_cast<std::size_t>(kv_head) * d;
    float dot = 0.f;
    for (int i = lane; i < d; i += 32) dot += query[i] * __bfloat162float(krow[i]);
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float score = capped_score(dot, scale, cap), m_new = fmaxf(m, score);
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

// Block = one warp for query position blockIdx.x, attention head blockIdx.y.
// Each pair's p and score (fp32) go straight into the slot's fixed-point sums;
// the row's p (t - s) and entropy are fp64 per lane, added up with shuffles
// (a fixed order), one fixed-point add per row.
__global__ void distance_sums_simple_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                                            const float* __restrict__ cos, const float* __restrict__ sin, int pairs,
                                            AttentionShape shape, const float* __restrict__ lse, bool round_query,
                                            DistanceSumsOut out, SumsLimits limits) {
  __shared__ float query[kMaxHeadDim];
  const int t = blockIdx.x, a = blockIdx.y, lane = threadIdx.x, d = shape.head_dim;
  const int kv_head = stage_query_row(q, cos, sin, pairs, shape, t, a, round_query, query);
  const float scale = static_cast<float>(shape.scale), cap = static_cast<float>(shape.softcap);  // scale set by the host
  const float row_lse = lse[static_cast<std::size_t>(a) * shape.T + t];
  const std::size_t kv_stride = static_cast<std::size_t>(shape.kv_heads) * d;
  Fixed128* prob_sum = out.prob_sum + static_cast<std::size_t>(a) * out.slots;
  Fixed128* score_sum = out.score_sum + static_cast<std::size_t>(a) * out.slots;
  const unsigned prob_bit = overflow_bit(SumsSite::simple, SumsQuantity::prob);
  const unsigned score_bit = overflow_bit(SumsSite::simple, SumsQuantity::score);
  const unsigned stats_bit = overflow_bit(SumsSite::simple, SumsQuantity::stats);
  double distance = 0, entropy = 0;
  for (int s = first_visible_key(t, shape.window) + lane; s <= t; s += 32) {
    const bf16* krow = k + s * kv_stride + static_cast<std::size_t>(kv_head) * d;
    float dot = 0.f;
    for (int i = 0; i < d; ++i) dot += query[i] * __bfloat162float(krow[i]);
    const float score = capped_score(dot, scale, cap), p = expf(score - row_lse);
    const int slot = out.slot_of_distance[t - s];
    fixed::add_probability(prob_sum + slot, p, out.overflow, prob_bit);
    fixed::add_signed<kScoreFraction>(score_sum + slot, score, limits.score, out.overflow, score_bit);
    distance += static_cast<double>(p) * (t - s);
    if (p > 0.f) entropy += static_cast<double>(p) * (row_lse - score);  // -p ln p
  }
  for (int o = 16; o > 0; o >>= 1) {
    distance += __shfl_xor_sync(0xffffffffu, distance, o);
    entropy += __shfl_xor_sync(0xffffffffu, entropy, o);
  }
  if (lane == 0) {
    fixed::add_signed<kStatsFraction>(out.stats + 2 * a, distance, limits.stats, out.overflow, stats_bit);
    fixed::add_signed<kStatsFraction>(out.stats + 2 * a + 1, entropy, limits.stats, out.overflow, stats_bit);
  }
}

unsigned grid_for(std::size_t n) { return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535u * 8)); }

}  // namespace

void embed_rows_f32(const void* table, WeightType type, const std::int32_t* tokens, float* x, int T, int cols,
                    float scale, cudaStream_t stream) {
  switch (type) {
    case WeightType::bf16:
      embed_kernel<<<T, kRowThreads, 0, stream>>>(static_cast<const bf16*>(table), tokens, x, cols, scale);
      break;
    case WeightType::f16:
      embed_kernel<<<T, kRowThreads, 0, stream>>>(static_cast<const __half*>(table), tokens, x, cols, scale);
      break;
    case WeightType::f32:
      embed_kernel<<<T, kRowThreads, 0, stream>>>(static_cast<const float*>(table), tokens, x, cols, scale);
      break;
  }
  cuda_check(cudaGetLastError(), "embed_kernel launch");
}

void rmsnorm_f32_bf16(const float* x, const float* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream,
                      const RowCheck& check) {
  rmsnorm_f32_kernel<<<rows, kRowThreads, 0, stream>>>(x, w, y, cols, eps, check);
  cuda_check(cudaGetLastError(), "rmsnorm_f32_kernel launch");
}

void norm_segments_bf16(const bf16* x, bf16* y, int rows, int cols, int seg, const NormParams& p, cudaStream_t stream) {
  if (seg <= 0 || cols % seg != 0) throw std::runtime_error("norm_segments_bf16: cols is not a multiple of seg");
  const int segments = cols / seg;
  norm_kernel<bf16, bf16, false><<<static_cast<unsigned>(rows) * segments, norm_threads(seg), 0, stream>>>(
      x, y, seg, segments, p, 1.f);
  cuda_check(cudaGetLastError(), "norm_kernel launch");
}

void norm_f32_bf16(const float* x, bf16* y, int rows, int cols, const NormParams& p, cudaStream_t stream,
                   const RowCheck& check) {
  norm_kernel<float, bf16, false><<<rows, norm_threads(cols), 0, stream>>>(x, y, cols, 1, p, 1.f, check);
  cuda_check(cudaGetLastError(), "norm_kernel launch");
}

void norm_add_f32(const float* y, float* x, int rows, int cols, const NormParams* p, float scale, cudaStream_t stream) {
  if (p) {
    norm_kernel<float, float, true><<<rows, norm_threads(cols), 0, stream>>>(y, x, cols, 1, *p, scale);
    cuda_check(cudaGetLastError(), "norm_kernel launch");
    return;
  }
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  scaled_add_kernel<<<grid_for(n), kRowThreads, 0, stream>>>(y, x, n, scale);
  cuda_check(cudaGetLastError(), "scaled_add_kernel launch");
}

void mlp_activation_bf16(const bf16* a, const bf16* b, bf16* out, std::size_t n, MlpActivation act,
                         cudaStream_t stream) {
  mlp_activation_kernel<<<grid_for(n), kRowThreads, 0, stream>>>(a, b, out, n, act);
  cuda_check(cudaGetLastError(), "mlp_activation_kernel launch");
}

void softcap_f32(float* x, std::size_t n, float cap, cudaStream_t stream) {
  softcap_kernel<<<grid_for(n), kRowThreads, 0, stream>>>(x, n, cap);
  cuda_check(cudaGetLastError(), "softcap_kernel launch");
}

void broadcast_rows_bf16(bf16* y, const float* b, int rows, int cols, cudaStream_t stream) {
  broadcast_rows_kernel<<<rows, kRowThreads, 0, stream>>>(y, b, cols);
  cuda_check(cudaGetLastError(), "broadcast_rows_kernel launch");
}

void add_rows_f32(float* x, const float* b, int rows, int cols, cudaStream_t stream) {
  add_rows_kernel<<<rows, kRowThreads, 0, stream>>>(x, b, cols);
  cuda_check(cudaGetLastError(), "add_rows_kernel launch");
}

void flag_non_finite_rows_f32(const float* x, int rows, int cols, unsigned long long base, unsigned long long* flag,
                              cudaStream_t stream) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + kRowThreads - 1) / kRowThreads, 1024));
  flag_non_finite_kernel<<<blocks, kRowThreads, 0, stream>>>(x, n, cols, base, flag);
  cuda_check(cudaGetLastError(), "flag_non_finite_kernel launch");
}

void convert_bf16(const bf16* x, void* y, WeightType type, std::size_t n, cudaStream_t stream) {
  if (type == WeightType::f32)
    convert_kernel<<<grid_for(n), 256, 0, stream>>>(x, static_cast<float*>(y), n);
  else if (type == WeightType::f16)
    convert_kernel<<<grid_for(n), 256, 0, stream>>>(x, static_cast<__half*>(y), n);
  else
    throw std::runtime_error("convert_bf16: bf16 needs no conversion");
  cuda_check(cudaGetLastError(), "convert_kernel launch");
}

void round_rows_bf16(const float* y32, const float* b, bf16* y, int rows, int cols, cudaStream_t stream) {
  round_rows_kernel<<<rows, kRowThreads, 0, stream>>>(y32, b, y, cols);
  cuda_check(cudaGetLastError(), "round_rows_kernel launch");
}

void rotate_queries_bf16(const bf16* q, const DeviceRopeTable& rope, const AttentionShape& shape,
                         const NoiseParams* noise, int layer, bf16* out, cudaStream_t stream) {
  if (rope.positions < shape.T || 2 * rope.pairs > shape.head_dim)
    throw std::runtime_error("rotate_queries_bf16: rope table too small");
  const std::size_t n = static_cast<std::size_t>(shape.T) * shape.attention_heads * shape.head_dim;
  rotate_queries_kernel<<<grid_for(n), 256, 0, stream>>>(q, rope.cos, rope.sin, rope.pairs, shape,
                                                         noise ? *noise : NoiseParams{}, noise != nullptr, layer, out);
  cuda_check(cudaGetLastError(), "rotate_queries_kernel launch");
}

void attention_scores_f32(const QuerySource& query, const DeviceRopeTable& rope, bool round_query, const bf16* k,
                          int kv_cols, int kv_column, const AttentionShape& shape, long q_begin, long rows, long k_end,
                          float* scores, cudaStream_t stream) {
  const int head_dim = shape.head_dim;
  if (rows <= 0 || rows > 65535 || q_begin + rows > k_end || rope.positions < k_end)
    throw std::runtime_error("attention_scores_f32: bad block");
  const dim3 grid(static_cast<unsigned>((k_end + kScoreKeys - 1) / kScoreKeys), static_cast<unsigned>(rows));
  attention_scores_kernel<<<grid, kScoreKeys, head_dim * sizeof(float), stream>>>(
      query, rope.cos, rope.sin, rope.pairs, round_query, k, kv_cols, kv_column, head_dim, q_begin, k_end,
      static_cast<float>(attention_scale(shape)), static_cast<float>(shape.softcap), shape.window, scores);
  cuda_check(cudaGetLastError(), "attention_scores_kernel launch");
}

void softmax_rows_f32(const float* scores, float* probs, long q_begin, long rows, long k_end, int window,
                      cudaStream_t stream) {
  softmax_rows_kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(scores, probs, q_begin, k_end, window);
  cuda_check(cudaGetLastError(), "softmax_rows_kernel launch");
}

void next_token_nll_f32(const float* logits, int rows, int V, const std::int32_t* targets, float* nll,
                        cudaStream_t stream) {
  next_token_nll_kernel<<<rows, kNllThreads, 0, stream>>>(logits, V, targets, nll);
  cuda_check(cudaGetLastError(), "next_token_nll_kernel launch");
}

void attention_simple_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                           const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream) {
  if (shape.head_dim % 2 != 0 || shape.head_dim > kMaxHeadDim)
    throw std::runtime_error("attention_simple_bf16: head_dim must be even and <= 256, got " +
                             std::to_string(shape.head_dim));
  AttentionShape resolved = shape;
  resolved.scale = attention_scale(shape);
  attention_simple_kernel<<<dim3(shape.T, shape.attention_heads), 32, 0, stream>>>(q, k, v, rope.cos, rope.sin,
                                                                                   rope.pairs, resolved, out, lse);
  cuda_check(cudaGetLastError(), "attention_simple_kernel launch");
}

void attention_distance_sums_simple_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                         const AttentionShape& shape, const float* lse, bool round_query,
                                         const DistanceSumsOut& out, cudaStream_t stream) {
  if (shape.head_dim % 2 != 0 || shape.head_dim > kMaxHeadDim)
    throw std::runtime_error("attention_distance_sums_simple_bf16: head_dim must be even and <= 256, got " +
                             std::to_string(shape.head_dim));
  if (out.prob_sum == nullptr || out.score_sum == nullptr || out.stats == nullptr || out.overflow == nullptr)
    throw std::runtime_error(
        "attention_distance_sums_simple_bf16: prob_sum, score_sum, stats and overflow must be set");
  AttentionShape resolved = shape;
  resolved.scale = attention_scale(shape);
  distance_sums_simple_kernel<<<dim3(shape.T, shape.attention_heads), 32, 0, stream>>>(
      q, k, rope.cos, rope.sin, rope.pairs, resolved, lse, round_query, out, sums_limits(shape.T));
  cuda_check(cudaGetLastError(), "distance_sums_simple_kernel launch");
}

}  // namespace ropescope::kernels
