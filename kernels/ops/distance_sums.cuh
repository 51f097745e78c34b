// Distance sums of causal attention (the second pass of a distance profile),
// the kernel body shared by its two builds: for every attention head, the
// sums by distance slot of the probabilities and scaled scores, and the
// per-pair sums of p (t - s) and -p ln p, with no T x T matrix. Scores are
// recomputed from the same bf16 operands as the forward (same query rotation
// and bf16 rounding, fp32 accumulation over k-steps of 16 dims) and
// probabilities come from the forward's saved log-sum-exp:
// p = exp2(score log2 e - lse log2 e), score = scale q.k, softcapped when
// AttentionShape asks (then s below holds the capped score, not the raw dot).
// Under a sliding window W, pairs with t - s >= W count nothing (probability
// 0, no score) and key tiles wholly before a CTA's first window are skipped.
//
// Tiling. One CTA = 8 warps = 128 consecutive query positions of ONE head
// (blockIdx.y), so one set of slot accumulators serves the whole CTA. Key
// tiles of 64 keys in two stages (cp.async by the CTA's threads, or TMA by a
// producer warp in the wgmma build). Each warp owns 16 rows; a 16 x 64
// warp tile covers the 79 distances (wpos - kbase - 63) .. (wpos - kbase + 15).
// The scores of a warp tile come from a Tiles policy (below):
//  - SyncTiles (attention_profile.cu), mma.sync m16n8k16 per warp: head
//    dims 64, 80, 96, 128 (two CTAs an SM; the Q tile becomes the warps'
//    scratch once its fragments are in registers) and 256 (one CTA an SM: Q
//    fragments re-read from the tile, which the scratch then sits beside);
//  - WgmmaTiles (attention_profile_wgmma.cu, sm_90a), wgmma m64n64k16 per
//    warpgroup with both operands in shared memory: head dim 256, where each
//    mma.sync warp re-read the whole key tile and its queries from shared
//    memory for every tile.
// Reduction per warp tile, in fp32, then into exact fixed-point shared
// accumulators (fixed_point.hpp: 128-bit integers added with 64-bit integer
// atomics, so their totals do not depend on the order of the adds and the
// sums are bitwise reproducible; scores scaled by map.unit per addend):
//  - when those distances fall in one slot (most tiles beyond the exact
//    region of a log-binned profile) or two, each thread adds its sums to a
//    run kept in registers while the slot stays the same (far from the
//    diagonal a bin spans many key tiles); when the slot changes the warp adds
//    up the run with shuffles and lane 0 adds 2 numbers to shared memory;
//  - otherwise (near the diagonal, where slots are single distances) the warp
//    writes its tile to a shared scratch tile (probabilities, then scores)
//    and lane i adds up diagonals i, i + 32, i + 64 into the warp's row of
//    diagonal sums; then the CTA's threads add up, per distance of the CTA
//    tile (191), the warps' sums in warp order (fp64) and make one shared
//    fixed-point add per distance and quantity. (It was one add per warp and
//    distance, each a call and a compare-and-swap loop: 64-bit shared
//    atomics are CAS loops on sm_90, and the 8 warps' adds collided.)
// The per-thread sums of p (t - s) and entropy stay private fp64 sums in
// shared memory (a fixed order per thread), added up with shuffles.
// At the end the CTA adds its nonzero slots' 128-bit totals into the per-head
// fixed-point arrays in global memory (two integer atomics per slot and
// CTA), and each warp its stats. An addend outside its format's limit sets
// an overflow bit instead (site separate, or band for the fused path's pass).
#pragma once

#include <cuda_bf16.h>

#include <algorithm>
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

