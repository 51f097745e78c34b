// Warpgroup MMA (wgmma, sm_90a) helpers shared by the Hopper kernels
// (attention_wgmma.cu, attention_profile_wgmma.cu): the 128B-swizzled
// operand layout, shared-memory matrix descriptors, fences and the
// m64nNk16 bf16 products with fp32 accumulators. Include only from files
// compiled for sm_90a.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

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
