// The attention kernel choice (kernels/kernel_choice.hpp) is a pure function
// of the shape, the device's facts and the distance slots: checked here
// without a GPU, for every branch and its stated reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel_choice.hpp"

namespace {

using namespace ropescope::kernels;

constexpr int kCapacity = 1500;  // distance slots in shared memory (an H200 holds about this many at d = 128)
DeviceFacts device(int compute_capability) { return {compute_capability, kCapacity}; }

AttentionShape shape(int d, int attention_heads, int kv_heads) {
  AttentionShape s;
  s.T = 4096;
  s.head_dim = d;
  s.attention_heads = attention_heads;
  s.query_heads = attention_heads;
  s.kv_heads = kv_heads;
  return s;
}

TEST(KernelChoice, HopperTakesWgmmaForTheTiledShapes) {
  const auto c = choose_kernels(shape(128, 32, 8), device(90), 0);
  EXPECT_EQ(c.forward, ForwardKernel::wgmma);
  EXPECT_EQ(c.sums, SumsKernel::none);
  EXPECT_EQ(c.describe(),
            "attention forward: wgmma (sm_90a), tiles of 128 query rows x 128 keys: head dim 128 and GQA group 4 on "
            "compute capability 9.0");
}

TEST(KernelChoice, OtherDevicesTakeMmaSync) {
  const auto c = choose_kernels(shape(64, 8, 8), device(89), 0);
  EXPECT_EQ(c.forward, ForwardKernel::mma_sync);
  EXPECT_NE(c.why_forward.find("compute capability 8.9"), std::string::npos) << c.why_forward;
}

TEST(KernelChoice, UntiledHeadDimsAndGroupsTakeTheSimpleKernelAndSayWhy) {
  for (int d : {16, 32, 112, 192}) {
    const auto c = choose_kernels(shape(d, 8, 2), device(90), 40);
    EXPECT_EQ(c.forward, ForwardKernel::simple) << d;
    EXPECT_EQ(c.sums, SumsKernel::simple) << d;
    EXPECT_NE(c.why_forward.find("the tiled kernels take 64, 80, 96, 128 and 256"), std::string::npos)
        << c.why_forward;
  }
  const auto c = choose_kernels(shape(128, 48, 3), device(90), 0);  // group 16
  EXPECT_EQ(c.forward, ForwardKernel::simple);
  EXPECT_NE(c.why_forward.find("GQA group 16"), std::string::npos) << c.why_forward;
}

TEST(KernelChoice, HeadDims80_96_256TakeMmaSyncOnHopperAndSayWhy) {
  for (int d : {80, 96, 256}) {
    const auto c = choose_kernels(shape(d, 16, 8), device(90), 40);  // Gemma-2-9B at d = 256: group 2
    EXPECT_EQ(c.forward, ForwardKernel::mma_sync) << d;
    // Head dim 256's distance sums take the wgmma build on Hopper (the mma.sync one elsewhere).
    EXPECT_EQ(c.sums, d == 256 ? SumsKernel::wgmma : SumsKernel::tensor_core) << d;
    EXPECT_EQ(c.why_forward, "head dim " + std::to_string(d) + " and GQA group 2: the wgmma kernel takes head dims 64 "
                             "and 128");
  }
  const auto gemma = choose_kernels(shape(256, 16, 8), device(90), 40);
  EXPECT_NE(gemma.describe().find("distance sums: wgmma (sm_90a), tiles of 128 positions x 64 keys: head dim 256 and "
                                  "GQA group 2 on compute capability 9.0"),
            std::string::npos)
      << gemma.describe();
  EXPECT_EQ(choose_kernels(shape(256, 16, 8), device(89), 40).sums, SumsKernel::tensor_core);
  EXPECT_EQ(choose_kernels(shape(256, 16, 8), device(90), kCapacity + 1).sums, SumsKernel::simple);
}

TEST(KernelChoice, GroupsThatDoNotDivideATilePadIt) {
  const auto hopper = choose_kernels(shape(128, 28, 4), device(90), 40);  // Qwen2.5-7B: group 7
  EXPECT_EQ(hopper.forward, ForwardKernel::wgmma);
  EXPECT_EQ(hopper.sums, SumsKernel::tensor_core);
  EXPECT_NE(hopper.why_forward.find("112 of a tile's 128 query rows used"), std::string::npos) << hopper.why_forward;
  const auto ada = choose_kernels(shape(128, 28, 4), device(89), 40);
  EXPECT_EQ(ada.forward, ForwardKernel::mma_sync);
  EXPECT_EQ(ada.sums, SumsKernel::tensor_core);
  EXPECT_NE(ada.why_forward.find("112 of a tile's 128 query rows used"), std::string::npos) << ada.why_forward;
  EXPECT_NE(ada.why_forward.find("compute capability 8.9"), std::string::npos) << ada.why_forward;
  const auto three = choose_kernels(shape(96, 6, 2), device(90), 0);  // group 3: 32 positions, 96 rows
  EXPECT_EQ(three.forward, ForwardKernel::mma_sync);
  EXPECT_NE(three.why_forward.find("96 of a tile's 128 query rows used"), std::string::npos) << three.why_forward;
}

TEST(KernelChoice, DistanceSumsUseTensorCoresWhileTheSlotsFit) {
  EXPECT_EQ(choose_kernels(shape(128, 16, 4), device(90), kCapacity).sums, SumsKernel::tensor_core);
  const auto over = choose_kernels(shape(128, 16, 4), device(90), kCapacity + 1);
  EXPECT_EQ(over.sums, SumsKernel::simple);
  EXPECT_NE(over.describe().find("distance sums: simple"), std::string::npos) << over.describe();
}

// Slot tables: one slot per distance below `exact`, then bins of constant
// ratio with `per_decade` bins per decade (the profile's log bins).
std::vector<std::int32_t> log_slots(int T, int exact, int per_decade) {
  std::vector<std::int32_t> slot_of;
  for (int d = 0; d < T; ++d)
    slot_of.push_back(d < exact ? d : exact + static_cast<int>(std::floor(per_decade * std::log10(d / double(exact)))));
  return slot_of;
}

TEST(FusedSumsPlan, BandStartsWhereEvery128DistancesMeetAtMostTwoSlots) {
  // The CLI's default profile: exact below 1024, 16 bins per decade (the first 158 wide).
  const auto defaults = log_slots(131072, 1024, 16);
  const FusedSumsPlan p = plan_fused_sums(defaults);
  EXPECT_EQ(p.band, 1023);  // [1023, 1150] meets slots 1023 and 1024; [1022, 1149] meets three
  EXPECT_EQ(p.first_slot, 1023);
  EXPECT_EQ(p.coarse_slots, defaults.back() - 1023 + 1);
  for (long d = p.band; d < 131072; ++d)
    ASSERT_LE(defaults[std::min(d + 127, 131071L)] - defaults[d], 1) << d;
  // Exact distances only: just the last two (a tile row there is cut at T - 1).
  const FusedSumsPlan exact = plan_fused_sums(log_slots(5000, 5000, 16));
  EXPECT_EQ(exact.band, 4998);
  EXPECT_EQ(exact.coarse_slots, 2);
  EXPECT_EQ(plan_fused_sums(log_slots(128, 128, 16)).coarse_slots, 0);  // T within one key tile: nothing far
  // Bins wider than a tile from the start: the band is the wgmma tile.
  EXPECT_EQ(plan_fused_sums(log_slots(5000, 1, 1)).band, 128);
}

TEST(KernelChoice, FusedSumsOnHopperWhenThePlanFits) {
  const auto slots = log_slots(131072, 1024, 16);
  const FusedSumsPlan plan = plan_fused_sums(slots);
  const int n = slots.back() + 1;
  const auto c = choose_kernels(shape(128, 32, 8), device(90), n, plan);
  EXPECT_EQ(c.sums, SumsKernel::fused);
  EXPECT_EQ(c.fused.band, 1023);
  EXPECT_NE(c.describe().find("distance sums: fused into the wgmma forward"), std::string::npos) << c.describe();
  // Not on other devices, nor with more far slots than the forward holds.
  EXPECT_EQ(choose_kernels(shape(128, 32, 8), device(89), n, plan).sums, SumsKernel::tensor_core);
  FusedSumsPlan wide = plan;
  wide.coarse_slots = kFusedSumsMaxSlots + 1;
  EXPECT_EQ(choose_kernels(shape(128, 32, 8), device(90), n, wide).sums, SumsKernel::tensor_core);
}

}  // namespace
