// Host API of the CUDA op kernels (kernels/ops/*.cu): bf16 activations with
// fp32 accumulation. Every function launches on `stream`, checks the launch
// and throws std::runtime_error on a CUDA error. Pointers are device pointers;
// matrices are row-major with tokens as rows, as in the CPU backend.
// Plain C++17 so that both nvcc and the C++20 host code can include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "kernels/ops/fixed_point.hpp"

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

// How a kernel rotates a query head it reads (kernels/ops/rope_query.cuh).
enum class QueryRotation { none, real, imaginary };

// Causal attention of one sequence, model/head_layout.hpp's layout.
struct AttentionShape {
  int T = 0;
  int head_dim = 0;         // d (the tiled kernels: tiled_head_dim)
  int query_heads = 0;      // Q: columns of q are Q * d
  int kv_heads = 0;         // KV: columns of k, v are KV * d
  int attention_heads = 0;  // A: columns of out are A * d; G = A / KV at most 8 for the tiled kernels
  bool imaginary_twins = false;  // RoPE++ (ec, eh): head 2j real, 2j+1 imaginary of query head j (A = 2Q)
  // The score of a pair, as the CPU backend forms it (model::AttentionSpec,
  // LayerSpec): score = scale * q.k, then softcap * tanh(score / softcap)
  // when softcap > 0; then the mask. scale 0 means head_dim^-0.5.
  double scale = 0;
  double softcap = 0;
  // Sliding window W > 0: key s is visible from query t iff t - W < s <= t
  // (0: plain causal). Key tiles wholly before every row's window are skipped.
  int window = 0;
};
// The scale that multiplies q.k for `shape`.
inline double attention_scale(const AttentionShape& shape) {
  return shape.scale != 0 ? shape.scale : 1.0 / std::sqrt(static_cast<double>(shape.head_dim));
}
// How the kernels turn a raw fp32 dot product x into log2 units for exp2:
// without a softcap, x * post_log2 (= scale log2 e) is already the score in
// log2 units (one FMA, as before the softcap existed); with one, the kernel
// first replaces x by the score cap * tanhf(x * pre) and post_log2 = log2 e.
// `unit` turns what a kernel holds (x, or the capped score) into the score:
// scale without a softcap, 1 with one.
struct ScoreMap {
  float cap = 0;       // softcap, 0: none
  float pre = 0;       // scale / cap (softcap only)
  float post_log2 = 0; // log2(e) * (cap ? 1 : scale)
  double unit = 0;     // scale (no softcap) or 1
};
inline ScoreMap score_map(const AttentionShape& shape) {
  constexpr double kLog2e = 1.4426950408889634;
  const double scale = attention_scale(shape);
  if (shape.softcap > 0)
    return ScoreMap{static_cast<float>(shape.softcap), static_cast<float>(scale / shape.softcap),
                    static_cast<float>(kLog2e), 1.0};
  return ScoreMap{0.f, 0.f, static_cast<float>(kLog2e * scale), scale};
}

// q: projected, unrotated queries [T, Q*d]; k: keys already rotated by
// rope_keys_bf16 [T, KV*d]; v [T, KV*d]. The kernel rotates each query (real
// or imaginary) on the fly from q and the table. Writes out [T, A*d] (bf16)
// and the natural-log row log-sum-exp of the scaled scores lse [A, T] (fp32).
// With out == nullptr it writes lse alone, the same bits, and never reads v
// (which may then be null): no value tiles, no P V.
void attention_forward_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                            const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream);
struct FusedDistanceSums;  // below
// Hopper version (attention_wgmma.cu: wgmma, TMA), same arguments and results.
// Returns false without launching when it does not apply: head_dim other than
// 64 or 128, a device other than compute capability 9.0, or q, k, v not
// 16-byte aligned; the caller then uses attention_forward_bf16.
// With `sums`, the same pass also adds the far part of the distance sums
// (FusedDistanceSums, below) to sums->out.
bool attention_forward_wgmma_bf16(const bf16* q, const bf16* k, const bf16* v, const DeviceRopeTable& rope,
                                  const AttentionShape& shape, bf16* out, float* lse, cudaStream_t stream,
                                  const FusedDistanceSums* sums = nullptr);
