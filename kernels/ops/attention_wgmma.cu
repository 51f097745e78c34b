// Causal flash attention forward for Hopper (sm_90a): the semantics and host
// API of attention_forward_bf16 (attention.cu: native GQA, RoPE++ real and
// imaginary query heads rotated in the kernel, out [T, A*d] bf16, lse [A, T]),
// with warpgroup MMA (wgmma), TMA loads and mbarriers.
//
// Tiling. One CTA = 3 warpgroups on 128 query rows: all G attention heads of
// one KV head over P consecutive positions, P the largest power of two with
// G P <= 128 (128 / G for G = 1, 2, 4, 8; 16 for G = 5, 6, 7, whose last
// 128 - G P rows are padding: no query, no output) (row r: group head r / P,
// position q0 + r % P), as in attention.cu. Warpgroup 0 is the producer: one
// thread streams K and V tiles of 128 keys through two shared-memory stages
// with cp.async.bulk.tensor (TMA, 128-byte swizzle), each tile completing on a
// "full" mbarrier and handed back through an "empty" one. Warpgroups 1 and 2
// are consumers of 64 rows each: they rotate their queries into shared memory
// once, then per key tile S = Q K^T (wgmma m64n128k16, both operands from
// shared memory), online softmax in fp32 registers, and O += P V (wgmma with
// P from registers as bf16, V from shared memory, transposed). The loop is
// software-pipelined inside each warpgroup: S of tile j is issued before P V
// of tile j - 1, so the exponentials of tile j run while the tensor cores do
// P V; and the two warpgroups take turns issuing (named-barrier ping-pong, as
// in FlashAttention-3), so one's softmax overlaps the other's matrix products.
// Only the last key tile of a CTA needs the causal mask. Scores take the
// scale and softcap of AttentionShape; under a sliding window W the CTA's
// key tiles start at the one holding key q0 - W + 1 (O(T W) work) and the
// first tiles carry the window mask. A plain causal layer (no window, no
// softcap) runs a build without either (kShaped false): the same
// arithmetic on its path, and half the code of the general build (3264
// SASS instructions against 6640 at d = 128), which ran 1 % faster at
// T = 32768 (kernels/NOTES.md, session 34). Queries are rotated
// from 16-byte loads of q, its rotate_half partner and the cos/sin rows when
// pairs % 8 == 0 (element by element otherwise).
//
// With FusedDistanceSums (kSums), the far part of a distance profile rides
// along (ops.hpp): each thread keeps, for its two rows, the running sums of
// p (t - s) and p log2-score (rescaled with O) and the current slot run of
// the pairs at distance >= band (its sum of exponentials, rescaled with O,
// and of scores in log2 units). When a row's slot changes, the quad adds up
// the run and one thread stores log2(sum) + max for (row, slot) in shared
// memory; the run's scores (times map.unit / map.post_log2, one fp64
// rounding to fixed point) are summed across the warp per slot and added
// to the CTA's per-(head, slot) fixed-point sums. At the end, with
// the rows' log-sum-exps known, the CTA turns the stored runs into
// probability sums (fp32, rows in a fixed order) and adds them, the scores
// and the per-head stats to global memory. Every
// accumulation that more than one thread adds to is an exact 128-bit
// fixed-point integer (fixed_point.hpp, 64-bit integer atomics), so the sums
// are bitwise reproducible; an addend outside its format's limit sets the
// overflow bit of site fused_epilogue instead.
// A row's 128 keys of a tile span 128 distances: from band on they meet at
// most two slots (plan_fused_sums), so a tile is one or two runs. A row's tile
// whose pairs are all far and visible is summed in the softmax loop itself:
// in one slot from the loop's row sums, in two with the slot boundary as a
// column threshold (the part past it summed in the loop, the rest the row sum
// less that part). Only a row's tile that crosses band, and window edges,
// take a second pass over the scores (far_general).
//
// Shared-memory layout of every operand ([rows][d] bf16: Q rows, K keys,
// V keys): column blocks of 64 (128 bytes), [d / 64][rows][64], each row of
// a block holding its eight 16-byte chunks at chunk ^ (row % 8). This is the
// TMA's 128-byte swizzle and wgmma's 128B-swizzle canonical layout (8-row
// atoms of 1024 bytes), so all tile bases are 1024-byte aligned.
#include <cuda_bf16.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/ops/check.cuh"
#include "kernels/ops/fixed_point.cuh"
#include "kernels/ops/mma.cuh"
#include "kernels/ops/ops.hpp"
#include "kernels/ops/wgmma.cuh"

