// Distance sums of causal attention with wgmma scores (WgmmaTiles, sm_90a),
// for head dim 256 (Gemma-2) on Hopper: the body of distance_sums.cuh with
// each warpgroup's 64 x 64 score tile as one wgmma m64n64k16 chain over the
// 256 dims, both operands read by the tensor cores from shared memory. The
// mma.sync build re-reads the whole key tile (32 KB) and the warp's query
// fragments from shared memory in every warp for every tile; here the
// warpgroup reads each once. The products are asynchronous: each
// warpgroup issues tile j's before it reduces tile j - 1 (the body's
// pipelined loop). A ninth warp streams the key tiles by TMA through two
// stages with full / empty mbarriers, so the reducing warpgroups meet at no
// CTA barrier per tile. Same tiles, query staging, reduction and fixed-point
// sums as the mma.sync build, so the results differ at most by the fp32
// rounding order inside a k-step of the product.
//
// Layout: every operand in wgmma's 128B-swizzle canonical form (wgmma.cuh:
// [D/64][rows][64], chunks XORed by row % 8), base 1024-byte aligned:
// [K stage 0][K stage 1] (64 keys x 512 bytes each) [Q tile: 128 rows x 512
// bytes, kept whole: the product reads it every tile] [warps' scratch]
// [stage mbarriers].
#include "kernels/ops/distance_sums.cuh"
#include "kernels/ops/wgmma.cuh"

namespace ropescope::kernels {
namespace {

template <int D>
struct WgmmaTiles {
  static_assert(D % 64 == 0, "wgmma operands are column blocks of 64");
  static constexpr int kStageBytes = kKeys * D * 2;
  static constexpr int kQueryOffset = 2 * kStageBytes;
  static constexpr int kScratchOffset = kQueryOffset + kRows * D * 2;
  static constexpr int kBarOffset = kScratchOffset + kScratchBytes;  // full[2], empty[2] mbarriers
  static constexpr int kFixedBytes = kBarOffset + 4 * 8;
  static constexpr int kAlign = 1024;
  static constexpr int kCtaThreads = kThreads + 32;  // the reducing warps, then the producer warp
  static constexpr bool kPipelined = true;
  static constexpr bool kSoftcapByTile = true;
  static_assert(kStageBytes % 1024 == 0 && kQueryOffset % 1024 == 0 && kFixedBytes % 16 == 0, "operand alignment");

  const CUtensorMap* keys;  // k as boxes of 64 dims x kKeys keys (a __grid_constant__ kernel parameter)

  // The reducing warps' barrier (named barrier 1): the producer warp never joins.
  __device__ static void sync() { asm volatile("bar.sync 1, %0;\n" ::"n"(kThreads) : "memory"); }