namespace ropescope::kernels {
// The slot capacity of the wgmma build (attention_profile_wgmma.cu), read by
// distance_sums_slot_capacity.
int wgmma_distance_sums_slot_capacity();

// Internal linkage: each kernel file that includes this gets its own copies.
namespace {
using namespace mma;

constexpr int kWarps = 8;
constexpr int kRows = 16 * kWarps;  // query positions per CTA
constexpr int kKeys = 64;           // keys per tile
constexpr int kThreads = 32 * kWarps;
constexpr int kDiagonals = 16 + kKeys - 1;  // distances one warp tile spans
// Scratch rows of 65 floats: lane i reading (r, r - i + 63) for fixed r hits
// 32 consecutive words, so the diagonal sums are free of bank conflicts.
constexpr int kScratchStride = kKeys + 1;
constexpr int kScratchBytes = kWarps * 16 * kScratchStride * 4;
constexpr int kThreadStatsBytes = kThreads * 2 * 8;  // two fp64 sums per thread
// A CTA tile (128 rows x 64 keys) spans 191 distances: warp w's diagonal i
// is the CTA's diagonal 16 w + i.
constexpr int kCtaDiagonals = 16 * (kWarps - 1) + kDiagonals;
static_assert(kCtaDiagonals <= kThreads, "one thread per CTA diagonal");
// The warps' diagonal sums of a tile ([kWarps][kDiagonalsPadded] float2:
// probability, score) and whether each warp left them ([kWarps] int).
constexpr int kDiagonalsPadded = kDiagonals + 1;
constexpr int kTailBytes = kThreadStatsBytes + kWarps * kDiagonalsPadded * 8 + kWarps * 4;

struct Params {
  const bf16* q;  // [T, Q*D], unrotated
  const bf16* k;  // [T, KV*D], rotated
  const float* cos;
  const float* sin;
  const float* lse;  // [A, T], natural log
  int T, query_heads, kv_heads, group, pairs;
  bool twins;
  int window;        // INT_MAX: plain causal (pos - key < window always)
  ScoreMap map;      // s * map.post_log2 is the score in log2 units; s * map.unit the score
  DistanceSumsOut out;
  SumsLimits limits;  // of one addend, at T (fixed_point.hpp)
  SumsSite site;      // separate, or band (the fused profile's near pass): names the overflow
};

// Where the scores come from: a Tiles policy gives the shared-memory layout,
// the staging of the rotated queries and the key tiles, and a warp's 16 x 64
// score tile in the m16n8 accumulator layout (element (n, c): row g + 8 (c / 2),
// key 8n + 2 t4 + (c & 1)):
//   kStageBytes (one K stage), kQueryOffset, kScratchOffset,
//   kFixedBytes (bytes before the slot accumulators, a multiple of 16),
//   kAlign (of the layout's base: 1024 for wgmma operands, else 16; the
//   launch adds kAlign - 16 bytes of slack), kCtaThreads, sync() (a barrier
//   over the kThreads threads that reduce), stage_queries(Qs, p, q0, a, tid),
//   Scorer(Qs, warp, lane), kSoftcapByTile (softcap_warp_tile, mma.cuh:
//   tanhf's polynomial branch alone for warp tiles below its bound; false
//   where its second loop makes ptxas spill, as at 128 registers), and
//   kPipelined:
//   - false: the kThreads threads copy the key tiles, load_keys(Ks, p, j,
//     kv, tid) (cp.async, no commit) and keys_landed() (after the copies'
//     wait, before the CTA barrier), and each warp forms the scores of the
//     tiles it sees, scorer.scores(kt, s);
//   - true: a producer warp past them (kCtaThreads = kThreads + 32) streams
//     the key tiles, init(base) (one thread, before the CTA barrier),
//     produce(base, kv, j0, tiles, lane), wait_keys(base, n) and
//     release_keys(base, n, tid) for the n-th tile, and the products are
//     warpgroup-collective and asynchronous, scorer.issue(kt, s) and
//     scorer.wait(s), formed for every tile by every warpgroup; the body
//     reduces the previous tile in between.
// The mma.sync policy is SyncTiles (attention_profile.cu), the wgmma one
// WgmmaTiles (attention_profile_wgmma.cu).

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// A thread's sums over its 32 elements of a warp tile (rows pos0, pos1; keys
// key0 + 8n + (c & 1)): per row sum p and sum p (8n + (c & 1)) (the distance
// statistic without an int-to-float conversion per element), sum -p log2 p,
// sum of raw scores, and with kSplit the part at distance >= boundary.
// kEdge: some pairs are not counted (key after the row, key at or past the
// row's window, or row past T).
struct TileSums {
  float p_row0 = 0.f, p_row1 = 0.f, k_row0 = 0.f, k_row1 = 0.f, entropy = 0.f, s_all = 0.f, p_hi = 0.f, s_hi = 0.f;
};

// Whether pair (pos, key) counts: key not after the row, inside the row's window, row inside the sequence.
__device__ __forceinline__ bool counted_pair(int pos, int key, int window, int T) {
  return key <= pos && pos - key < window && pos < T;
}
// Element (n, c)'s share of its row's stats (p = pv, x = log2 p): sum p,
// sum p (8n + (c & 1)) (the distance statistic's column part) and sum -p log2 p.
__device__ __forceinline__ void add_row_stats(TileSums& t, int n, int c, float pv, float x) {
  const float offset = static_cast<float>(8 * n + (c & 1));  // a compile-time constant
  if (c < 2) {
    t.p_row0 += pv;
    t.k_row0 = fmaf(pv, offset, t.k_row0);
  } else {
    t.p_row1 += pv;
    t.k_row1 = fmaf(pv, offset, t.k_row1);
  }
  t.entropy = fmaf(-pv, x, t.entropy);
}

template <bool kEdge, bool kSplit>
__device__ __forceinline__ void tile_sums(const float (&s)[8][4], float scale_log2, float lse0, float lse1, int pos0,
                                          int pos1, int key0, int T, int window, int boundary, TileSums& t) {
#pragma unroll
  for (int n = 0; n < 8; ++n) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int pos = c < 2 ? pos0 : pos1, key = key0 + 8 * n + (c & 1);
      const float x = fmaf(s[n][c], scale_log2, -(c < 2 ? lse0 : lse1));  // log2 p
      float pv = fast_exp2(x), sv = s[n][c];
      if (kEdge && !counted_pair(pos, key, window, T)) pv = sv = 0.f;
      add_row_stats(t, n, c, pv, x);
      t.s_all += sv;
      if (kSplit && pos - key >= boundary) {
        t.p_hi += pv;
        t.s_hi += sv;
      }
    }
  }
}