namespace ropescope::kernels {
namespace {

constexpr int kRows = 128;  // query rows per CTA (two consumer warpgroups of 64)
constexpr int kKeys = 128;  // keys per K/V tile
constexpr int kStages = 2;
constexpr int kThreads = 384;  // producer warpgroup + 2 consumer warpgroups

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

using namespace wgmma;
using mma::fast_exp2;
using mma::pack_bf16;
using mma::write_attention_rows;
using mma::safe_max;
using mma::softcapped;

struct Params {
  const bf16* q;       // [T, Q*D]
  const float* cos;    // [T.., pairs]
  const float* sin;
  bf16* out;   // [T, A*D]
  float* lse;  // [A, T]
  int T, query_heads, kv_heads, group, pairs;
  int positions;     // P: positions per CTA (header)
  bool twins;
  bool vec_rope;     // pairs % 8 == 0 and 16-byte aligned table: 16-byte query rotation path
  int window;        // 0: plain causal
  ScoreMap map;      // scale and softcap (ops.hpp)
  FusedDistanceSums sums;  // read only by the kSums kernel
  SumsLimits limits;       // of one addend, at T (fixed_point.hpp)
  double score_unit_log2;  // map.unit / map.post_log2: score sums' units per log2 unit of score
  float masked_score;      // kSums: a masked score's stand-in, -1e30 log2 units (exp2 of it is 0)
};

constexpr int kMaxGroup = 8;  // G: P = kRows / G >= 16 positions per CTA
constexpr int kCoarse = kFusedSumsMaxSlots;

// Byte offsets inside the (1024-aligned) dynamic shared memory.
template <int D, bool kSums>
struct Layout {
  static constexpr int kBlock = 64 * 2;                 // bytes of one 64-column row segment
  static constexpr int kTile = kKeys * D * 2;           // one K or V stage
  static constexpr int q = 0;                           // [D/64][kRows][64]
  static constexpr int k = kRows * D * 2;               // [kStages][D/64][kKeys][64]
  static constexpr int v = k + kStages * kTile;         // same
  static constexpr int bars = v + kStages * kTile;      // full_k, full_v, empty_k, empty_v: [kStages] each
  // kSums: runs [kRows][kCoarse] float (log2 of a row's slot sum + max),
  // scores [kMaxGroup][kCoarse] Fixed128 (16 bytes: 8 KB), row_lse [kRows] float (log2 units),
  // far_start [kCoarse] int (the first distance of each coarse slot).
  static constexpr int scores = bars + 4 * kStages * 8;
  static constexpr int runs = scores + (kSums ? kMaxGroup * kCoarse * static_cast<int>(sizeof(Fixed128)) : 0);
  static constexpr int row_lse = runs + (kSums ? kRows * kCoarse * 4 : 0);
  static constexpr int far_start = row_lse + (kSums ? kRows * 4 : 0);
  static constexpr int end = far_start + (kSums ? kCoarse * 4 : 0);
  static constexpr int bytes = end + 1024;  // + slack to align the base
};

// kSums: the far part of a row's key tile (distances pos - kbase - 127 ..
// pos - kbase), in three words, as registers are scarce in the kernel.
struct FarRow {
  static constexpr int kTwo = 1, kClean = 2;  // bits: two slots; all 128 pairs far and visible
  int slot_hi = -1;  // -1: no far pair
  int boundary = 0;  // far pairs at distance >= boundary are in slot_hi, the rest in slot_lo
  int bits = 0;
  __device__ bool any() const { return slot_hi >= 0; }
  __device__ int slot_lo() const { return slot_hi - (bits & kTwo); }
  __device__ bool simple() const { return bits == kClean; }         // in one slot
  __device__ bool split() const { return bits == (kClean | kTwo); }  // in two slots
  __device__ bool general() const { return any() && !(bits & kClean); }
};


template <int D, bool kSums, bool kShaped>
__global__ void __launch_bounds__(kThreads, 1)
    attention_wgmma_kernel(const __grid_constant__ CUtensorMap tmap_k, const __grid_constant__ CUtensorMap tmap_v,
                           const Params p) {
  using L = Layout<D, kSums>;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;
  unsigned char* const sbase = smem_raw + (base - raw);
  const uint32_t full_k = base + L::bars, full_v = full_k + 8 * kStages;
  const uint32_t empty_k = full_v + 8 * kStages, empty_v = empty_k + 8 * kStages;

  const int P = p.positions;  // positions per CTA
  // Heaviest (latest) position tiles first, so the causal tail fills the machine.
  const int q0 = (gridDim.x - 1 - blockIdx.x) * P;
  const int kv = blockIdx.y;
  const int q_last = min(q0 + P, p.T) - 1;
  // P divides kKeys and q0 is a multiple of P, so every position of the CTA
  // lies in the last key tile: earlier tiles need no causal mask. Without a
  // window each row sees at least one key (its own block's first) in every
  // tile. Under a window W the CTA processes tiles j0 .. tiles - 1, j0 the
  // tile of key q0 - W + 1 (the first key its first position sees); tile j
  // is the (j - j0)-th through the stages and barriers.
  const int tiles = q_last / kKeys + 1;
  const int window = kShaped ? p.window : 0;
  const int j0 = window > 0 ? max(0, q0 - window + 1) / kKeys : 0;
  const int ntiles = tiles - j0;
  const int tid = threadIdx.x;

  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full_k + 8 * s, 1);  // the producer's arrive.expect_tx
      mbar_init(full_v + 8 * s, 1);
      mbar_init(empty_k + 8 * s, 2);  // one arrival per consumer warpgroup
      mbar_init(empty_v + 8 * s, 2);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (tid < 128) {
    // Producer warpgroup: gives its registers to the consumers; one thread issues the TMA loads.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
    if (tid == 0) {
      for (int j = 0; j < ntiles; ++j) {  // key tile j0 + j
        const int s = j % kStages, key0 = (j0 + j) * kKeys;
        const uint32_t parity = ((j / kStages) - 1) & 1;  // phase of the consumers' release of round j/kStages - 1
        if (j >= kStages) mbar_wait<true>(empty_k + 8 * s, parity);
        mbar_expect_tx(full_k + 8 * s, L::kTile);
        for (int b = 0; b < D / 64; ++b)
          tma_load_2d(base + L::k + s * L::kTile + b * kKeys * L::kBlock, &tmap_k, kv * D + 64 * b, key0,
                      full_k + 8 * s);
        if (j >= kStages) mbar_wait<true>(empty_v + 8 * s, parity);
        mbar_expect_tx(full_v + 8 * s, L::kTile);
        for (int b = 0; b < D / 64; ++b)
          tma_load_2d(base + L::v + s * L::kTile + b * kKeys * L::kBlock, &tmap_v, kv * D + 64 * b, key0,
                      full_v + 8 * s);
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");

  const int wg = (tid >> 7) - 1;  // consumer warpgroup 0 / 1: rows 64 wg .. 64 wg + 63
  const int wt = tid & 127, warp = wt >> 5, lane = tid & 31;
  const int qcols = p.query_heads * D, acols = p.kv_heads * p.group * D;

  // Stage this warpgroup's rotated queries in 16-byte chunks (8 dims): row
  // r = (group head r / P, position q0 + r % P). Attention head a = kv * G +
  // r / P reads query head a / 2 (twins) or a and rotates it as real (HF
  // q cos + rotate_half(q) sin) or imaginary (the same rotated by -pi/2:
  // q sin - rotate_half(q) cos); dims >= 2 * pairs pass through. Thread wt
  // owns chunk wt % (D / 8) of the rows 64 wg + wt / (D / 8) + i * 128 / (D / 8).
  constexpr int kChunks = D / 16;  // chunks per thread: 64 rows x D / 8 chunks over 128 threads
  const int i0 = (wt % (D / 8)) * 8;  // first dim of this thread's chunks
  auto row_of = [&](int i) { return 64 * wg + wt / (D / 8) + i * (128 / (D / 8)); };
  auto query_row = [&](int r, int t) {
    const int a = kv * p.group + r / P;
    return p.q + static_cast<long>(t) * qcols + (p.twins ? a >> 1 : a) * D;
  };
  auto is_imag = [&](int r) { return p.twins && ((kv * p.group + r / P) & 1); };
  auto store_chunk = [&](int r, uint4 val) {
    *reinterpret_cast<uint4*>(sbase + L::q + swizzled(r, i0 / 8, kRows)) = val;
  };
  if (p.vec_rope) {
    // pairs % 8 == 0: a chunk is all rotary or all pass-through and its
    // partner (rotate_half) is the chunk pairs / 8 away. Loads of a batch of
    // chunks are all issued before the arithmetic; rows past T stay zero.
    constexpr int kBatch = 4;
    const bool rotary = i0 < 2 * p.pairs, first = i0 < p.pairs;
    const int n0 = first ? i0 : i0 - p.pairs, partner = first ? i0 + p.pairs : i0 - p.pairs;
    for (int b0 = 0; b0 < kChunks; b0 += kBatch) {
      uint4 xq[kBatch], xp[kBatch];
      float4 cv[kBatch][2], sv[kBatch][2];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int r = row_of(b0 + b), t = q0 + r % P;
        xq[b] = xp[b] = make_uint4(0, 0, 0, 0);
        cv[b][0] = cv[b][1] = sv[b][0] = sv[b][1] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (t < p.T && r / P < p.group) {
          const bf16* qrow = query_row(r, t);
          xq[b] = *reinterpret_cast<const uint4*>(qrow + i0);
          if (rotary) {
            xp[b] = *reinterpret_cast<const uint4*>(qrow + partner);
            const float4* cp = reinterpret_cast<const float4*>(p.cos + static_cast<long>(t) * p.pairs + n0);
            const float4* sp = reinterpret_cast<const float4*>(p.sin + static_cast<long>(t) * p.pairs + n0);
            cv[b][0] = cp[0];
            cv[b][1] = cp[1];
            sv[b][0] = sp[0];
            sv[b][1] = sp[1];
          }
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int r = row_of(b0 + b);
        if (rotary) {
          store_chunk(r, mma::rotated_query_chunk(xq[b], xp[b], cv[b][0], cv[b][1], sv[b][0], sv[b][1], first,
                                                  is_imag(r)));
        } else {
          store_chunk(r, xq[b]);
        }
      }
    }
  } else {
    // Any pairs: element by element, partner and table entries loaded one by one.
    for (int i = 0; i < kChunks; ++i) {
      const int r = row_of(i), t = q0 + r % P;
      float val[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
      if (t < p.T && r / P < p.group) {
        const bf16* qrow = query_row(r, t);
        const bool imag = is_imag(r);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const int d = i0 + e;
          const float x = __bfloat162float(qrow[d]);
          if (d < 2 * p.pairs) {
            const int n = d < p.pairs ? d : d - p.pairs;  // pair (n, n + pairs)
            const float cs = p.cos[static_cast<long>(t) * p.pairs + n], sn = p.sin[static_cast<long>(t) * p.pairs + n];
            const float pe = __bfloat162float(qrow[d < p.pairs ? d + p.pairs : d - p.pairs]);
            const float rh = d < p.pairs ? -pe : pe;
            val[e] = imag ? x * sn - rh * cs : x * cs + rh * sn;
          } else {
            val[e] = x;
          }
        }
      }
      store_chunk(r, make_uint4(pack_bf16(val[0], val[1]), pack_bf16(val[2], val[3]), pack_bf16(val[4], val[5]),
                                pack_bf16(val[6], val[7])));
    }
  }
  // Generic-proxy stores read next by wgmma (async proxy): fence, then sync the warpgroup.
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory");

  // This thread's accumulator rows (wgmma D fragment): r0 = 64 wg + 16 warp +
  // lane / 4 and r1 = r0 + 8; element i of an accumulator is row r0 + 8 * ((i / 2) % 2),
  // column 8 * (i / 4) + 2 * (lane % 4) + i % 2. P >= 16, so r0 and r1 share a head.
  const int r0 = 64 * wg + 16 * warp + (lane >> 2);
  // Padding rows (r0 / P >= G) get positions past T: nothing of theirs is written or counted.
  const bool padding = r0 / P >= p.group;
  const int pos0 = padding ? p.T + kRows : q0 + r0 % P, pos1 = pos0 + 8;
  const int t4 = lane & 3;

  const uint32_t q_desc = desc_lo(base + L::q + wg * 64 * L::kBlock, 16);
  const uint32_t k_desc = desc_lo(base + L::k, 16);
  const uint32_t v_desc = desc_lo(base + L::v, kKeys * L::kBlock);
  // Descriptor start addresses advance in 16-byte units (the low field).
  auto qk_offset = [](int kk, int rows) { return ((kk >> 2) * rows * L::kBlock + (kk & 3) * 32) >> 4; };

  float s[64];                 // S tile: 64 rows x 128 keys
  uint32_t pa[32];             // P of the previous tile as bf16 A fragments (4 per 16 keys)
  float o[D / 2];              // O: 64 rows x D
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // running max (log2 units) and partial sums
  // kSums state (header): per row, sums of p (t - s) and of p times the
  // score in log2 units, and the current slot run of the far pairs.
  float* const runs = reinterpret_cast<float*>(sbase + L::runs);      // [kRows][kCoarse]
  Fixed128* const scores = reinterpret_cast<Fixed128*>(sbase + L::scores);  // [kMaxGroup][kCoarse]
  float* const row_lse = reinterpret_cast<float*>(sbase + L::row_lse);  // [kRows]
  int* const far_start = reinterpret_cast<int*>(sbase + L::far_start);  // [kCoarse]
  float dist0 = 0.f, dist1 = 0.f, ent0 = 0.f, ent1 = 0.f;
  int run_slot0 = -1, run_slot1 = -1;
  float run_p0 = 0.f, run_p1 = 0.f, run_s0 = 0.f, run_s1 = 0.f;
  if constexpr (kSums) {
    for (int i = wt; i < 64 * kCoarse; i += 128) runs[64 * wg * kCoarse + i] = -INFINITY;  // this warpgroup's rows
    for (int i = tid - 128; i < kMaxGroup * kCoarse; i += 256) scores[i] = Fixed128{0, 0};
    for (int i = tid - 128; i < p.sums.coarse_slots; i += 256)
      far_start[i] = __ldg(p.sums.out.slot_start + p.sums.first_slot + i);
    asm volatile("bar.sync 5, 256;\n" ::: "memory");  // both consumer warpgroups
  }
  // Ends the runs of the rows where `go` (quad-uniform) and a run is open:
  // adds each up in its quad, stores log2 of its sum, and adds its scores
  // to the CTA's (head, slot) sums. Called by the whole warp: its 16 rows
  // share a head, and rows that end runs together mostly end them in one
  // slot, so each slot's scores are summed across the warp first (exact
  // integer sums, smallest slot first) and added by one lane. One
  // shared-memory atomic per slot, where eight quads contending for one
  // address had each spun in the 64-bit compare-and-swap loop (ncu: 13
  // tries a run at T = 32768).
  auto flush = [&](bool go, int& run_slot, float& run_p, float& run_s, int row, float b) {
    go = go && run_slot >= 0;
    if (!__any_sync(0xffffffffu, go)) return;
    // The quad's sums (every quad shuffles; only the ending runs use them).
    float sum_p = run_p + __shfl_xor_sync(0xffffffffu, run_p, 1);
    sum_p += __shfl_xor_sync(0xffffffffu, sum_p, 2);
    float sum_s = run_s + __shfl_xor_sync(0xffffffffu, run_s, 1);
    sum_s += __shfl_xor_sync(0xffffffffu, sum_s, 2);
    Fixed128 score{0, 0};
    int slot = INT_MAX;  // the coarse slot of this lane's addend (INT_MAX: none)
    if (go && t4 == 0) {
      const int c = run_slot - p.sums.first_slot;
      runs[row * kCoarse + c] = log2f(sum_p) + b;  // log2 of the run's sum of exp2(score - 0)
      const double v = static_cast<double>(sum_s) * p.score_unit_log2;
      if (!(fabs(v) < p.limits.score))  // NaN too
        atomicOr(p.sums.out.overflow, overflow_bit(SumsSite::fused_epilogue, SumsQuantity::score));
      else if (v != 0.0) {
        score = to_fixed<kScoreFraction>(v);
        slot = c;
      }
    }
    for (int c = __reduce_min_sync(0xffffffffu, slot); c != INT_MAX; c = __reduce_min_sync(0xffffffffu, slot)) {
      // The warp's sum of the addends in slot c, exact mod 2^128 (limbs
      // summed by the warp's reduction unit: fixed_point.hpp).
      const bool mine = slot == c;
      unsigned __int128 sum = 0;
#pragma unroll
      for (int k = 0; k < 8; ++k) add_limb_sum(sum, __reduce_add_sync(0xffffffffu, mine ? limb16(score, k) : 0u), k);
      if (lane == 0 && sum != 0) fixed::atomic_add(scores + (row / P) * kCoarse + c, to_fixed128(sum));
      if (mine) slot = INT_MAX;
    }
    if (go) {
      run_slot = -1;
      run_p = run_s = 0.f;
    }
  };
  // Coarse slots (indices into far_start) come from one cursor per warp, at
  // the slot of the warp's largest distance warp_pos + 15 - kbase (far_rows
  // below). Distances only fall from tile to tile, so it walks down, about
  // one step a tile (a slot wholly past band is at least 127 wide), and a
  // row's slot is the cursor's or just below it: shared-memory reads in
  // place of the dependent global lookups of slot_of_distance, whose
  // latency the warp waited on (ncu).
  const int warp_pos = __shfl_sync(0xffffffffu, pos0, 0);  // rows warp_pos .. + 15 (P is a multiple of 16)
  int warp_cursor = p.sums.coarse_slots - 1;
  auto far_row = [&](int pos, int kbase, bool window_edge) {
    FarRow f;
    const int dmax = pos - kbase, band = p.sums.band;
    if (pos >= p.T || dmax < band) return f;
    const int dmin = dmax - (kKeys - 1);
    int cursor = warp_cursor;
    while (cursor > 0 && far_start[cursor] > dmax) --cursor;
    f.slot_hi = p.sums.first_slot + cursor;
    f.boundary = far_start[cursor];
    // At most two slots meet the tile (plan_fused_sums): below boundary it is the previous one.
    f.bits = (max(dmin, band) < f.boundary ? FarRow::kTwo : 0) | (dmin >= band && !window_edge ? FarRow::kClean : 0);
    return f;
  };
  // A row's far pairs in a tile that crosses band or a window edge (elements
  // c0, c0 + 1 of each n-tile), from the raw scores once the tile's max b is
  // known: the exponentials and scores at distance >= boundary into (ph, sh),
  // the rest into (pl, sl), scores in log2 units as the runs keep them (the
  // raw scores summed, then times map.post_log2); masked pairs (-inf)
  // skipped. Simple and split tiles are summed in the softmax's own loop
  // instead.
  auto far_general = [&](const FarRow& f, int pos, int kbase, int c0, float b, float& ph, float& sh, float& pl,
                         float& sl) {
#pragma unroll
    for (int n = 0; n < 16; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int dist = pos - (kbase + 8 * n + 2 * t4 + e);
        const float v = s[4 * n + c0 + e];
        if (dist >= p.sums.band && v != -INFINITY) {
          const float pe = fast_exp2(fmaf(v, p.map.post_log2, -b));
          if (dist >= f.boundary) {
            ph += pe;
            sh += v;
          } else {
            pl += pe;
            sl += v;
          }
        }
      }
    sh *= p.map.post_log2;
    sl *= p.map.post_log2;
  };
  auto issue_qk = [&](int stage) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      wgmma_ss_n128(s, q_desc + qk_offset(kk, kRows), k_desc + ((stage * L::kTile) >> 4) + qk_offset(kk, kKeys),
                    kk > 0);
    wgmma_commit();
  };
  auto issue_pv = [&](int stage) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      // Keys 16 kk .. 16 kk + 15: 16 rows of 128 bytes into each 64-column block.
      const uint32_t db = v_desc + ((stage * L::kTile + kk * 16 * L::kBlock) >> 4);
      if constexpr (D == 128)
        wgmma_rs_n128(o, pa + 4 * kk, db);
      else
        wgmma_rs_n64(o, pa + 4 * kk, db);
    }
    wgmma_commit();
  };
  // Online softmax of the tile in s (keys kbase ..); leaves exp2 values in s,
  // the row sums in rs0/rs1 and the O correction factors in alpha0/alpha1.
  float alpha0, alpha1, rs0, rs1;
  // Window edge: a tile reaching below the CTA's last position's first key
  // (q_last - W + 1) has pairs outside some row's window (key <= pos - W).
  // (Per element: window bounds kept live across the tile loop cost the
  // kSums kernel a 60-byte spill, with loads on every tile.)
  auto outside = [&](int key, int pos) { return key > pos || (window > 0 && key <= pos - window); };
  // kSums: the far rows of the tile at kbase, looked up while its S is
  // computed. Most tiles are interior to a warp: every pair of its 16 rows
  // is far, visible and in the slot of the runs its rows already have.
  // Those take the warp's cursor step and a vote, and no per-row lookups or
  // bookkeeping. (All conditions but the vote's are warp-uniform; a padding
  // warp's positions are past T.)
  auto window_edge_at = [&](int kbase) { return window > 0 && kbase <= q_last - window; };
  bool interior = false;
  FarRow f0, f1;
  auto far_rows = [&](int kbase) {
    if constexpr (kSums) {
      const int dmax = warp_pos + 15 - kbase, dmin = warp_pos - kbase - (kKeys - 1);
      interior = false;
      if (warp_pos >= p.T) return;
      while (warp_cursor > 0 && far_start[warp_cursor] > dmax) --warp_cursor;
      if (warp_pos + 15 < p.T && dmin >= p.sums.band && !window_edge_at(kbase)) {
        const int slot = p.sums.first_slot + warp_cursor;
        interior = far_start[warp_cursor] <= dmin && __all_sync(0xffffffffu, run_slot0 == slot && run_slot1 == slot);
      }
      if (!interior) {
        f0 = far_row(pos0, kbase, window_edge_at(kbase));
        f1 = far_row(pos1, kbase, window_edge_at(kbase));
      }
    }
  };
  auto softmax = [&](bool causal_edge, int kbase) {
    if (kShaped && p.map.cap > 0) {
#pragma unroll
      for (int i = 0; i < 64; ++i) s[i] = softcapped(s[i], p.map.cap, p.map.pre);
    }
    const bool window_edge = window_edge_at(kbase);
    if (causal_edge || window_edge) {
#pragma unroll
      for (int n = 0; n < 16; ++n) {
        const int key = kbase + 8 * n + 2 * t4;
        if (outside(key, pos0)) s[4 * n] = -INFINITY;
        if (outside(key + 1, pos0)) s[4 * n + 1] = -INFINITY;
        if (outside(key, pos1)) s[4 * n + 2] = -INFINITY;
        if (outside(key + 1, pos1)) s[4 * n + 3] = -INFINITY;
      }
    }
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < 16; ++n) {
      mx0 = fmaxf(mx0, fmaxf(s[4 * n], s[4 * n + 1]));
      mx1 = fmaxf(mx1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
    }
    // A row lives in the 4 threads of a quad (lanes 4g .. 4g+3).
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
    // Under a window a row may have seen only masked keys so far (safe_max).
    const float mn0 = fmaxf(m0, mx0 * p.map.post_log2), mn1 = fmaxf(m1, mx1 * p.map.post_log2);
    const float b0 = safe_max(mn0), b1 = safe_max(mn1);
    alpha0 = fast_exp2(m0 - b0);  // 0 on the first tile (m = -inf)
    alpha1 = fast_exp2(m1 - b1);
    m0 = mn0;
    m1 = mn1;
    rs0 = 0.f;
    rs1 = 0.f;
    if constexpr (!kSums) {
#pragma unroll
      for (int n = 0; n < 16; ++n) {
        s[4 * n] = fast_exp2(fmaf(s[4 * n], p.map.post_log2, -b0));
        s[4 * n + 1] = fast_exp2(fmaf(s[4 * n + 1], p.map.post_log2, -b0));
        s[4 * n + 2] = fast_exp2(fmaf(s[4 * n + 2], p.map.post_log2, -b1));
        s[4 * n + 3] = fast_exp2(fmaf(s[4 * n + 3], p.map.post_log2, -b1));
        rs0 += s[4 * n] + s[4 * n + 1];
        rs1 += s[4 * n + 2] + s[4 * n + 3];
      }
    } else {
      // The far pairs of tiles that cross band or a window edge, before s turns into exponentials.
      float prob_hi0 = 0.f, score_hi0 = 0.f, prob_lo0 = 0.f, score_lo0 = 0.f;
      float prob_hi1 = 0.f, score_hi1 = 0.f, prob_lo1 = 0.f, score_lo1 = 0.f;
      if (!interior) {
        if (f0.general()) far_general(f0, pos0, kbase, 0, b0, prob_hi0, score_hi0, prob_lo0, score_lo0);
        if (f1.general()) far_general(f1, pos1, kbase, 2, b1, prob_hi1, score_hi1, prob_lo1, score_lo1);
      }
      // A masked score (-inf) becomes p.masked_score, whose exponential is
      // still exactly 0 but whose exponent is finite, so that p x is 0 and
      // not NaN in the loop. After the max and far_general, which need the
      // -inf; a masked tile is never simple or split, so its sum x goes unused.
      if (causal_edge || window_edge) {
#pragma unroll
        for (int i = 0; i < 64; ++i) s[i] = fmaxf(s[i], p.masked_score);
      }
      // The plain loop (the same l, bit for bit: the profile's forward is the
      // forward), plus per row: sum p (k - key0) (k the column, a constant),
      // sum p x and sum x, x the exponent. kSplit (some row of the warp is
      // split): also sum p and x over the columns k - key0 <= thr, the pairs
      // at distance >= boundary (pos - k >= boundary).
      const int key0 = kbase + 2 * t4;
      const bool split0 = !interior && f0.split(), split1 = !interior && f1.split();
      const int thr0 = split0 ? pos0 - f0.boundary - key0 : -1, thr1 = split1 ? pos1 - f1.boundary - key0 : -1;
      float pk0 = 0.f, pk1 = 0.f, px0 = 0.f, px1 = 0.f, sx0 = 0.f, sx1 = 0.f;
      float ph0 = 0.f, ph1 = 0.f, xh0 = 0.f, xh1 = 0.f;
      auto loop = [&](auto split_tag) {
        constexpr bool kSplit = decltype(split_tag)::value;
#pragma unroll
        for (int n = 0; n < 16; ++n) {
          float x[4];
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            x[c] = fmaf(s[4 * n + c], p.map.post_log2, -(c < 2 ? b0 : b1));
            s[4 * n + c] = fast_exp2(x[c]);
          }
          rs0 += s[4 * n] + s[4 * n + 1];
          rs1 += s[4 * n + 2] + s[4 * n + 3];
          pk0 = fmaf(s[4 * n + 1], static_cast<float>(8 * n + 1), fmaf(s[4 * n], static_cast<float>(8 * n), pk0));
          pk1 = fmaf(s[4 * n + 3], static_cast<float>(8 * n + 1), fmaf(s[4 * n + 2], static_cast<float>(8 * n), pk1));
          px0 = fmaf(s[4 * n + 1], x[1], fmaf(s[4 * n], x[0], px0));
          px1 = fmaf(s[4 * n + 3], x[3], fmaf(s[4 * n + 2], x[2], px1));
          sx0 += x[0] + x[1];
          sx1 += x[2] + x[3];
          if constexpr (kSplit) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
              if (8 * n + (c & 1) <= (c < 2 ? thr0 : thr1)) {  // a compile-time column against the row's thr
                (c < 2 ? ph0 : ph1) += s[4 * n + c];
                (c < 2 ? xh0 : xh1) += x[c];
              }
            }
          }
        }
      };
      if (__any_sync(0xffffffffu, split0 || split1))
        loop(std::true_type{});
      else
        loop(std::false_type{});
      // sum p (pos - key) = (pos - key0) sum p - sum p (key - key0); sum p
      // (x + b) is the sum of p times the score in log2 units.
      dist0 = fmaf(alpha0, dist0, static_cast<float>(pos0 - key0) * rs0 - pk0);
      dist1 = fmaf(alpha1, dist1, static_cast<float>(pos1 - key0) * rs1 - pk1);
      ent0 = fmaf(alpha0, ent0, fmaf(b0, rs0, px0));
      ent1 = fmaf(alpha1, ent1, fmaf(b1, rs1, px1));
      if (interior) {  // each row's 32 pairs continue its run
        run_p0 = fmaf(run_p0, alpha0, rs0);
        run_p1 = fmaf(run_p1, alpha1, rs1);
        run_s0 += fmaf(32.f, b0, sx0);
        run_s1 += fmaf(32.f, b1, sx1);
        return;
      }
      // Scores go into the runs in log2 units (x + b), turned into scores once per run (flush).
      auto simple_or_split = [&](const FarRow& f, int thr, float b, float rs, float sx, float ph, float xh, float& prob_hi,
                                 float& score_hi, float& prob_lo, float& score_lo) {
        if (f.simple()) {  // all of its 32 exponentials and exponents
          prob_hi = rs;
          score_hi = fmaf(32.f, b, sx);
        } else if (f.split()) {
          // This thread's columns 8n + e <= thr (e = 0, 1; thr >= -7) are at distance >= boundary.
          const int hi = min(16, max(0, thr + 8) / 8) + min(16, max(0, thr + 7) / 8);
          prob_hi = ph;
          score_hi = fmaf(static_cast<float>(hi), b, xh);
          // The rest is a difference of fp32 sums: when it is ~0, rounding
          // can make it slightly negative; its true value is >= 0 (as in
          // the distance-sums kernel's two-slot tiles).
          prob_lo = fmaxf(rs - ph, 0.f);
          score_lo = fmaf(static_cast<float>(32 - hi), b, sx - xh);
        }
      };
      simple_or_split(f0, thr0, b0, rs0, sx0, ph0, xh0, prob_hi0, score_hi0, prob_lo0, score_lo0);
      simple_or_split(f1, thr1, b1, rs1, sx1, ph1, xh1, prob_hi1, score_hi1, prob_lo1, score_lo1);
      // Runs: distances fall as keys rise, so slot_hi continues the current
      // run and slot_lo starts the next.
      run_p0 *= alpha0;
      run_p1 *= alpha1;
      auto extend = [&](const FarRow& f, int& run_slot, float& run_p, float& run_s, int row, float b, float ph,
                        float pl, float sh, float sl) {
        flush(f.any() && run_slot != f.slot_hi, run_slot, run_p, run_s, row, b);
        if (f.any()) {
          run_slot = f.slot_hi;
          run_p += ph;
          run_s += sh;
        }
        const bool two = f.any() && (f.bits & FarRow::kTwo);
        flush(two, run_slot, run_p, run_s, row, b);
        if (two) {
          run_slot = f.slot_lo();
          run_p += pl;
          run_s += sl;
        }
      };
      extend(f0, run_slot0, run_p0, run_s0, r0, b0, prob_hi0, prob_lo0, score_hi0, score_lo0);
      extend(f1, run_slot1, run_p1, run_s1, r0 + 8, b1, prob_hi1, prob_lo1, score_hi1, score_lo1);
    }
  };
  // Rescales O and the sums, and converts s to the bf16 A fragments of P V:
  // the accumulators of n-tiles 2kk, 2kk+1 (keys 16kk .. 16kk+15) are exactly
  // the A fragment of k-step kk (rows r0 / r1, keys 2 t4 + {0, 1} and + 8).
  auto rescale_and_pack = [&]() {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[4 * n] *= alpha0;
      o[4 * n + 1] *= alpha0;
      o[4 * n + 2] *= alpha1;
      o[4 * n + 3] *= alpha1;
    }
    l0 = l0 * alpha0 + rs0;
    l1 = l1 * alpha1 + rs1;
