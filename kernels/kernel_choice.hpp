// Which attention kernels run for a layer shape on a device, and why: the one
// decision the CUDA backend dispatches on and records (Backend::kernel_choices,
// in every sidecar). A pure function of the shape, the device's facts and the
// distance slots, so it is tested without a GPU.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {

enum class ForwardKernel {
  wgmma,     // attention_forward_wgmma_bf16 (sm_90a: wgmma, TMA), 128 query rows x 128 keys per tile
  mma_sync,  // attention_forward_bf16 (mma.sync), 128 query rows x 64 keys per tile
  simple,    // attention_simple_bf16: one warp per (position, head), any even head dim <= 256
};
enum class SumsKernel {
  none,         // no distance sums asked for
  fused,        // far pairs inside the wgmma forward, near pairs by tensor_core over a band (FusedDistanceSums)
  tensor_core,  // attention_distance_sums_bf16 (mma.sync), 128 positions x 64 keys per tile, slots in shared memory
  wgmma,        // attention_distance_sums_wgmma_bf16 (sm_90a): the same tiles, scores by wgmma; head dim 256
  simple,       // attention_distance_sums_simple_bf16: one warp per (position, head), fixed-point atomics per pair
};

// How FusedDistanceSums splits a slot table: pairs at distance >= band in
// the forward (slots first_slot .. first_slot + coarse_slots - 1), the rest
// in the band pass. coarse_slots 0: no distance qualifies.
struct FusedSumsPlan {
  int band = 0;
  int first_slot = 0;
  int coarse_slots = 0;
};
// band: the smallest distance >= 128 (the wgmma key tile, so the diagonal
// tile is all band) from which every 128 consecutive distances meet at most
// two slots. slot_of_distance: nondecreasing, one entry per distance 0 .. T-1.
FusedSumsPlan plan_fused_sums(std::span<const std::int32_t> slot_of_distance);

struct KernelChoice {
  ForwardKernel forward = ForwardKernel::simple;
  SumsKernel sums = SumsKernel::none;
  FusedSumsPlan fused;  // when sums == fused
  std::string why_forward, why_sums;  // the reasons, in words
  // "attention forward: wgmma (sm_90a), tiles of 128 query rows x 128 keys: head dim 128 and GQA group 4 on compute
  // capability 9.0; distance sums: ..." (the sums part only when asked for).
  std::string describe() const;
};

// What the choice needs to know of the device.
struct DeviceFacts {
  int compute_capability = 0;  // major * 10 + minor (90 for H100 / H200)
  int sums_slot_capacity = 0;  // distance_sums_slot_capacity(head dim): its shared memory's limit
};
// The current device's facts for a head dim.
DeviceFacts current_device_facts(int head_dim);

// `distance_slots`: the slots of a distance-sums request, 0 when there is
// none; `plan`: plan_fused_sums of its table (the fused path needs 1 ..
// kFusedSumsMaxSlots coarse slots and the wgmma forward).
KernelChoice choose_kernels(const AttentionShape& shape, const DeviceFacts& device, int distance_slots,
                            const FusedSumsPlan& plan = {});

}  // namespace ropescope::kernels