// Both flash kernels honour shape.scale, softcap and window (see AttentionShape).
// The head dims of the mma.sync kernels (attention_forward_bf16,
// attention_distance_sums_bf16): 64, 80, 96, 128 and 256.
bool tiled_head_dim(int d);
// Whether attention_forward_bf16 takes the shape: a tiled_head_dim and any
// G = A / KV from 1 to 8 (a CTA's 128 rows padded when G does not divide them).
bool flash_attention_supports(const AttentionShape& shape);
// Whether attention_forward_wgmma_bf16 takes it (on compute capability 9.0):
// d = 64 or 128, any G from 1 to 8.
bool wgmma_attention_supports(const AttentionShape& shape);
// A flash CTA holds P consecutive positions of the G heads of one KV head in
// its 128 query rows: P the largest power of two with G P <= 128 (128 / G for
// G = 1, 2, 4, 8; 16 for G = 5, 6, 7 and 32 for G = 3, whose other rows are padding).
constexpr int tile_positions(int G) {
  int P = 128;
  while (P * G > 128) P /= 2;
  return P;
}

// Distance sums of every attention head (the reduction behind distance
// profiles, backend::DistanceSums), from scores recomputed in the layout of
// attention_forward_bf16 and that pass's lse: for each head a and slot k,
// prob_sum[a * slots + k] = sum of p(t, s) and score_sum[...] the sum of the
// score (scaled, softcapped) over the visible pairs (s <= t, t - s < window
// when shape.window > 0) whose distance t - s lies in slot k;
// stats[2a] = sum over pairs of p (t - s), stats[2a + 1] = sum of -p ln p.
// Accumulators are added to (zero them first) as exact fixed-point integers
// (fixed_point.hpp: F = kProbFraction, kScoreFraction, kStatsFraction
// fraction bits), so the sums are bitwise the same from run to run; to_double
// turns them into doubles. An addend that is not finite or would take a total
// out of its range is not added: it sets its overflow_bit in *overflow
// (zero it with the sums), and the caller must refuse the sums
// (describe_overflow). slot_of_distance has T entries, nondecreasing;
// slot_start[k] is the smallest distance of slot k.
struct DistanceSumsOut {
  const int* slot_of_distance = nullptr;  // [T]
  const int* slot_start = nullptr;        // [slots]
  int slots = 0;
  Fixed128* prob_sum = nullptr;   // [A, slots], F = kProbFraction
  Fixed128* score_sum = nullptr;  // [A, slots], F = kScoreFraction
  Fixed128* stats = nullptr;      // [A, 2], F = kStatsFraction
  unsigned* overflow = nullptr;   // overflow_bit()s of refused addends
};
// The most slots attention_distance_sums_bf16 holds in shared memory at head_dim.
// With stats == nullptr the p (t - s) and entropy sums are not written (the
// band pass of FusedDistanceSums, whose forward adds them).
int distance_sums_slot_capacity(int head_dim);
// Tensor-core version for the shapes of flash_attention_supports and at most
// distance_sums_slot_capacity(d) slots; per-tile fp32 partial sums, exact
// fixed-point accumulation. Queries rotated and rounded to bf16 as the flash kernel does.
void attention_distance_sums_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                  const AttentionShape& shape, const float* lse, const DistanceSumsOut& out,
                                  cudaStream_t stream);
// Hopper version (attention_profile_wgmma.cu: each warpgroup's scores by
// wgmma, both operands in shared memory) for head dim 256, same arguments,
// results and slot capacity. Returns false without launching when it does
// not apply: head_dim other than 256, a shape flash_attention_supports
// refuses, a device other than compute capability 9.0, or q, k not 16-byte
// aligned; the caller then uses attention_distance_sums_bf16.
bool attention_distance_sums_wgmma_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                        const AttentionShape& shape, const float* lse, const DistanceSumsOut& out,
                                        cudaStream_t stream);

// Distance sums split in two (kernel_choice.hpp's plan_fused_sums): the
// wgmma forward adds, for the pairs at distance >= band, the slot sums (its
// row-private running sums, relative to the running max like the softmax
// denominator, flushed per row whenever the slot changes, as log2 of the sum
// plus the max, and normalised by the row's final log-sum-exp at the end) and,
// over ALL pairs, the p (t - s) and entropy sums;
// attention_distance_sums_near_bf16 then adds the pairs nearer than band. band is chosen so that any 128 consecutive
// distances from band on meet at most two slots; slots first_slot ..
// first_slot + coarse_slots - 1 hold every distance >= band.
constexpr int kFusedSumsMaxSlots = 64;  // coarse slots the forward's shared memory holds
struct FusedDistanceSums {
  DistanceSumsOut out;  // stats must be set: the forward writes them
  int band = 0;
  int first_slot = 0;
  int coarse_slots = 0;  // 1 .. kFusedSumsMaxSlots
};
// The band pass after a fused forward: attention_distance_sums_bf16 over the
// pairs at distance < sums.band (shape.window narrowed to min(window, band)),
// into sums.out's slot sums without its stats (the forward wrote those);
// lse is the forward's.
void attention_distance_sums_near_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                       const AttentionShape& shape, const float* lse, const FusedDistanceSums& sums,
                                       cudaStream_t stream);

}  // namespace ropescope::kernels
