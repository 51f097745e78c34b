// Memory-bound op kernels: RMSNorm, SwiGLU, the RoPE table upload and the key
// rotation. bf16 in and out, fp32 arithmetic; 16-byte accesses where rows allow.
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/ops/check.cuh"
#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {
namespace {

// Eight bf16 in one 16-byte vector.
union Pack8 {
  uint4 v;
  __nv_bfloat162 h[4];
};

// One block per row; each thread holds cols/8/blockDim 16-byte chunks in turn.
__global__ void rmsnorm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w, bf16* __restrict__ y,
                               int cols, float eps) {
  const std::size_t row = blockIdx.x;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row * cols);
  const uint4* wr = reinterpret_cast<const uint4*>(w);
  uint4* yr = reinterpret_cast<uint4*>(y + row * cols);
  const int chunks = cols / 8;
  float ss = 0.f;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    Pack8 p;
    p.v = xr[c];
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(p.h[i]);
      ss += f.x * f.x + f.y * f.y;
    }
  }
  // Block sum: warp shuffles, then the first warp sums the per-warp partials.
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / static_cast<float>(cols) + eps);
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    Pack8 p, q, r;
    p.v = xr[c];
    q.v = wr[c];
    for (int i = 0; i < 4; ++i) {
      const float2 a = __bfloat1622float2(p.h[i]), b = __bfloat1622float2(q.h[i]);
      r.h[i] = __floats2bfloat162_rn(a.x * inv * b.x, a.y * inv * b.y);
    }
    yr[c] = r.v;
  }
}

__device__ __forceinline__ float silu_times(float g, float u) { return g / (1.f + expf(-g)) * u; }

// Eight elements per thread with 16-byte accesses (n % 8 == 0 and 16-byte
// aligned arrays, as the backend's are), else one element per thread.
__global__ void swiglu_kernel(const bf16* __restrict__ gate, const bf16* __restrict__ up, bf16* __restrict__ out,
                              std::size_t n, bool vector) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const std::size_t first = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (vector) {
    for (std::size_t i = first; i < n / 8; i += stride) {
      const uint4 g8 = reinterpret_cast<const uint4*>(gate)[i], u8 = reinterpret_cast<const uint4*>(up)[i];
      const __nv_bfloat162* g = reinterpret_cast<const __nv_bfloat162*>(&g8);
      const __nv_bfloat162* u = reinterpret_cast<const __nv_bfloat162*>(&u8);
      uint4 o8;
      __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&o8);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float2 gf = __bfloat1622float2(g[j]), uf = __bfloat1622float2(u[j]);
        o[j] = __floats2bfloat162_rn(silu_times(gf.x, uf.x), silu_times(gf.y, uf.y));
      }
      reinterpret_cast<uint4*>(out)[i] = o8;
    }
    return;
  }
  for (std::size_t i = first; i < n; i += stride)
    out[i] = __float2bfloat16(silu_times(__bfloat162float(gate[i]), __bfloat162float(up[i])));
}

// Thread per rotating pair (t, head, n): x[n], x[n + pairs] of that head.
__global__ void rope_keys_kernel(bf16* __restrict__ k, int T, int heads, int head_dim, const float* __restrict__ cos,
                                 const float* __restrict__ sin, int pairs) {
  const long i = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long>(T) * heads * pairs) return;
  const int n = static_cast<int>(i % pairs);
  const long th = i / pairs;  // t * heads + head
  const long t = th / heads;
  bf16* x = k + th * head_dim;
  const float c = cos[t * pairs + n], s = sin[t * pairs + n];
  const float a = __bfloat162float(x[n]), b = __bfloat162float(x[n + pairs]);
  x[n] = __float2bfloat16(a * c - b * s);
  x[n + pairs] = __float2bfloat16(b * c + a * s);
}

}  // namespace

void rmsnorm_bf16(const bf16* x, const bf16* w, bf16* y, int rows, int cols, float eps, cudaStream_t stream) {
  if (cols % 8 != 0) throw std::runtime_error("rmsnorm_bf16: cols must be a multiple of 8");
  rmsnorm_kernel<<<rows, 128, 0, stream>>>(x, w, y, cols, eps);
  cuda_check(cudaGetLastError(), "rmsnorm_kernel launch");
}

void swiglu_bf16(const bf16* gate, const bf16* up, bf16* out, std::size_t n, cudaStream_t stream) {
  auto aligned = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; };
  const bool vector = n % 8 == 0 && aligned(gate) && aligned(up) && aligned(out);
  const std::size_t work = vector ? n / 8 : n;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((work + 255) / 256, 132u * 16u));
  swiglu_kernel<<<blocks, 256, 0, stream>>>(gate, up, out, n, vector);
  cuda_check(cudaGetLastError(), "swiglu_kernel launch");
}

DeviceRopeTable upload_rope_table(const float* cos, const float* sin, long positions, int pairs) {
  DeviceRopeTable t;
  t.positions = positions;
  t.pairs = pairs;
  const std::size_t bytes = static_cast<std::size_t>(positions) * pairs * sizeof(float);
  cuda_check(cudaMalloc(&t.cos, bytes), "cudaMalloc rope cos");
  cuda_check(cudaMalloc(&t.sin, bytes), "cudaMalloc rope sin");
  cuda_check(cudaMemcpy(t.cos, cos, bytes, cudaMemcpyHostToDevice), "upload rope cos");
  cuda_check(cudaMemcpy(t.sin, sin, bytes, cudaMemcpyHostToDevice), "upload rope sin");
  return t;
}

void free_rope_table(DeviceRopeTable& table) {
  cudaFree(table.cos);
  cudaFree(table.sin);
  table = DeviceRopeTable{};
}

void rope_keys_bf16(bf16* k, int T, int heads, int head_dim, const DeviceRopeTable& rope, cudaStream_t stream) {
  if (rope.positions < T || 2 * rope.pairs > head_dim) throw std::runtime_error("rope_keys_bf16: table too small");
  const long n = static_cast<long>(T) * heads * rope.pairs;
  if (n == 0) return;  // no rotated pairs (NoPE layers: identity_rope), or no tokens
  rope_keys_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(k, T, heads, head_dim, rope.cos,
                                                                            rope.sin, rope.pairs);
  cuda_check(cudaGetLastError(), "rope_keys_kernel launch");
}

}  // namespace ropescope::kernels
