// The attention kernel choice (see kernel_choice.hpp).
#include "kernels/kernel_choice.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace ropescope::kernels {

FusedSumsPlan plan_fused_sums(std::span<const std::int32_t> slot_of_distance) {
  constexpr long kSpan = 128;  // distances one row of a wgmma key tile spans
  const long T = static_cast<long>(slot_of_distance.size());
  long band = kSpan;
  for (long d = T - 1; d >= kSpan; --d)
    if (slot_of_distance[std::min(d + kSpan - 1, T - 1)] - slot_of_distance[d] > 1) {
      band = d + 1;
      break;
    }
  if (band >= T) return {};
  const int first = slot_of_distance[band];
  return {static_cast<int>(band), first, slot_of_distance[T - 1] - first + 1};
}

KernelChoice choose_kernels(const AttentionShape& shape, const DeviceFacts& device, int distance_slots,
                            const FusedSumsPlan& plan) {
  const int compute_capability = device.compute_capability;
  KernelChoice c;
  const int d = shape.head_dim;
  const int G = shape.kv_heads > 0 ? shape.attention_heads / shape.kv_heads : 0;
  const bool flash = flash_attention_supports(shape), wide = wgmma_attention_supports(shape);
  const std::string fits = fmt::format("head dim {} and GQA group {}", d, G);
  if (wide && compute_capability == 90) {
    c.forward = ForwardKernel::wgmma;
    c.why_forward = fits + " on compute capability 9.0";
  } else if (flash) {
    c.forward = ForwardKernel::mma_sync;
    c.why_forward = compute_capability == 90
                        ? fmt::format("{}: the wgmma kernel takes head dims 64 and 128", fits)
                        : fmt::format("{} on compute capability {}.{} (the wgmma kernel is built for 9.0 only)", fits,
                                      compute_capability / 10, compute_capability % 10);
  } else {
    c.forward = ForwardKernel::simple;
    c.why_forward = !tiled_head_dim(d) ? fmt::format("head dim {}: the tiled kernels take 64, 80, 96, 128 and 256", d)
                                       : fmt::format("GQA group {}: the tiled kernels take groups of at most 8", G);
  }
  if (c.forward != ForwardKernel::simple && G * tile_positions(G) < 128)  // both tiled kernels pad a CTA's rows
    c.why_forward += fmt::format(" ({} of a tile's 128 query rows used)", G * tile_positions(G));
  if (distance_slots > 0) {
    const int capacity = device.sums_slot_capacity;
    const bool plan_fits = plan.coarse_slots >= 1 && plan.coarse_slots <= kFusedSumsMaxSlots;
    if (c.forward == ForwardKernel::wgmma && distance_slots <= capacity && plan_fits) {
      c.sums = SumsKernel::fused;
      c.fused = plan;
      c.why_sums = fmt::format("distances from {} on ({} slots) summed inside the forward, nearer ones over a band of "
                               "{} keys; {} distance slots (at most {} fit the band pass's shared memory)",
                               plan.band, plan.coarse_slots, plan.band, distance_slots, capacity);
    } else if (flash && distance_slots <= capacity && d == 256 && compute_capability == 90) {
      c.sums = SumsKernel::wgmma;
      c.why_sums = fmt::format("{} on compute capability 9.0 (no fused path at head dim 256), {} distance slots (at "
                               "most {} fit its shared memory)",
                               fits, distance_slots, capacity);
    } else if (flash && distance_slots <= capacity) {
      c.sums = SumsKernel::tensor_core;
      c.why_sums = fmt::format("{}, {} distance slots (at most {} fit its shared memory)", fits, distance_slots, capacity);
    } else {
      c.sums = SumsKernel::simple;
      c.why_sums = flash ? fmt::format("{} distance slots, above the {} of the tensor-core kernel's shared memory",
                                       distance_slots, capacity)
                         : c.why_forward;
    }
  }
  return c;
}

std::string KernelChoice::describe() const {
  const char* forward_name = forward == ForwardKernel::wgmma      ? "wgmma (sm_90a), tiles of 128 query rows x 128 keys"
                             : forward == ForwardKernel::mma_sync ? "mma.sync, tiles of 128 query rows x 64 keys"
                                                                  : "simple, one warp per (position, head)";
  std::string text = fmt::format("attention forward: {}: {}", forward_name, why_forward);
  if (sums != SumsKernel::none)
    text += fmt::format("; distance sums: {}: {}",
                        sums == SumsKernel::fused         ? "fused into the wgmma forward, band pass by mma.sync"
                        : sums == SumsKernel::tensor_core ? "mma.sync, tiles of 128 positions x 64 keys"
                        : sums == SumsKernel::wgmma       ? "wgmma (sm_90a), tiles of 128 positions x 64 keys"
                                                          : "simple, one warp per (position, head), fixed point",
                        why_sums);
  return text;
}

DeviceFacts current_device_facts(int head_dim) {
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess)
    throw std::runtime_error("current_device_facts: the CUDA runtime cannot read the device's compute capability");
  return {major * 10 + minor, distance_sums_slot_capacity(head_dim)};
}

}  // namespace ropescope::kernels