#pragma unroll
    for (int i = 0; i < 32; ++i) pa[i] = pack_bf16(s[2 * i], s[2 * i + 1]);
  };

  // kSums, after the last tile: the rows' stats (p (t - s) and entropy, per
  // head) and, once both warpgroups are done, the slot sums of the CTA.
  auto finish_sums = [&]() {
    flush(true, run_slot0, run_p0, run_s0, r0, safe_max(m0));
    flush(true, run_slot1, run_p1, run_s1, r0 + 8, safe_max(m1));
    auto quad_sum = [](float v) {
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      return v + __shfl_xor_sync(0xffffffffu, v, 2);
    };
    const float lf0 = quad_sum(l0), lf1 = quad_sum(l1);
    const float d0 = quad_sum(dist0), d1 = quad_sum(dist1), e0 = quad_sum(ent0), e1 = quad_sum(ent1);
    const float lse0 = m0 + log2f(lf0), lse1 = m1 + log2f(lf1);  // log2 units
    double distance = 0.0, entropy = 0.0;  // -sum p ln p = ln 2 (lse - sum p x)
    constexpr double kLn2 = 0.6931471805599453;
    if (t4 == 0) {
      row_lse[r0] = pos0 < p.T ? lse0 : INFINITY;
      row_lse[r0 + 8] = pos1 < p.T ? lse1 : INFINITY;
      if (pos0 < p.T) {
        distance += static_cast<double>(d0) / lf0;
        entropy += kLn2 * (static_cast<double>(lse0) - static_cast<double>(e0) / lf0);
      }
      if (pos1 < p.T) {
        distance += static_cast<double>(d1) / lf1;
        entropy += kLn2 * (static_cast<double>(lse1) - static_cast<double>(e1) / lf1);
      }
    }
    for (int lanes = 16; lanes > 0; lanes >>= 1) {
      distance += __shfl_xor_sync(0xffffffffu, distance, lanes);
      entropy += __shfl_xor_sync(0xffffffffu, entropy, lanes);
    }
    const int a0 = kv * p.group;  // the CTA's first head; row r is head a0 + r / P
    if (lane == 0 && !padding) {
      const unsigned bit = overflow_bit(SumsSite::fused_epilogue, SumsQuantity::stats);
      fixed::add_signed<kStatsFraction>(p.sums.out.stats + 2 * (a0 + r0 / P), distance, p.limits.stats,
                                        p.sums.out.overflow, bit);
      fixed::add_signed<kStatsFraction>(p.sums.out.stats + 2 * (a0 + r0 / P) + 1, entropy, p.limits.stats,
                                        p.sums.out.overflow, bit);
    }
    asm volatile("bar.sync 5, 256;\n" ::: "memory");  // every run and row_lse stored
    const int C = p.sums.coarse_slots;
    for (int i = tid - 128; i < p.group * C; i += 256) {
      const int g = i / C, c = i % C;
      float sum = 0.f;
      for (int r = g * P; r < (g + 1) * P; ++r) sum += exp2f(runs[r * kCoarse + c] - row_lse[r]);
      const long at = static_cast<long>(a0 + g) * p.sums.out.slots + p.sums.first_slot + c;
      fixed::add_probability(p.sums.out.prob_sum + at, sum, p.sums.out.overflow,
                             overflow_bit(SumsSite::fused_epilogue, SumsQuantity::prob));
      const Fixed128 sc = scores[g * kCoarse + c];
      if (sc.lo != 0 || sc.hi != 0) fixed::atomic_add(p.sums.out.score_sum + at, sc);
    }
  };

  // Warpgroup ping-pong: named barrier 3 + wg (256 threads: this warpgroup's
  // sync and the other's arrive) grants this warpgroup one round of wgmma
  // issues; it hands the turn to the other after. Rounds: tile 0's S, one per
  // later tile (S_j and P V_{j-1}), the last P V.
  const int sched_rounds = ntiles + 1;
  int round = 0;
  auto sched_wait = [&]() {
    asm volatile("bar.sync %0, 256;\n" ::"r"(3 + wg) : "memory");
  };
  auto sched_pass = [&]() {
    if (!(wg == 1 && round == sched_rounds - 1))  // keeps barrier 3's arrivals balanced
      asm volatile("bar.arrive %0, 256;\n" ::"r"(3 + (wg ^ 1)) : "memory");
    ++round;
  };
  if (wg == 1) asm volatile("bar.arrive 3, 256;\n" ::: "memory");  // warpgroup 0 goes first

  // Tile 0: S, softmax, P.
  mbar_wait(full_k, 0);
  sched_wait();
  issue_qk(0);
  sched_pass();
  far_rows(j0 * kKeys);
  wgmma_wait<0>();
