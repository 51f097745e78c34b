// Hopper (sm_90a) helpers shared by the wgmma kernels (attention_wgmma.cu,
// attention_profile_wgmma.cu): mbarriers, TMA tile loads and their tensor
// maps, the 128B-swizzled operand layout, shared-memory matrix descriptors,
// fences and the m64nNk16 bf16 products with fp32 accumulators. Include only
// from files compiled for sm_90a.
#pragma once

#include <cuda.h>  // CUtensorMap (types only; the encoder is reached through the runtime)
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/ops/check.cuh"

namespace ropescope::kernels::wgmma {

// Host checks of the wgmma kernels' entry points: the sm_90a code runs on a
// compute-capability 9.0 device only, and TMA and 16-byte vector loads need
// 16-byte aligned operands.
inline bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev), "compute capability");
  cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev), "compute capability");
  return major == 9 && minor == 0;
}
inline bool aligned16(const void* ptr) { return (reinterpret_cast<std::uintptr_t>(ptr) & 15) == 0; }

// ---- mbarriers -------------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Waits until the phase of parity `parity` has completed. kSleep: each try
// suspends the thread up to 0.1 ms (it wakes when the phase completes); a
// plain try_wait returns within a few cycles. The producer sleeps: its spin
// loop was 8.5 % (plain) and 11 % (kSums) of all the instructions the kernel
// issued (ncu, 376M EC, T = 32768), on a scheduler it shares with consumer
// warps. The consumers, on the critical path, spin.
template <bool kSleep = false>
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    if constexpr (kSleep)
      asm volatile(
          "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, 100000;\nselp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(bar), "r"(parity)
          : "memory");
    else
      asm volatile(
          "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(bar), "r"(parity)
          : "memory");
  } while (!done);
}

// 2-D TMA load of one box into shared memory, completing on `bar` (tx bytes).
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no libcuda link).
// Looked up once; `who` names the caller whose first call failed (a throwing
// initializer runs again at the next call).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(const char* who) {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [&] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status{};
    cuda_check(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &status),
               (std::string(who) + ": cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)").c_str());
    if (status != cudaDriverEntryPointSuccess || f == nullptr)
      throw std::runtime_error(std::string(who) + ": cuTensorMapEncodeTiled not available");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// [rows, cols] bf16 matrix seen as boxes of 64 columns x box_rows rows with
// the 128-byte swizzle (a box lands as one column block of swizzled()'s
// layout); rows past `rows` read as zeros. `who` names the caller in errors.
inline CUtensorMap tiled_tensor_map(const __nv_bfloat16* base, int rows, int cols, int box_rows, const char* who) {
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * sizeof(__nv_bfloat16)};
  const cuuint32_t box[2] = {64, static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = tensor_map_encoder(who)(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<__nv_bfloat16*>(base),
                                          dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                          CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                          CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw std::runtime_error(std::string(who) + ": cuTensorMapEncodeTiled failed");
  return map;
}

// Byte offset of the 16-byte chunk `chunk` (8 columns) of row `row` in a
// [D/64][rows][64] 128B-swizzled operand.
__device__ __forceinline__ int swizzled(int row, int chunk, int rows) {
  return (chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
// bits 0-13 start address >> 4, 16-29 leading-dimension byte offset >> 4,
// 32-45 stride-dimension byte offset >> 4, 49-51 base offset (0: atoms are
// 1024-byte aligned), 62-63 swizzle (1 = 128B).
// K-major operands (Q as A, K as B): SBO = 1024 (next 8 rows); LBO unused
// with 128B swizzle (encoded 1). A k-step of 16 elements inside the 128-byte
// row is +32 bytes on the start address (the swizzle XOR applies to the
// computed address, so the chunk index still lands right).
// MN-major operand (V as B, transposed: N = d contiguous, K = keys): LBO =
// distance between 64-column blocks (the tile's keys x 128 bytes), SBO = 1024 (next 8 keys).
// Every operand here has SBO = 1024 and the 128B swizzle, so a descriptor is
// its low word (start address and LBO) under the constant high word kDescHi.
// The start address field never carries into LBO: shared memory ends below
// 2^18 bytes, so start + offset stays inside its 14 bits. Kept as 32-bit
// words, a k-step's descriptor is one 32-bit add (64-bit adds took three
// instructions per wgmma in the kSums kernel).
constexpr uint32_t kDescHi = (1024u >> 4) | (1u << 30);
__device__ __forceinline__ uint32_t desc_lo(uint32_t addr, uint32_t lbo) {
  return ((addr & 0x3FFFF) >> 4) | ((lbo >> 4) << 16);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accesses to x across a wgmma wait.
__device__ __forceinline__ void fence_reg(float& x) { asm volatile("" : "+f"(x)::"memory"); }
__device__ __forceinline__ void fence_reg(uint32_t& x) { asm volatile("" : "+r"(x)::"memory"); }

#define ACC8(d, i)                                                                                          \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define ACC32(d) ACC8(d, 0), ACC8(d, 8), ACC8(d, 16), ACC8(d, 24)
#define ACC64(d) ACC32(d), ACC8(d, 32), ACC8(d, 40), ACC8(d, 48), ACC8(d, 56)
#define REGS32                                                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define REGS64                                                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// d (64 x 128 fp32) = (accumulate ? d : 0) + A (64 x 16, smem) * B (16 x 128, smem), both K-major.
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[64], uint32_t da, uint32_t db, int accumulate) {
  asm volatile("{\n.reg .pred p;\n.reg .b64 da, db;\nsetp.ne.b32 p, %66, 0;\n"
               "mov.b64 da, {%64, %67};\nmov.b64 db, {%65, %67};\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " REGS64 ", da, db, p, 1, 1, 0, 0;\n}\n"
               : ACC64(d)
               : "r"(da), "r"(db), "r"(accumulate), "r"(kDescHi));
}
// d (64 x 64 fp32) = (accumulate ? d : 0) + A (64 x 16, smem) * B (16 x 64, smem), both K-major.
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[32], uint32_t da, uint32_t db, int accumulate) {
  asm volatile("{\n.reg .pred p;\n.reg .b64 da, db;\nsetp.ne.b32 p, %34, 0;\n"
               "mov.b64 da, {%32, %35};\nmov.b64 db, {%33, %35};\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " REGS32 ", da, db, p, 1, 1, 0, 0;\n}\n"
               : ACC32(d)
               : "r"(da), "r"(db), "r"(accumulate), "r"(kDescHi));
}
// d (64 x N fp32) += A (64 x 16, registers) * B (16 x N, smem, MN-major: imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[64], const uint32_t* a, uint32_t db) {
  asm volatile("{\n.reg .pred p;\n.reg .b64 db;\nsetp.ne.b32 p, %69, 0;\nmov.b64 db, {%68, %70};\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " REGS64
               ", {%64, %65, %66, %67}, db, p, 1, 1, 1;\n}\n"
               : ACC64(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(db), "r"(1), "r"(kDescHi));
}
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[32], const uint32_t* a, uint32_t db) {
  asm volatile("{\n.reg .pred p;\n.reg .b64 db;\nsetp.ne.b32 p, %37, 0;\nmov.b64 db, {%36, %38};\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " REGS32
               ", {%32, %33, %34, %35}, db, p, 1, 1, 1;\n}\n"
               : ACC32(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(db), "r"(1), "r"(kDescHi));
}
#undef ACC8
#undef ACC32
#undef ACC64
#undef REGS32
#undef REGS64

}  // namespace ropescope::kernels::wgmma
