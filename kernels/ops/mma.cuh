// Device helpers shared by the flash kernels (attention.cu,
// attention_profile.cu; attention_wgmma.cu takes packing, exp2 and the
// epilogue): the row pitch and XOR swizzle of shared-memory tiles, cp.async,
// ldmatrix, the m16n8k16 bf16 tensor-core product, bf16 packing, exp2, the
// staging of rotated queries and of key / value tiles, a warp's query
// fragments and its 16 x 64 score tile, and the epilogue that writes
// normalised rows and their log-sum-exp.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/ops/rope_query.cuh"

namespace ropescope::kernels::mma {

// Elements per shared-memory tile row for head dim D: D rounded up to a
// multiple of 64 (128 bytes), so the XOR swizzle below never moves a chunk
// out of its row (d = 80 and 96 have 10 and 12 chunks; chunk 9 ^ 7 = 14).
template <int D>
__host__ __device__ constexpr int tile_pitch() {
  return (D + 63) / 64 * 64;
}

// Element offset of (row, col) in a [rows, D] bf16 tile of row pitch
// tile_pitch<D>(): the 16-byte chunk col / 8 moves to chunk (col / 8) ^
// (row % 8), so the 8 rows an ldmatrix reads at one logical chunk hit 8
// different bank groups (a row starts on a 128-byte boundary).
template <int D>
__device__ __forceinline__ int swz(int row, int col) {
  return row * tile_pitch<D>() + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// swz<D> as a layout argument of stage_rotated_queries (another layout: the
// wgmma operands' column blocks, wgmma.cuh).
template <int D>
struct PitchSwizzle {
  __device__ int operator()(int row, int col) const { return swz<D>(row, col); }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; src_bytes = 0 fills the chunk with zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                                  const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}

// c += a (16x16, row) * b (16x8, col), bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// The softcap of a raw dot product x (ops.hpp ScoreMap): cap * tanh(x * scale
// / cap), tanhf (accurate to 2 ulp, not an approximation).
__device__ __forceinline__ float softcapped(float x, float cap, float pre) { return cap * tanhf(x * pre); }

// tanhf's branch below 0.6, written out op for op as CUDA 13's libdevice
// __nv_tanhf reads in PTX: where !(|x| >= 0.6) (NaN too) tanhf is the odd
// polynomial x + x^3 P(x^2); elsewhere it is 1 - 2 / (2^(2 |x| log2 e) + 1)
// (2 MUFU), and it computes both for every element and selects.
// test_gpu_tanh checks this against tanhf bit for bit on every float where
// it applies, so a toolkit whose tanhf differs fails there, not in the numbers.
constexpr float kTanhPolynomialBound = 0x1.333334p-1f;  // 0.6f
__device__ __forceinline__ float tanh_polynomial(float x) {
  const float x2 = x * x;
  float poly = fmaf(0x1.01e104p-6f, x2, -0x1.ac795cp-5f);
  poly = fmaf(poly, x2, 0x1.10b282p-3f);
  poly = fmaf(poly, x2, -0x1.5553dap-2f);
  poly = fmaf(poly, x2, 0.f);
  return fmaf(poly, x, x);
}

// softcapped() over the n scores a lane holds of a warp's tile, the warp's
// lanes together: when no scaled score of the tile reaches tanhf's
// polynomial bound (|score| < 0.6 cap), every element takes the polynomial
// alone, and the exponential branch (2 MUFU and ~8 more instructions an
// element) is skipped. Same bits either way.
template <int n>
__device__ __forceinline__ void softcap_warp_tile(float* s, float cap, float pre) {
  float largest = 0.f;  // fmaxf passes over NaN: a NaN takes the polynomial in tanhf too
#pragma unroll
  for (int i = 0; i < n; ++i) {
    s[i] *= pre;
    largest = fmaxf(largest, fabsf(s[i]));
  }
  if (__all_sync(0xffffffffu, largest < kTanhPolynomialBound)) {
#pragma unroll
    for (int i = 0; i < n; ++i) s[i] = cap * tanh_polynomial(s[i]);
  } else {
#pragma unroll
    for (int i = 0; i < n; ++i) s[i] = cap * tanhf(s[i]);
  }
}

// The running max of a row whose keys so far were all masked is -inf; exp2
// then subtracts 0 instead, so exp2(-inf - 0) = 0 for the masked entries and
// the correction factor, never exp2(-inf + inf) = NaN (sliding windows: a row
// can see no key of a tile that other rows of its warp see).
__device__ __forceinline__ float safe_max(float m) { return m == -INFINITY ? 0.f : m; }

// A warp's query A fragments: its 16 rows (wrow ..) of the swizzled Q tile,
// one fragment of 16 dims per k-step kk (ldmatrix x4 = rows 0-7 / 8-15 x
// dims 0-7 / 8-15). Held in registers for D <= 128; at D = 256 they would
// take 64 more registers beside the output's 128, so they are re-read from
// the tile at each k-step (the tile must then stay intact).
template <int D>
constexpr bool kQueryFragmentsInRegisters = D <= 128;
template <int D, bool kInRegisters = kQueryFragmentsInRegisters<D>>
struct QueryFragments;

template <int D>
struct QueryFragments<D, true> {
  uint32_t f[D / 16][4];
  __device__ __forceinline__ QueryFragments(const __nv_bfloat16* Qs, int wrow, int lane) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      ldmatrix_x4(f[kk][0], f[kk][1], f[kk][2], f[kk][3], Qs + swz<D>(wrow + (lane & 15), kk * 16 + (lane >> 4) * 8));
  }
  __device__ __forceinline__ void get(int kk, uint32_t (&a)[4]) const {
    a[0] = f[kk][0];
    a[1] = f[kk][1];
    a[2] = f[kk][2];
    a[3] = f[kk][3];
  }
};

template <int D>
struct QueryFragments<D, false> {
  const __nv_bfloat16* Qs;
  int row, col;  // this lane's ldmatrix row and column offset
  __device__ __forceinline__ QueryFragments(const __nv_bfloat16* tile, int wrow, int lane)
      : Qs(tile), row(wrow + (lane & 15)), col((lane >> 4) * 8) {}
  __device__ __forceinline__ void get(int kk, uint32_t (&a)[4]) const {
    ldmatrix_x4(a[0], a[1], a[2], a[3], Qs + swz<D>(row, kk * 16 + col));
  }
};

// S = Q K^T for one warp: its 16 query rows (QueryFragments q) against the
// 64 keys of a swizzled [64, D] K tile, fp32 accumulators of 8 n-tiles of 8
// keys. ldmatrix x4 on K rows gives b0/b1 of two n-tiles: matrices
// (keys +0..7, dims +0..7), (+0..7, +8..15), (+8..15, +0..7), (+8..15, +8..15).
template <int D, class QF>
__device__ __forceinline__ void warp_scores(const QF& q, const __nv_bfloat16* kt, int lane, float (&s)[8][4]) {
#pragma unroll
  for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    q.get(kk, a);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b0, b1, b2, b3;
      ldmatrix_x4(b0, b1, b2, b3, kt + swz<D>(np * 16 + (lane & 7) + (lane >> 4) * 8, kk * 16 + ((lane >> 3) & 1) * 8));
      mma_bf16(s[2 * np], a, b0, b1);
      mma_bf16(s[2 * np + 1], a, b2, b3);
    }
  }
}