  __device__ static void stage_queries(bf16* Qs, const Params& p, int q0, int a, int tid) {
    stage_rotated_queries<D, kRows, kThreads>(Qs, p.q, p.cos, p.sin, p.T, p.query_heads * D, p.pairs, p.twins, tid,
                                              [&](int r) { return make_int2(a, q0 + r); }, Operand<kRows>{});
    // Generic-proxy stores read next by wgmma (async proxy); the barrier follows.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }

  // Stage s's barriers: full (the TMA's bytes landed; one arrival, the
  // producer's expect_tx) and empty (both warpgroups' products of it done).
  __device__ static uint32_t full(const unsigned char* base, int s) { return mma::smem_addr(base + kBarOffset) + 8 * s; }
  __device__ static uint32_t empty(const unsigned char* base, int s) { return full(base, s) + 16; }
  __device__ static void init(const unsigned char* base) {
    for (int s = 0; s < 2; ++s) {
      wgmma::mbar_init(full(base, s), 1);
      wgmma::mbar_init(empty(base, s), 2);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  // The producer warp's lane 0: key tiles j0 .. tiles - 1 into stages 0, 1,
  // 0, ..., each as D / 64 TMA boxes (rows past T zero-filled), waiting for
  // a stage's release from its round before (sleeping: it shares a
  // scheduler with reducing warps).
  __device__ void produce(const unsigned char* base, int kv, int j0, int tiles, int lane) const {
    if (lane != 0) return;
    for (int j = j0; j < tiles; ++j) {
      const int n = j - j0, s = n & 1;
      if (n >= 2) wgmma::mbar_wait<true>(empty(base, s), ((n >> 1) - 1) & 1);
      wgmma::mbar_expect_tx(full(base, s), kStageBytes);
      for (int b = 0; b < D / 64; ++b)
        wgmma::tma_load_2d(mma::smem_addr(base) + s * kStageBytes + b * kKeys * 128, keys, kv * D + 64 * b, j * kKeys,
                           full(base, s));
    }
  }
  // The n-th tile's keys landed (stage n % 2, its (n / 2)-th round).
  __device__ static void wait_keys(const unsigned char* base, int n) {
    wgmma::mbar_wait(full(base, n & 1), (n >> 1) & 1);
  }
  // After this warpgroup's product of the n-th tile: its stage may be refilled.
  __device__ static void release_keys(const unsigned char* base, int n, int tid) {
    if ((tid & 127) == 0) wgmma::mbar_arrive(empty(base, n & 1));
  }

  // Element offset of (row, col) in a [D/64][kOperandRows][64] swizzled operand.
  template <int kOperandRows>
  struct Operand {
    __device__ int operator()(int row, int col) const {
      return wgmma::swizzled(row, col >> 3, kOperandRows) / 2 + (col & 7);
    }
  };

  struct Scorer {
    uint32_t q_desc;  // the warpgroup's 64 query rows
    __device__ Scorer(const bf16* Qs, int warp, int) {
      // The warpgroup index broadcast from lane 0: the compiler then knows it
      // is warp-uniform and keeps the descriptors in uniform registers (each
      // product's A descriptor was otherwise built in a thread register and
      // moved over, 3 more instructions a product).
      const int warpgroup = __shfl_sync(0xffffffffu, warp >> 2, 0);
      q_desc = wgmma::desc_lo(mma::smem_addr(Qs) + warpgroup * 64 * 128, 16);
    }
    // Issues the warpgroup's S = Q K^T (64 rows x 64 keys) into s, asynchronously:
    // this warp's rows are accumulator rows 16 (warp % 4) .., element 4n + c is s[n][c].
    __device__ void issue(const bf16* kt, float (&s)[8][4]) const {
      float(&d)[32] = *reinterpret_cast<float(*)[32]>(&s[0][0]);
      const uint32_t k_desc = wgmma::desc_lo(mma::smem_addr(kt), 16);
      // A k-step of 16 dims: column block kk / 4 (rows x 128 bytes apart), 32 bytes into it.
      auto offset = [](int kk, int rows) { return ((kk >> 2) * rows * 128 + (kk & 3) * 32) >> 4; };
      wgmma::wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        wgmma::wgmma_ss_n64(d, q_desc + offset(kk, kRows), k_desc + offset(kk, kKeys), kk > 0);
      wgmma::wgmma_commit();
    }
    // Waits for the product issued into s.
    __device__ void wait(float (&s)[8][4]) const {
      float(&d)[32] = *reinterpret_cast<float(*)[32]>(&s[0][0]);
      wgmma::wgmma_wait<0>();
#pragma unroll
      for (int i = 0; i < 32; ++i) wgmma::fence_reg(d[i]);
    }
  };
};

// With the stats always (it serves no band pass: stats == nullptr skips only their final add).
template <int D>
__global__ void __launch_bounds__(WgmmaTiles<D>::kCtaThreads, 1)
    distance_sums_wgmma_kernel(const __grid_constant__ CUtensorMap keys, const Params p) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  distance_sums_body<D, true>(p, WgmmaTiles<D>{&keys}, smem_raw);
}

}  // namespace

int wgmma_distance_sums_slot_capacity() { return slot_capacity<WgmmaTiles<256>>(); }

bool attention_distance_sums_wgmma_bf16(const bf16* q, const bf16* k, const DeviceRopeTable& rope,
                                        const AttentionShape& shape, const float* lse, const DistanceSumsOut& out,
                                        cudaStream_t stream) {
  constexpr const char* kWho = "attention_distance_sums_wgmma_bf16";
  if (shape.head_dim != 256 || !flash_attention_supports(shape)) return false;
  if (!wgmma::aligned16(q) || !wgmma::aligned16(k) || !wgmma::device_is_sm90()) return false;
  const Params p = sums_params(kWho, q, k, rope, shape, lse, out, SumsSite::separate_wgmma);
  const CUtensorMap keys = wgmma::tiled_tensor_map(k, p.T, p.kv_heads * 256, kKeys, kWho);
  launch_sums<WgmmaTiles<256>>(distance_sums_wgmma_kernel<256>, p, stream, keys, p);
  return true;
}

}  // namespace ropescope::kernels
