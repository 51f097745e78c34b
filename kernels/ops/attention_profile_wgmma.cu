// Distance sums of causal attention with wgmma scores (WgmmaTiles, sm_90a),
// for head dim 256 (Gemma-2) on Hopper: the body of distance_sums.cuh with
// each warpgroup's 64 x 64 score tile as one wgmma m64n64k16 chain over the
// 256 dims, both operands read by the tensor cores from shared memory. The
// mma.sync build re-reads the whole key tile (32 KB) and the warp's query
// fragments from shared memory in every warp for every tile; here the
// warpgroup reads each once. The products are asynchronous: each
// warpgroup issues tile j's before it reduces tile j - 1 (the body's
// pipelined loop). Same tiles, staging (cp.async), reduction and
// fixed-point sums as the mma.sync build, so the results differ at most by
// the fp32 rounding order inside a k-step of the product.
//
// Layout: every operand in wgmma's 128B-swizzle canonical form (wgmma.cuh:
// [D/64][rows][64], chunks XORed by row % 8), base 1024-byte aligned:
// [K stage 0][K stage 1] (64 keys x 512 bytes each) [Q tile: 128 rows x 512
// bytes, kept whole: the product reads it every tile] [warps' scratch].
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
  static constexpr int kFixedBytes = kScratchOffset + kScratchBytes;
  static constexpr int kAlign = 1024;
  static constexpr bool kPipelined = true;
  static_assert(kStageBytes % 1024 == 0 && kQueryOffset % 1024 == 0 && kFixedBytes % 16 == 0, "operand alignment");

  __device__ static void stage_queries(bf16* Qs, const Params& p, int q0, int a, int tid) {
    stage_rotated_queries<D, kRows, kThreads>(Qs, p.q, p.cos, p.sin, p.T, p.query_heads * D, p.pairs, p.twins, tid,
                                              [&](int r) { return make_int2(a, q0 + r); }, Operand<kRows>{});
    // Generic-proxy stores read next by wgmma (async proxy); the CTA barrier follows.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }
  // Thread tid copies chunk tid % 32 (8 dims) of key rows tid / 32 + 8 i,
  // i = 0 .. 7: the row's swizzle (row % 8) is the same for all eight, so
  // its shared address steps by 8 rows (1024 bytes) and its global one by 8
  // rows of k. (load_tiles_async's general index math took 337 of a warp
  // tile's 1393 instructions, ncu.) Rows past T are zeros.
  __device__ static void load_keys(bf16* Ks, const Params& p, int j, int kv, int tid) {
    static_assert(D / 8 == 32 && kThreads == 256, "a warp copies a key row: 32 chunks of 8 dims");
    const int row0 = tid >> 5, chunk = tid & 31, key0 = j * kKeys + row0;
    unsigned char* const dst = reinterpret_cast<unsigned char*>(Ks) + wgmma::swizzled(row0, chunk, kKeys);
    const long cols = static_cast<long>(p.kv_heads) * D;
    const bf16* const src = p.k + key0 * cols + kv * D + chunk * 8;
#pragma unroll
    for (int i = 0; i < kKeys / 8; ++i) {
      const bool in = key0 + 8 * i < p.T;
      cp_async16(dst + 1024 * i, in ? src + 8 * i * cols : p.k, in ? 16 : 0);
    }
  }
  // The copies landed through the generic proxy: make them visible to wgmma.
  __device__ static void keys_landed() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

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
      q_desc = wgmma::desc_lo(mma::smem_addr(Qs) + (warp >> 2) * 64 * 128, 16);
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
__global__ void __launch_bounds__(kThreads, 1) distance_sums_wgmma_kernel(const Params p) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  distance_sums_body<D, true, WgmmaTiles<D>>(p, smem_raw);
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
  launch_sums<WgmmaTiles<256>>(distance_sums_wgmma_kernel<256>, p, stream);
  return true;
}

}  // namespace ropescope::kernels
