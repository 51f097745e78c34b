// Causal flash attention forward with native GQA and RoPE++ (ROPEPP.md 1, 4):
// bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators), online softmax in
// fp32, and queries rotated (real or imaginary) inside the kernel.
//
// Tiling. One CTA = 8 warps = 128 query rows, all G attention heads of one KV
// head over P = tile_positions(G) consecutive positions (row r: group head
// r / P, position q0 + r % P; 128 / G for G = 1, 2, 4, 8; for G = 3, 5, 6, 7
// rows from G P on are padding and their warps only help load). Head dims 64,
// 80, 96, 128 and 256 (tile rows padded to a multiple of 64 elements, mma.cuh).
// Each K/V tile of 64 keys is loaded once into shared
// memory (cp.async, two stages) and serves every head of the group: the real
// and the imaginary twin of a query head, and the other query heads of the
// GQA group. Each warp owns 16 rows: S = Q K^T (16 x 64), online softmax in
// registers, O += P V with P reused from the accumulators as the A operand
// (queries as A fragments in registers, or re-read from shared memory at
// d = 256: QueryFragments).
// Shared-memory rows are XOR-swizzled in 16-byte chunks so that ldmatrix
// reads 8 rows without bank conflicts.
//
// Without values (out == nullptr) the kernel is the same softmax with no V
// tiles and no P V: the log-sum-exp alone, bit for bit the full kernel's
// (a distance profile's last layer, whose output nothing reads).
//
// Scores: scale, optional softcap, causal and sliding-window masks as
// AttentionShape states. Under a window W the CTA starts at the key tile
// holding its first position's first visible key (q0 - W + 1), so a windowed
// layer reads O(T W) keys, and a warp skips tiles wholly before its window.
#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <cstdint>