// A partial's fixed-point adds, out of line: inlined into the kernel at
// d = 128 they made ptxas spill (36 bytes; none called), and they run only
// once per run or per near-diagonal distance and CTA tile.
__device__ __noinline__ void add_prob_partial(Fixed128* acc, double v, unsigned* flags, unsigned bit) {
  fixed::add_probability(acc, v, flags, bit);
}
// The score s (raw units) as s * unit in score units: one fp64 rounding.
__device__ __noinline__ void add_score_partial(Fixed128* acc, double s, double unit, double limit, unsigned* flags,
                                               unsigned bit) {
  fixed::add_signed<kScoreFraction>(acc, s * unit, limit, flags, bit);
}

// The kernel's body; kStats: also the per-pair sums of p (t - s) and entropy
// (off for the band pass of FusedDistanceSums, whose forward adds them);
// policy: the Tiles object (the wgmma build's holds the keys' tensor map).
template <int D, bool kStats, class Tiles>
__device__ __forceinline__ void distance_sums_body(const Params& p, const Tiles& policy, unsigned char* smem_raw) {
  // The base, aligned by an offset from smem_raw: pointers derived from it
  // stay in the shared window (shared-memory instructions; through an
  // integer cast they became generic loads, stores and atomics).
  constexpr unsigned kMask = Tiles::kAlign - 1;
  unsigned char* const base =
      Tiles::kAlign > 16 ? smem_raw + ((Tiles::kAlign - (smem_addr(smem_raw) & kMask)) & kMask) : smem_raw;
  // [K stages][Q tile][warps' scratch] (Tiles' offsets; the scratch may overlay the Q tile)
  // [prob, score accumulators: 2 x slots Fixed128][per-thread stats: 2 x kThreads doubles]
  // [diagonal sums][left flags]
  bf16* Ks = reinterpret_cast<bf16*>(base);
  bf16* Qs = reinterpret_cast<bf16*>(base + Tiles::kQueryOffset);
  float* scratch = reinterpret_cast<float*>(base + Tiles::kScratchOffset);
  // kFixedBytes is a multiple of 16: the accumulators' 8-byte words are aligned.
  Fixed128* acc_prob = reinterpret_cast<Fixed128*>(base + Tiles::kFixedBytes);
  Fixed128* acc_score = acc_prob + p.out.slots;

  const int q0 = (gridDim.x - 1 - blockIdx.x) * kRows;  // latest (heaviest) positions first
  const int a = blockIdx.y, kv = a / p.group;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int* slot_of = p.out.slot_of_distance;
  const int q_last = min(q0 + kRows, p.T) - 1;
  const int tiles = q_last / kKeys + 1;
  // First key tile: the one holding key q0 - W + 1, the first key position q0 sees.
  const int j0 = max(0, q0 - p.window + 1) / kKeys;
  auto load_k = [&](int j, int stage) {
    if constexpr (!Tiles::kPipelined) {
      Tiles::load_keys(Ks + stage * (Tiles::kStageBytes / 2), p, j, kv, tid);
      cp_async_commit();
    }
  };
  if constexpr (Tiles::kPipelined) {
    if (tid == 0) policy.init(base);
    __syncthreads();  // the stage barriers initialised (the producer warp too)
    if (tid >= kThreads) {
      policy.produce(base, kv, j0, tiles, lane);
      return;
    }
  }

  for (int i = tid; i < 2 * p.out.slots; i += kThreads) acc_prob[i] = Fixed128{0, 0};
  Tiles::stage_queries(Qs, p, q0, a, tid);
  load_k(j0, 0);
  Tiles::sync();  // Qs written

  const int wrow = warp * 16, wpos = q0 + wrow;
  const int g = lane >> 2, t4 = lane & 3;
  const int pos0 = wpos + g, pos1 = pos0 + 8;
  const typename Tiles::Scorer scorer(Qs, warp, lane);
  Tiles::sync();  // every warp holds what it needs of Qs (its fragments, when they live in registers)
  float* wscratch = scratch + warp * 16 * kScratchStride;

  constexpr float kLog2e = 1.4426950408889634f;
  const float lse0 = pos0 < p.T ? p.lse[static_cast<long>(a) * p.T + pos0] * kLog2e : 0.f;
  const float lse1 = pos1 < p.T ? p.lse[static_cast<long>(a) * p.T + pos1] * kLog2e : 0.f;
  const int row_last = min(wpos + 15, p.T - 1);  // last position of this warp inside the sequence
  // This thread's running sums of p (t - s) and -p log2 p, in fp64 shared
  // memory (registers are all taken at 2 CTAs per SM).
  double* thread_stats = reinterpret_cast<double*>(acc_score + p.out.slots) + 2 * tid;
  if constexpr (kStats) thread_stats[0] = thread_stats[1] = 0.0;
  float2* const diagonal_sums = reinterpret_cast<float2*>(acc_score + p.out.slots + kThreads);  // [kWarps][kDiagonalsPadded]
  int* const left_diagonals = reinterpret_cast<int*>(diagonal_sums + kWarps * kDiagonalsPadded);  // [kWarps]
  float2* const my_diagonals = diagonal_sums + warp * kDiagonalsPadded;
  // The current run of tiles whose pairs fall in one slot: keys go up as j
  // does, so distances (and slots) only go down, and far from the diagonal a
  // slot spans many tiles. Each thread keeps its share of the run's sums and
  // the warp adds them up once, when the slot changes.
  // fp32: a run holds at most a few hundred tiles of one thread (a bin of
  // width w spans w / 64 tiles), so its rounding stays near 1e-6 relative.
  int run_slot = -1;
  float run_prob = 0.f, run_score = 0.f;
  const unsigned prob_bit = overflow_bit(p.site, SumsQuantity::prob);
  const unsigned score_bit = overflow_bit(p.site, SumsQuantity::score);
  auto flush_run = [&]() {
    if (run_slot < 0) return;
    const float p_sum = warp_sum(run_prob), s_sum = warp_sum(run_score);
    if (lane == 0) {
      add_prob_partial(acc_prob + run_slot, p_sum, p.out.overflow, prob_bit);
      add_score_partial(acc_score + run_slot, s_sum, p.map.unit, p.limits.score, p.out.overflow, score_bit);
    }
    run_slot = -1;
    run_prob = run_score = 0.f;
  };

  // Whether a row of the warp at wpos = w sees a key of the tile at kbase: a
  // row inside the sequence, the tile's first key not after the warp's last
  // row, and the tile's smallest distance, w - (kbase + 63), inside the window.
  auto warp_sees = [&](int w, int kbase) {
    return w < p.T && kbase <= min(w + 15, p.T - 1) && w - (kbase + kKeys - 1) < p.window;
  };
  // The slots of the smallest and largest distance of the warp's tile and
  // of the CTA's tile at kbase (zeros where the tile is not seen): global
  // loads, which the pipelined loop makes one tile ahead (waiting on them
  // where they were used was about 7 % of its stall samples).
  struct TileSlots {
    int lo = 0, hi = 0, cta_lo = 0, cta_hi = 0;
  };
  // The distances rows first .. last (inside T) can count in the key tile at
  // kbase: from the tile's last key against the first row to its first key
  // against the last row, below the window (none when .y < .x).
  auto distances = [&](int first, int last, int kbase) {
    return make_int2(max(first - (kbase + kKeys - 1), 0), min(last - kbase, p.window - 1));
  };
  auto tile_slots = [&](int kbase) {
    TileSlots t;
    if (warp_sees(wpos, kbase)) {
      const int2 d = distances(wpos, row_last, kbase);
      t.lo = slot_of[d.x];
      t.hi = slot_of[d.y];
    }
    const int2 cta = distances(q0, q_last, kbase);
    if (cta.y >= cta.x) {
      t.cta_lo = slot_of[cta.x];
      t.cta_hi = slot_of[cta.y];
    }
    return t;
  };
  // The reduction of one warp tile (keys kbase .., scores s, slots its
  // tile_slots): its runs, or with more than two slots in its distances its
  // diagonal sums into my_diagonals. Returns whether it left diagonal sums.
  auto reduce_tile = [&](int kbase, float (&s)[8][4], const TileSlots& slots) {
    if (!warp_sees(wpos, kbase)) return false;  // (the wgmma build forms every tile's scores)
    if (p.map.cap > 0) {
      if constexpr (Tiles::kSoftcapByTile) {
        softcap_warp_tile<32>(&s[0][0], p.map.cap, p.map.pre);
      } else {
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
          for (int c = 0; c < 4; ++c) s[n][c] = softcapped(s[n][c], p.map.cap, p.map.pre);
      }
    }

    // Element (n, c): row pos0 (c < 2) or pos1, key kbase + 8n + 2 t4 + (c & 1).
    // Pairs with key > row, at distance >= W, or rows past T (last CTA only),
    // count nothing. Distances counted: d_min .. d_max (d_min < W: the skip above).
    const bool edge = kbase + kKeys - 1 > wpos || wpos + 15 >= p.T || row_last - kbase >= p.window;
    const int d_max = distances(wpos, row_last, kbase).y;
    const int slot_lo = slots.lo, slot_hi = slots.hi;  // slot_of[d_min], slot_of[d_max]
    TileSums t;
    const int key0 = kbase + 2 * t4;
    // sum over the row of p (pos - key) = (pos - key0) sum p - sum p (8n + (c & 1)).
    auto add_stats = [&]() {
      if constexpr (!kStats) return;
      thread_stats[0] += static_cast<double>(static_cast<float>(pos0 - key0) * t.p_row0 - t.k_row0) +
                         static_cast<double>(static_cast<float>(pos1 - key0) * t.p_row1 - t.k_row1);
      thread_stats[1] += t.entropy;
    };
    if (slot_hi - slot_lo <= 1) {
      if (slot_hi == slot_lo) {
        if (edge)
          tile_sums<true, false>(s, p.map.post_log2, lse0, lse1, pos0, pos1, key0, p.T, p.window, INT_MAX, t);
        else
          tile_sums<false, false>(s, p.map.post_log2, lse0, lse1, pos0, pos1, key0, p.T, p.window, INT_MAX, t);
      } else {
        const int boundary = p.out.slot_start[slot_hi];  // first distance of slot_hi
        if (edge)
          tile_sums<true, true>(s, p.map.post_log2, lse0, lse1, pos0, pos1, key0, p.T, p.window, boundary, t);
        else
          tile_sums<false, true>(s, p.map.post_log2, lse0, lse1, pos0, pos1, key0, p.T, p.window, boundary, t);
      }
      add_stats();
      // The part at slot_hi continues the run (it came from larger distances);
      // the rest starts or continues the run of slot_lo.
      if (run_slot != slot_hi) flush_run();
      run_slot = slot_hi;
      run_prob += t.p_hi;
      run_score += t.s_hi;
      if (slot_lo != slot_hi) {
        flush_run();
        run_slot = slot_lo;
      }
      // The rest's mass is a difference of fp32 sums: when it is ~0, rounding
      // can make it slightly negative. Its true value is >= 0, so it is
      // clamped there (never a larger error; NaN passes on to be flagged):
      // probability addends must be >= 0 (fixed_point.hpp).
      const float rest = t.p_row0 + t.p_row1 - t.p_hi;
      run_prob += rest < 0.f ? 0.f : rest;
      run_score += t.s_all - t.s_hi;
      return false;
    }
    flush_run();
    // Diagonal path: probabilities (pass 0, which also adds up the row
    // stats as tile_sums does), then raw scores (pass 1), through the warp's
    // scratch tile. Tile element (r, col) has distance (wpos - kbase - 63) +
    // (r - col + 63); the diagonal index i = r - col + 63 runs over 0 .. 78.
    // Only edge tiles test each pair (key after the row, past the window, row past T).
#pragma unroll
    for (int pass = 0; pass < 2; ++pass) {
      // This thread's elements sit at fixed offsets from (g, 2 t4): rows g and g + 8, columns 8n + 2 t4 + (c & 1).
      float* const mine = wscratch + g * kScratchStride + 2 * t4;
      auto store = [&](auto edge_tile) {
#pragma unroll
        for (int n = 0; n < 8; ++n) {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            float v = s[n][c];
            bool visible = true;
            if constexpr (decltype(edge_tile)::value) {
              const int pos = c < 2 ? pos0 : pos1, key = key0 + 8 * n + (c & 1);
              visible = counted_pair(pos, key, p.window, p.T);
            }
            if (pass == 0) {
              const float x = fmaf(v, p.map.post_log2, -(c < 2 ? lse0 : lse1));  // log2 p
              v = visible ? fast_exp2(x) : 0.f;
              if constexpr (kStats) add_row_stats(t, n, c, v, x);
            } else if (!visible) {
              v = 0.f;
            }
            mine[(c < 2 ? 0 : 8 * kScratchStride) + 8 * n + (c & 1)] = v;
          }
        }
      };
      if (edge)
        store(std::true_type{});
      else
        store(std::false_type{});
      __syncwarp();
      // Lane i adds up diagonals i, i + 32 and i + 64 (< 79): element (r,
      // r - i + 63) for the rows r = max(0, i - 63) .. min(15, i). Unrolled
      // over the 16 rows: the middle third (32 <= i < 64) takes all of them;
      // the first has r <= i, the last r >= i - 63 (predicated reads).
#pragma unroll
      for (int third = 0; third < 3; ++third) {
        const int i = lane + 32 * third;
        if (third == 2 && i >= kDiagonals) break;
        const int dd = wpos - kbase - (kKeys - 1) + i;
        const float* diagonal = wscratch + (kKeys - 1) - i;  // + r * (kScratchStride + 1): row r's element
        float sum = 0.f;
        if (dd >= 0 && dd <= d_max) {
#pragma unroll
          for (int r = 0; r < 16; ++r)
            if (third == 1 || (third == 0 ? r <= i : r >= i - (kKeys - 1))) sum += diagonal[r * (kScratchStride + 1)];
        }
        if (pass == 0)
          my_diagonals[i].x = sum;
        else
          my_diagonals[i].y = sum;
      }
      __syncwarp();
    }
    add_stats();
    return true;
  };

  // After the warp tiles of the tile at kbase (left: whether this warp left
  // diagonal sums), when any warp's tile can meet more than two slots (the
  // CTA's distances do; the same for every thread): the warps' diagonal sums
  // are added up per distance of the CTA tile, in warp order, and each
  // distance's total goes into the slot accumulators once (in place of one
  // fixed-point add per warp and distance: 64-bit shared atomics are
  // compare-and-swap loops on sm_90, and the warps' adds collided).
  auto cta_diagonal_sums = [&](int kbase, bool left, const TileSlots& slots) {
    const int2 cta = distances(q0, q_last, kbase);
    const int cta_dmin = cta.x, cta_dmax = cta.y;
    if (cta_dmax < cta_dmin || slots.cta_hi - slots.cta_lo <= 1) return;
    if (lane == 0) left_diagonals[warp] = left;
    Tiles::sync();
    if (tid < kCtaDiagonals) {
      const int dd = q0 - kbase - (kKeys - 1) + tid;  // CTA diagonal tid = warp w's diagonal tid - 16 w
      if (dd >= cta_dmin && dd <= cta_dmax) {
        double prob = 0.0, score = 0.0;
        for (int w = max(0, (tid - (kDiagonals - 1) + 15) / 16); w <= min(kWarps - 1, tid / 16); ++w) {
          if (!left_diagonals[w]) continue;
          const float2 v = diagonal_sums[w * kDiagonalsPadded + tid - 16 * w];
          prob += v.x;
          score += v.y;
        }
        const int slot = slot_of[dd];
        if (prob != 0.0) add_prob_partial(acc_prob + slot, prob, p.out.overflow, prob_bit);
        if (score != 0.0)
          add_score_partial(acc_score + slot, score, p.map.unit, p.limits.score, p.out.overflow, score_bit);
      }
    }
    // The diagonal sums free for the next tile (in the cp.async build, the loop's barrier).
    if constexpr (Tiles::kPipelined) Tiles::sync();
  };

  if constexpr (!Tiles::kPipelined) {
    for (int j = j0; j < tiles; ++j) {
      const int stage = (j - j0) & 1;
      cp_async_wait<0>();
      Tiles::keys_landed();
      Tiles::sync();  // tile j visible; every warp is done with the other stage and the diagonal sums
      if (j + 1 < tiles) load_k(j + 1, stage ^ 1);
      const int kbase = j * kKeys;
      bool left = false;
      const TileSlots slots = tile_slots(kbase);
      if (warp_sees(wpos, kbase)) {
        float s[8][4];
        scorer.scores(Ks + stage * (Tiles::kStageBytes / 2), s);
        left = reduce_tile(kbase, s, slots);
      }
      cta_diagonal_sums(kbase, left, slots);
    }
  } else {
    // Software-pipelined (asynchronous products): tile j's product runs
    // while tile j - 1's scores, taken from it one step earlier, are
    // reduced. No CTA barrier a tile: each warpgroup waits for its tile's
    // keys and hands the stage back once its product is done, so the two
    // drift apart. Every warpgroup forms every tile's product, seen by its
    // rows or not: a product in a divergent branch made ptxas serialize all
    // of them (C7518).
    // Tile j's slots are loaded with its product, used one step later.
    float s_prev[8][4], s_next[8][4];
    TileSlots slots_prev;
    for (int j = j0; j < tiles; ++j) {
      const int n = j - j0;
      policy.wait_keys(base, n);
      scorer.issue(Ks + (n & 1) * (Tiles::kStageBytes / 2), s_next);
      const TileSlots slots_next = tile_slots(j * kKeys);
      if (j > j0) cta_diagonal_sums((j - 1) * kKeys, reduce_tile((j - 1) * kKeys, s_prev, slots_prev), slots_prev);
      scorer.wait(s_next);
      policy.release_keys(base, n, tid);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int c = 0; c < 4; ++c) s_prev[i][c] = s_next[i][c];
      slots_prev = slots_next;
    }
    cta_diagonal_sums((tiles - 1) * kKeys, reduce_tile((tiles - 1) * kKeys, s_prev, slots_prev), slots_prev);
  }

  flush_run();
  Tiles::sync();  // all accumulators final
  Fixed128* prob_out = p.out.prob_sum + static_cast<long>(a) * p.out.slots;
  Fixed128* score_out = p.out.score_sum + static_cast<long>(a) * p.out.slots;
  const int last_slot = q_last >= 0 ? slot_of[q_last] : -1;
  for (int k = tid; k <= last_slot; k += kThreads) {
    fixed::add_probability_total(prob_out + k, acc_prob[k], p.out.overflow, prob_bit);
    if (acc_score[k].lo != 0 || acc_score[k].hi != 0) fixed::atomic_add(score_out + k, acc_score[k]);
  }
  if (!kStats || p.out.stats == nullptr) return;  // the band pass of FusedDistanceSums: the forward wrote them
  const double distance_acc = warp_sum(thread_stats[0]), entropy_acc = warp_sum(thread_stats[1]);
  if (lane == 0) {
    const unsigned stats_bit = overflow_bit(p.site, SumsQuantity::stats);
    fixed::add_signed<kStatsFraction>(p.out.stats + 2 * a, distance_acc, p.limits.stats, p.out.overflow, stats_bit);
    fixed::add_signed<kStatsFraction>(p.out.stats + 2 * a + 1, entropy_acc * 0.6931471805599453, p.limits.stats,
                                      p.out.overflow, stats_bit);
  }
}

