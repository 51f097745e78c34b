// Distance sums of causal attention with mma.sync scores (SyncTiles): the
// kernel of every tiled head dim on any device, and the host API
// (attention_distance_sums_bf16, the fused profile's band pass, the slot
// capacity). The kernel body, its reduction and its tiling are in
// distance_sums.cuh; head dim 256 on Hopper takes the wgmma build
// (attention_profile_wgmma.cu) instead.
#include "kernels/ops/distance_sums.cuh"

namespace ropescope::kernels {
namespace {

// Scores by mma.sync: each warp multiplies its 16 query rows (fragments in
// registers for d <= 128, else re-read from the tile) by the key tile, in
// tiles of row pitch tile_pitch<D>() with mma.cuh's XOR swizzle.
template <int D>
struct SyncTiles {
  static constexpr int kPitch = tile_pitch<D>();
  static constexpr int kBlocksPerSm = kQueryFragmentsInRegisters<D> ? 2 : 1;
  static constexpr int kStageBytes = kKeys * kPitch * 2;
  static constexpr int kQueryOffset = 2 * kStageBytes;
  static constexpr int kQueryBytes = kRows * kPitch * 2;
  // The scratch overlays the Q tile once the fragments live in registers.
  static constexpr int kScratchOffset = kQueryOffset + (kQueryFragmentsInRegisters<D> ? 0 : kQueryBytes);
  static constexpr int kFixedBytes =
      kQueryOffset + (kQueryFragmentsInRegisters<D> ? (kQueryBytes > kScratchBytes ? kQueryBytes : kScratchBytes)
                                                    : kQueryBytes + kScratchBytes);
  static constexpr int kAlign = 16;
  static constexpr int kCtaThreads = kThreads;
  static constexpr bool kPipelined = false;
  static constexpr bool kSoftcapByTile = false;  // it spilled at 128 registers (two CTAs an SM)

  __device__ static void sync() { __syncthreads(); }
  __device__ static void stage_queries(bf16* Qs, const Params& p, int q0, int a, int tid) {
    stage_rotated_queries<D, kRows, kThreads>(Qs, p.q, p.cos, p.sin, p.T, p.query_heads * D, p.pairs, p.twins, tid,
                                              [&](int r) { return make_int2(a, q0 + r); });
  }
  __device__ static void load_keys(bf16* Ks, const Params& p, int j, int kv, int tid) {
    load_tiles_async<D, kKeys, kThreads, 1>({Ks}, {p.k}, j, p.kv_heads * D, kv * D, p.T, tid);
  }
  __device__ static void keys_landed() {}
  struct Scorer {
    QueryFragments<D> qf;
    int lane;
    __device__ Scorer(const bf16* Qs, int warp, int lane_) : qf(Qs, 16 * warp, lane_), lane(lane_) {}
    __device__ void scores(const bf16* kt, float (&s)[8][4]) const { warp_scores<D>(qf, kt, lane, s); }
  };
};

template <int D, bool kStats>
__global__ void __launch_bounds__(kThreads, SyncTiles<D>::kBlocksPerSm) distance_sums_kernel(const Params p) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  distance_sums_body<D, kStats>(p, SyncTiles<D>{}, smem_raw);
}

template <int D, bool kStats = true>
void launch(const Params& p, cudaStream_t stream) {
  launch_sums<SyncTiles<D>>(distance_sums_kernel<D, kStats>, p, stream, p);
}

// The entry points' common body; `site` names an overflow (separate or band).
void distance_sums(const bf16* q, const bf16* k, const DeviceRopeTable& rope, const AttentionShape& shape,
                   const float* lse, const DistanceSumsOut& out, SumsSite site, cudaStream_t stream) {
  const Params p = sums_params("attention_distance_sums_bf16", q, k, rope, shape, lse, out, site);
  switch (shape.head_dim) {
    // Without stats only where the band pass runs (after the wgmma forward: head dims 64 and 128).
    case 64: p.out.stats ? launch<64>(p, stream) : launch<64, false>(p, stream); break;
    case 80: launch<80>(p, stream); break;
    case 96: launch<96>(p, stream); break;
    case 128: p.out.stats ? launch<128>(p, stream) : launch<128, false>(p, stream); break;
    default: launch<256>(p, stream); break;
  }
}

}  // namespace

int distance_sums_slot_capacity(int head_dim) {
  switch (head_dim) {
    case 64: return slot_capacity<SyncTiles<64>>();
    case 80: return slot_capacity<SyncTiles<80>>();
    case 96: return slot_capacity<SyncTiles<96>>();
    case 128: return slot_capacity<SyncTiles<128>>();
    // The smaller of the two builds' capacities: a slot table fits whichever runs.
    case 256: return std::min(slot_capacity<SyncTiles<256>>(), wgmma_distance_sums_slot_capacity());
    default: return 0;
  }
}

void attention_distance_sums_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                  const AttentionShape& shape, const float* lse, const DistanceSumsOut& out,
                                  cudaStream_t stream) {
  distance_sums(q, k, rope, shape, lse, out, SumsSite::separate, stream);
}

void attention_distance_sums_near_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                       const AttentionShape& shape, const float* lse, const FusedDistanceSums& sums,
                                       cudaStream_t stream) {
  AttentionShape near = shape;
  near.window = shape.window > 0 ? std::min(shape.window, sums.band) : sums.band;
  DistanceSumsOut out = sums.out;
  out.stats = nullptr;
  // The limits stay those of the whole T (near.T == shape.T): the forward adds to the same totals.
  distance_sums(q, k, rope, near, lse, out, SumsSite::band, stream);
}

}  // namespace ropescope::kernels