#include "kernels/ops/check.cuh"
#include "kernels/ops/mma.cuh"
#include "kernels/ops/rope_query.cuh"
#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {
namespace {
using namespace mma;

constexpr int kWarps = 8;
constexpr int kRows = 16 * kWarps;  // query rows per CTA
constexpr int kKeys = 64;           // keys per K/V tile
constexpr int kThreads = 32 * kWarps;

struct Params {
  const bf16* q;  // [T, Q*D]
  const bf16* k;  // [T, KV*D], rotated
  const bf16* v;  // [T, KV*D]
  const float* cos;  // [T.., pairs]
  const float* sin;
  bf16* out;   // [T, A*D]
  float* lse;  // [A, T]
  int T, query_heads, kv_heads, group, pairs;
  int positions;     // per CTA: tile_positions(group)
  bool twins;
  int window;        // 0: plain causal
  ScoreMap map;      // scale and softcap (ops.hpp)
};

template <int D, bool kValues>
__global__ void __launch_bounds__(kThreads, 1) attention_kernel(const Params p) {
  constexpr int Dp = tile_pitch<D>();  // shared-memory row pitch
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // [kRows, Dp]
  bf16* Ks = Qs + kRows * Dp;                    // [2][kKeys, Dp]
  bf16* Vs = Ks + 2 * kKeys * Dp;                // [2][kKeys, Dp] with kValues

  const int P = p.positions;  // rows from group * P on are padding
  // Heaviest (latest) position tiles first, so the causal tail fills the machine.
  const int q0 = (gridDim.x - 1 - blockIdx.x) * P;
  const int kv = blockIdx.y;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int qcols = p.query_heads * D, kvcols = p.kv_heads * D;
  const int acols = p.kv_heads * p.group * D;

  // Stage the rotated queries: row r is group head r / P (attention head
  // kv * G + r / P) at position q0 + r % P; padding rows get position T (zeros).
  const int used_rows = p.group * P;
  stage_rotated_queries<D, kRows, kThreads>(Qs, p.q, p.cos, p.sin, p.T, qcols, p.pairs, p.twins, tid, [&](int r) {
    return r < used_rows ? make_int2(kv * p.group + r / P, q0 + r % P) : make_int2(kv * p.group, p.T);
  });

  // Loads key tile j (keys j*64 ..) of K (and V) into stage `stage`; rows past T are zeros.
  auto load_kv = [&](int j, int stage) {
    if constexpr (kValues)
      load_tiles_async<D, kKeys, kThreads, 2>({Ks + stage * kKeys * Dp, Vs + stage * kKeys * Dp}, {p.k, p.v}, j,
                                              kvcols, kv * D, p.T, tid);
    else
      load_tiles_async<D, kKeys, kThreads, 1>({Ks + stage * kKeys * Dp}, {p.k}, j, kvcols, kv * D, p.T, tid);
    cp_async_commit();
  };

  const int q_last = min(q0 + P, p.T) - 1;  // last position of the CTA
  const int tiles = q_last / kKeys + 1;
  // First key tile: the one holding key q0 - W + 1, the first key the CTA's
  // first position sees (later positions see later keys only).
  const int j0 = p.window > 0 ? max(0, q0 - p.window + 1) / kKeys : 0;
  load_kv(j0, 0);
  __syncthreads();  // Qs written

  // This warp's 16 rows: one group head, positions wpos .. wpos + 15 (P is a
  // power of two >= 16); a padding warp computes nothing.
  const int wrow = warp * 16;
  const bool padding = wrow >= used_rows;
  const int wpos = q0 + wrow % P;
  const int g = lane >> 2, t4 = lane & 3;  // mma fragment coordinates
  const int pos0 = wpos + g, pos1 = pos0 + 8;  // positions of this thread's two rows

  const QueryFragments<D> qf(Qs, wrow, lane);

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // running max (log2 units) and sum

  for (int j = j0; j < tiles; ++j) {
    const int stage = (j - j0) & 1;
    cp_async_wait<0>();
    __syncthreads();  // tile j visible; every warp is done with the other stage
    if (j + 1 < tiles) load_kv(j + 1, stage ^ 1);
    const int kbase = j * kKeys;
    if (padding || kbase > wpos + 15) continue;  // all 64 keys lie after this warp's positions
    // All 64 keys lie before the window of the warp's first row (wpos - W + 1).
    if (p.window > 0 && kbase + kKeys - 1 < wpos - p.window + 1) continue;
    const bf16* kt = Ks + stage * kKeys * Dp;

    // S = Q K^T: 8 n-tiles of 8 keys (mma.cuh).
    float s[8][4];
    warp_scores<D>(qf, kt, lane, s);
    if (p.map.cap > 0) softcap_warp_tile<32>(&s[0][0], p.map.cap, p.map.pre);

    // Causal mask on tiles that reach past the warp's first position, window
    // mask on tiles that reach before its last row's first key (wpos + 15 -
    // W + 1): element (row, n-tile n, c) is key kbase + 8n + 2*t4 + (c & 1);
    // key is outside the window of pos iff key <= pos - W.
    const bool causal_edge = kbase + kKeys - 1 > wpos;
    const bool window_edge = p.window > 0 && kbase < wpos + 16 - p.window;
    if (causal_edge || window_edge) {
      const int lo0 = p.window > 0 ? pos0 - p.window : INT_MIN, lo1 = p.window > 0 ? pos1 - p.window : INT_MIN;
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const int key = kbase + 8 * n + 2 * t4;
        if (key > pos0 || key <= lo0) s[n][0] = -INFINITY;
        if (key + 1 > pos0 || key + 1 <= lo0) s[n][1] = -INFINITY;
        if (key > pos1 || key <= lo1) s[n][2] = -INFINITY;
        if (key + 1 > pos1 || key + 1 <= lo1) s[n][3] = -INFINITY;
      }
    }

    // Online softmax; a row lives in the 4 threads of a quad (lanes 4g .. 4g+3).
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
      mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    // Without a window key 0 is visible to every row, so m is finite from
    // tile 0 on; under one a row may have seen only masked keys (safe_max).
    const float mn0 = fmaxf(m0, mx0 * p.map.post_log2), mn1 = fmaxf(m1, mx1 * p.map.post_log2);
    const float b0 = safe_max(mn0), b1 = safe_max(mn1);
    const float alpha0 = fast_exp2(m0 - b0), alpha1 = fast_exp2(m1 - b1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      s[n][0] = fast_exp2(fmaf(s[n][0], p.map.post_log2, -b0));
      s[n][1] = fast_exp2(fmaf(s[n][1], p.map.post_log2, -b0));
      s[n][2] = fast_exp2(fmaf(s[n][2], p.map.post_log2, -b1));
      s[n][3] = fast_exp2(fmaf(s[n][3], p.map.post_log2, -b1));
      rs0 += s[n][0] + s[n][1];
      rs1 += s[n][2] + s[n][3];
    }
    l0 = l0 * alpha0 + rs0;
    l1 = l1 * alpha1 + rs1;
    if constexpr (!kValues) continue;  // the log-sum-exp needs m and l alone
    const bf16* vt = Vs + stage * kKeys * Dp;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= alpha0;
      o[n][1] *= alpha0;
      o[n][2] *= alpha1;
      o[n][3] *= alpha1;
    }