#pragma unroll
  for (int i = 0; i < 64; ++i) fence_reg(s[i]);
  if (wt == 0) mbar_arrive(empty_k);
  softmax(ntiles == 1, j0 * kKeys);
  rescale_and_pack();

  for (int j = 1; j < ntiles; ++j) {  // key tile j0 + j
    const int st = j % kStages, prev = (j - 1) % kStages;
    mbar_wait(full_k + 8 * st, (j / kStages) & 1);
    mbar_wait(full_v + 8 * prev, ((j - 1) / kStages) & 1);
    sched_wait();
    issue_qk(st);                                        // S_j = Q K_j^T
    issue_pv(prev);                                      // O += P_{j-1} V_{j-1}
    sched_pass();
    far_rows((j0 + j) * kKeys);
    wgmma_wait<1>();                                     // S_j done, P V still running
#pragma unroll
    for (int i = 0; i < 64; ++i) fence_reg(s[i]);
    if (wt == 0) mbar_arrive(empty_k + 8 * st);
    softmax(j == ntiles - 1, (j0 + j) * kKeys);
    wgmma_wait<0>();                                     // P V done: O and pa free again
#pragma unroll
    for (int i = 0; i < D / 2; ++i) fence_reg(o[i]);
#pragma unroll
    for (int i = 0; i < 32; ++i) fence_reg(pa[i]);
    if (wt == 0) mbar_arrive(empty_v + 8 * prev);
    rescale_and_pack();
  }
  const int last = (ntiles - 1) % kStages;
  mbar_wait(full_v + 8 * last, ((ntiles - 1) / kStages) & 1);
  sched_wait();
  issue_pv(last);
  sched_pass();
  wgmma_wait<0>();