// ---- host side -------------------------------------------------------------
// Shared-memory bytes a launch adds to kFixedBytes besides the slots: the
// base's alignment slack and the stats and diagonal tail.
template <class Tiles>
constexpr int extra_smem_bytes() {
  return (Tiles::kAlign > 16 ? Tiles::kAlign - 16 : 0) + kTailBytes;
}

// The most slots a Tiles build holds: the device's opt-in shared memory less
// the fixed bytes, over two Fixed128 a slot.
template <class Tiles>
int slot_capacity() {
  int device = 0, optin = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "cudaDeviceGetAttribute");
  return (optin - Tiles::kFixedBytes - extra_smem_bytes<Tiles>()) / (2 * static_cast<int>(sizeof(Fixed128)));
}

// The checked parameters of a launch; `who` names the entry point in errors.
inline Params sums_params(const char* who, const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                          const AttentionShape& shape, const float* lse, const DistanceSumsOut& out, SumsSite site) {
  const int G = check_attention_shape(who, shape, rope);
  const std::string name(who);
  if (!tiled_head_dim(shape.head_dim))
    throw std::runtime_error(name + ": head_dim must be 64, 80, 96, 128 or 256, got " +
                             std::to_string(shape.head_dim));
  if (out.slots < 1 || out.slots > distance_sums_slot_capacity(shape.head_dim))
    throw std::runtime_error(name + ": " + std::to_string(out.slots) + " slots, outside 1 .. distance_sums_slot_capacity");
  if (shape.window < 0) throw std::runtime_error(name + ": negative window");
  if (out.prob_sum == nullptr || out.score_sum == nullptr || out.overflow == nullptr)
    throw std::runtime_error(name + ": prob_sum, score_sum and overflow must be set");
  return Params{q,          k,         rope.cos, rope.sin, lse, shape.T, shape.query_heads, shape.kv_heads, G,
                rope.pairs, shape.imaginary_twins, shape.window > 0 ? shape.window : INT_MAX, score_map(shape),
                out,        sums_limits(shape.T),  site};
}

// One launch of `kernel` (a distance_sums_body<D, kStats, Tiles> kernel
// taking `args`): a CTA per 128 positions of one attention head.
template <class Tiles, class Kernel, class... Args>
void launch_sums(Kernel kernel, const Params& p, cudaStream_t stream, const Args&... args) {
  const int smem = Tiles::kFixedBytes + extra_smem_bytes<Tiles>() + 2 * static_cast<int>(sizeof(Fixed128)) * p.out.slots;
  cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
             "distance sums smem attribute");
  const dim3 grid((p.T + kRows - 1) / kRows, p.kv_heads * p.group);
  kernel<<<grid, Tiles::kCtaThreads, smem, stream>>>(args...);
  cuda_check(cudaGetLastError(), "distance_sums_kernel launch");
}

}  // namespace
}  // namespace ropescope::kernels