    // O += P V. The accumulators of n-tiles 2kk and 2kk+1 are exactly the A
    // fragment of keys 16kk .. 16kk+15. ldmatrix x4.trans on V rows gives b0/b1
    // of two dim n-tiles: (keys +0..7, dims +0..7), (+8..15, +0..7), (+0..7, +8..15), (+8..15, +8..15).
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, vt + swz<D>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, dp * 16 + (lane >> 4) * 8));
        mma_bf16(o[2 * dp], a, b0, b1);
        mma_bf16(o[2 * dp + 1], a, b2, b3);
      }
    }
  }

  if (padding) return;
  write_attention_rows<D, kValues>([&](int n, int c) { return o[n][c]; }, m0, m1, l0, l1, pos0, pos1, p.T,
                                   kv * p.group + wrow / P, acols, t4, p.out, p.lse);
}

template <int D, bool kValues>
void launch_kernel(const Params& p, cudaStream_t stream) {
  const int stages = kValues ? 4 : 2;  // K (and V) tiles, two stages each
  const int smem = (kRows + stages * kKeys) * tile_pitch<D>() * static_cast<int>(sizeof(bf16));
  cuda_check(cudaFuncSetAttribute(attention_kernel<D, kValues>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "attention smem attribute");
  const dim3 grid((p.T + p.positions - 1) / p.positions, p.kv_heads);
  attention_kernel<D, kValues><<<grid, kThreads, smem, stream>>>(p);
  cuda_check(cudaGetLastError(), "attention_kernel launch");
}

template <int D>
void launch(const Params& p, cudaStream_t stream) {
  if (p.out) launch_kernel<D, true>(p, stream);
  else launch_kernel<D, false>(p, stream);
}

}  // namespace

bool tiled_head_dim(int d) { return d == 64 || d == 80 || d == 96 || d == 128 || d == 256; }

bool flash_attention_supports(const AttentionShape& shape) {
  if (!tiled_head_dim(shape.head_dim)) return false;
  if (shape.kv_heads <= 0 || shape.attention_heads % shape.kv_heads != 0) return false;
  const int G = shape.attention_heads / shape.kv_heads;
  return G >= 1 && G <= 8;
}

bool wgmma_attention_supports(const AttentionShape& shape) {
  if (shape.head_dim != 64 && shape.head_dim != 128) return false;
  return flash_attention_supports(shape);
}

void attention_forward_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                            const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream) {
  const int KV = shape.kv_heads, d = shape.head_dim;
  const int G = check_attention_shape("attention_forward_bf16", shape, rope);
  if (shape.window < 0) throw std::runtime_error("attention_forward_bf16: negative window");
  const Params p{q, k, v, rope.cos, rope.sin, out, lse, shape.T, shape.query_heads, KV, G, rope.pairs,
                 tile_positions(G), shape.imaginary_twins, shape.window, score_map(shape)};
  switch (d) {
    case 64: launch<64>(p, stream); break;
    case 80: launch<80>(p, stream); break;
    case 96: launch<96>(p, stream); break;
    case 128: launch<128>(p, stream); break;
    case 256: launch<256>(p, stream); break;
    default: throw std::runtime_error("attention_forward_bf16: head_dim must be 64, 80, 96, 128 or 256, got " +
                                      std::to_string(d));
  }
}

}  // namespace ropescope::kernels