#pragma unroll
  for (int i = 0; i < D / 2; ++i) fence_reg(o[i]);

  write_attention_rows<D>([&](int n, int c) { return o[4 * n + c]; }, m0, m1, l0, l1, pos0, pos1, p.T,
                          kv * p.group + r0 / P, acols, t4, p.out, p.lse);
  if constexpr (kSums) finish_sums();
}

template <int D, bool kSums, bool kShaped>
void launch(const bf16* k, const bf16* v, const Params& p, cudaStream_t stream) {
  const int smem = Layout<D, kSums>::bytes;
  auto kernel = attention_wgmma_kernel<D, kSums, kShaped>;
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "attention_wgmma smem attribute");
  const CUtensorMap tk = tiled_tensor_map(k, p.T, p.kv_heads * D, kKeys, "attention_forward_wgmma_bf16"),
                    tv = tiled_tensor_map(v, p.T, p.kv_heads * D, kKeys, "attention_forward_wgmma_bf16");
  const int P = p.positions;
  const dim3 grid((p.T + P - 1) / P, p.kv_heads);
  kernel<<<grid, kThreads, smem, stream>>>(tk, tv, p);
  cuda_check(cudaGetLastError(), "attention_wgmma_kernel launch");
}

}  // namespace

bool attention_forward_wgmma_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                                  const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream,
                                  const FusedDistanceSums* sums) {
  const int KV = shape.kv_heads, d = shape.head_dim;
  const int G = check_attention_shape("attention_forward_wgmma_bf16", shape, rope);
  // Supported here: head_dim 64 or 128 on a compute-capability 9.0 device
  // (the sm_90a code), 16-byte aligned q, k, v (TMA and vector loads).
  if ((d != 64 && d != 128) || shape.T <= 0 || !aligned16(q) || !aligned16(k) || !aligned16(v) || !device_is_sm90())
    return false;
  const bool vec_rope = rope.pairs % 8 == 0 && aligned16(rope.cos) && aligned16(rope.sin);
  if (shape.window < 0) throw std::runtime_error("attention_forward_wgmma_bf16: negative window");
  if (sums && (sums->coarse_slots < 1 || sums->coarse_slots > kCoarse || sums->band < kKeys ||
               sums->first_slot < 0 || sums->first_slot + sums->coarse_slots > sums->out.slots ||
               sums->out.stats == nullptr || sums->out.prob_sum == nullptr || sums->out.score_sum == nullptr ||
               sums->out.overflow == nullptr))
    throw std::runtime_error("attention_forward_wgmma_bf16: fused distance sums need 1 .. " + std::to_string(kCoarse) +
                             " coarse slots inside the table, a band of at least " + std::to_string(kKeys) +
                             " and every output (stats, overflow)");
  static_assert(kRows == 128, "tile_positions assumes 128 query rows per CTA");
  const int P = tile_positions(G);
  Params p{q,        rope.cos,     rope.sin, out, lse, shape.T, shape.query_heads, KV, G, rope.pairs, P,
           shape.imaginary_twins, vec_rope, shape.window, score_map(shape),
           sums ? *sums : FusedDistanceSums{}, sums_limits(shape.T)};
  p.score_unit_log2 = static_cast<double>(p.map.unit) / static_cast<double>(p.map.post_log2);
  p.masked_score = static_cast<float>(-1e30 / static_cast<double>(p.map.post_log2));
  if (sums && !(p.map.post_log2 > 0.f && std::isfinite(p.masked_score)))
    throw std::runtime_error("attention_forward_wgmma_bf16: fused distance sums need a score scale (log2 units per "
                             "score) of at least 3e-9, got " + std::to_string(p.map.post_log2));
  const bool shaped = p.window > 0 || p.map.cap > 0;  // the sums build is always the general one
  if (d == 128)
    sums ? launch<128, true, true>(k, v, p, stream)
         : (shaped ? launch<128, false, true>(k, v, p, stream) : launch<128, false, false>(k, v, p, stream));
  else
    sums ? launch<64, true, true>(k, v, p, stream)
         : (shaped ? launch<64, false, true>(k, v, p, stream) : launch<64, false, false>(k, v, p, stream));
  return true;
}

}  // namespace ropescope::kernels
