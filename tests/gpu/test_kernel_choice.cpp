// The attention kernel choice (kernels/kernel_choice.hpp) is a pure function
// of the shape, the device's facts and the distance slots: checked here
// without a GPU, for every branch and its stated reason.
#include <gtest/gtest.h>

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
  for (int d : {16, 80, 96, 256}) {
    const auto c = choose_kernels(shape(d, 8, 2), device(90), 40);
    EXPECT_EQ(c.forward, ForwardKernel::simple) << d;
    EXPECT_EQ(c.sums, SumsKernel::simple) << d;
    EXPECT_NE(c.why_forward.find("the tiled kernels take 64 and 128"), std::string::npos) << c.why_forward;
  }
  const auto c = choose_kernels(shape(128, 48, 3), device(90), 0);  // group 16
  EXPECT_EQ(c.forward, ForwardKernel::simple);
  EXPECT_NE(c.why_forward.find("GQA group 16"), std::string::npos) << c.why_forward;
}

TEST(KernelChoice, DistanceSumsUseTensorCoresWhileTheSlotsFit) {
  EXPECT_EQ(choose_kernels(shape(128, 16, 4), device(90), kCapacity).sums, SumsKernel::tensor_core);
  const auto over = choose_kernels(shape(128, 16, 4), device(90), kCapacity + 1);
  EXPECT_EQ(over.sums, SumsKernel::simple);
  EXPECT_NE(over.describe().find("distance sums: simple"), std::string::npos) << over.describe();
}

}  // namespace
