// tanh_polynomial (kernels/ops/mma.cuh: tanhf's branch below 0.6, written
// out) against CUDA's own tanhf, bit for bit, on every float bit pattern
// where tanhf takes that branch (|x| < 0.6 and NaN: about half of all 2^32):
// the distance sums take it alone for whole warp tiles in place of tanhf,
// so it must be tanhf exactly, on this toolkit, or fail here.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/device_info.hpp"
#include "kernels/ops/mma.cuh"

namespace rk = ropescope::kernels;

namespace {

struct Mismatches {
  unsigned long long checked = 0, differing = 0;
  unsigned first = 0;  // the smallest differing bit pattern (UINT32_MAX: none)
};

__global__ void compare_with_tanhf(Mismatches* out) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  unsigned long long checked = 0, differing = 0;
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (1ull << 32); i += stride) {
    const unsigned bits = static_cast<unsigned>(i);
    const float x = __uint_as_float(bits);
    if (fabsf(x) >= rk::mma::kTanhPolynomialBound) continue;
    ++checked;
    if (__float_as_uint(rk::mma::tanh_polynomial(x)) != __float_as_uint(tanhf(x))) {
      ++differing;
      atomicMin(&out->first, bits);
    }
  }
  atomicAdd(&out->checked, checked);
  if (differing) atomicAdd(&out->differing, differing);
}

void check(cudaError_t e, const char* what) { ASSERT_EQ(e, cudaSuccess) << what << ": " << cudaGetErrorString(e); }

TEST(GpuTanh, PolynomialBranchIsTanhfWhereTanhfTakesIt) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  Mismatches host;
  host.first = UINT32_MAX;
  Mismatches* device = nullptr;
  check(cudaMalloc(&device, sizeof(Mismatches)), "cudaMalloc");
  check(cudaMemcpy(device, &host, sizeof host, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  compare_with_tanhf<<<4096, 256>>>(device);
  check(cudaGetLastError(), "compare_with_tanhf launch");
  check(cudaMemcpy(&host, device, sizeof host, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  check(cudaFree(device), "cudaFree");
  // Bit patterns with |x| < 0.6 (0x3f19999a is 0.6f) of either sign, and the NaNs.
  const unsigned long long expected = 2ull * 0x3f19999a + 2ull * (0x7fffffffull - 0x7f800000ull);
  EXPECT_EQ(host.checked, expected) << "floats checked";
  float first;
  std::memcpy(&first, &host.first, 4);
  EXPECT_EQ(host.differing, 0u) << "tanh_polynomial differs from tanhf on " << host.differing << " floats, first 0x"
                                << std::hex << host.first << " (" << first << ")";
  if (host.differing == 0)
    std::printf("tanh_polynomial equals tanhf bit for bit on all %llu floats with |x| < 0.6 or NaN\n", host.checked);
}

}  // namespace