// Eight consecutive rotary dims of a query (a 16-byte chunk q of bf16) rotated
// with their rotate_half partner chunk and their pairs' table entries (c0 c1,
// s0 s1: cos and sin of the 8 pairs), rounded to bf16: rotated_query_dim's
// arithmetic for each dim. first: the dims lie in the first half (pairs n <
// pairs, partner + pairs, rotate_half negates it).
__device__ __forceinline__ uint4 rotated_query_chunk(const uint4& q, const uint4& partner, float4 c0, float4 c1,
                                                     float4 s0, float4 s1, bool first, bool imaginary) {
  const float cs[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
  const float sn[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
  const __nv_bfloat16* x8 = reinterpret_cast<const __nv_bfloat16*>(&q);
  const __nv_bfloat16* p8 = reinterpret_cast<const __nv_bfloat16*>(&partner);
  float val[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float x = __bfloat162float(x8[e]), pe = __bfloat162float(p8[e]);
    const float rh = first ? -pe : pe;  // rotate_half(q)[i]
    val[e] = imaginary ? x * sn[e] - rh * cs[e] : x * cs[e] + rh * sn[e];
  }
  return make_uint4(pack_bf16(val[0], val[1]), pack_bf16(val[2], val[3]), pack_bf16(val[4], val[5]),
                    pack_bf16(val[6], val[7]));
}

// Stages kRows rotated queries, rounded to bf16, into the swizzled [kRows, D]
// tile Qs (element (r, i) at offset(r, i); all kThreads threads take part):
// row r is attention head a at position t, {a, t} = row_of(r) (an int2);
// rows past T are zeros. Head a reads query
// head a / 2 (twins) or a of q [T, qcols] and rotates it as real or, for the
// odd twin, imaginary (rope_query.cuh). When pairs % 8 == 0 and the rows are
// 16-byte aligned, a thread takes 8 dims at once: one 16-byte load of q, one
// of its rotate_half partner (the chunk pairs / 8 away) and two of each table
// row, the same arithmetic per dim (element by element the staging's four
// 2- and 4-byte loads a dim took 18 % of the distance-sums kernel's time, ncu).
template <int D, int kRows, int kThreads, class RowOf, class Offset = PitchSwizzle<D>>
__device__ __forceinline__ void stage_rotated_queries(__nv_bfloat16* Qs, const __nv_bfloat16* q, const float* cos,
                                                      const float* sin, int T, int qcols, int pairs, bool twins,
                                                      int tid, RowOf row_of, Offset offset = {}) {
  auto aligned16 = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  const bool vec = pairs % 8 == 0 && qcols % 8 == 0 && aligned16(q) && aligned16(cos) && aligned16(sin);
  if (vec) {
#pragma unroll 4
    for (int c = tid; c < kRows * D / 8; c += kThreads) {
      const int r = c / (D / 8), i0 = (c % (D / 8)) * 8;
      const int2 head_pos = row_of(r);
      const int a = head_pos.x, t = head_pos.y;
      uint4 out = make_uint4(0, 0, 0, 0);
      if (t < T) {
        const __nv_bfloat16* row = q + static_cast<long>(t) * qcols + (twins ? a >> 1 : a) * D;
        out = *reinterpret_cast<const uint4*>(row + i0);
        if (i0 < 2 * pairs) {  // a chunk is all rotary or all pass-through (pairs % 8 == 0)
          const bool first = i0 < pairs, imaginary = twins && (a & 1);
          const int n0 = first ? i0 : i0 - pairs;
          const uint4 partner = *reinterpret_cast<const uint4*>(row + (first ? i0 + pairs : i0 - pairs));
          const float4* cp = reinterpret_cast<const float4*>(cos + static_cast<long>(t) * pairs + n0);
          const float4* sp = reinterpret_cast<const float4*>(sin + static_cast<long>(t) * pairs + n0);
          out = rotated_query_chunk(out, partner, cp[0], cp[1], sp[0], sp[1], first, imaginary);
        }
      }
      *reinterpret_cast<uint4*>(Qs + offset(r, i0)) = out;
    }
    return;
  }
  for (int e = tid; e < kRows * D; e += kThreads) {
    const int r = e / D, i = e % D;
    const int2 head_pos = row_of(r);
    const int a = head_pos.x, t = head_pos.y;
    float val = 0.f;
    if (t < T) {
      const int qh = twins ? a >> 1 : a;
      const QueryRotation rotation = twins && (a & 1) ? QueryRotation::imaginary : QueryRotation::real;
      const long table_row = static_cast<long>(t) * pairs;
      val = rotated_query_dim(q + static_cast<long>(t) * qcols + qh * D, i, pairs, cos + table_row, sin + table_row,
                              rotation);
    }
    Qs[offset(r, i)] = __float2bfloat16(val);
  }
}

// Issues the cp.async copies (no commit) of rows j * kKeys .. of the D columns
// starting at col0 of kMatrices [T, cols] bf16 matrices src[m] into the
// swizzled [kKeys, D] tiles dst[m] (K, or K and V in one pass); rows past T
// are zeros.
template <int D, int kKeys, int kThreads, int kMatrices>
__device__ __forceinline__ void load_tiles_async(__nv_bfloat16* const (&dst)[kMatrices],
                                                 const __nv_bfloat16* const (&src)[kMatrices], int j, int cols,
                                                 int col0, int T, int tid) {
  for (int c = tid; c < kKeys * D / 8; c += kThreads) {
    const int row = c / (D / 8), col = (c % (D / 8)) * 8;
    const int key = j * kKeys + row;
    const bool in = key < T;
    const long offset = static_cast<long>(in ? key : 0) * cols + col0 + col;
#pragma unroll
    for (int m = 0; m < kMatrices; ++m) cp_async16(dst[m] + swz<D>(row, col), src[m] + offset, in ? 16 : 0);
  }
}

// A flash kernel's epilogue for one thread of an m16n8 accumulator layout:
// rows pos0 and pos1 (the thread's g and g + 8) of attention head a, columns
// 8n + 2 t4 + {0, 1} of n-tile n as o(n, 0..3). Completes the row sums l over
// the quad (lanes 4g .. 4g+3), writes out[pos, a * D + col] = o / l as bf16
// and lse[a, pos] = (m + log2 l) ln 2 (m in log2 units); rows past T skipped.
// Without kOutput only lse is written (o is not read).
template <int D, bool kOutput = true, class Acc>
__device__ __forceinline__ void write_attention_rows(Acc o, float m0, float m1, float l0, float l1, int pos0, int pos1,
                                                     int T, int a, long acols, int t4, __nv_bfloat16* out,
                                                     float* lse) {
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  if constexpr (kOutput) {
    const float inv0 = 1.f / l0, inv1 = 1.f / l1;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const int col = a * D + 8 * n + 2 * t4;
      if (pos0 < T)
        *reinterpret_cast<__nv_bfloat162*>(out + pos0 * acols + col) = __floats2bfloat162_rn(o(n, 0) * inv0, o(n, 1) * inv0);
      if (pos1 < T)
        *reinterpret_cast<__nv_bfloat162*>(out + pos1 * acols + col) = __floats2bfloat162_rn(o(n, 2) * inv1, o(n, 3) * inv1);
    }
  }
  if (t4 == 0) {
    constexpr float kLn2 = 0.6931471805599453f;
    if (pos0 < T) lse[static_cast<long>(a) * T + pos0] = (m0 + log2f(l0)) * kLn2;
    if (pos1 < T) lse[static_cast<long>(a) * T + pos1] = (m1 + log2f(l1)) * kLn2;
  }
}

}  // namespace ropescope::kernels::mma
