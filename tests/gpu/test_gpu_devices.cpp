// The CUDA backend sees the GPU machine's devices and reports none, without
// failing, elsewhere. Skipped (with the runtime's reason) where there is no GPU.
#include <gtest/gtest.h>

#include "kernels/device_info.hpp"

TEST(GpuDevices, ListsAtLeastOneHopperClassDeviceWhenPresent) {
  std::string why;
  auto devices = ropescope::kernels::cuda_devices(&why);
  if (devices.empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.memory_bytes, 0u);
    EXPECT_GE(d.compute_major, 7) << d.name;
  }
}

TEST(GpuDevices, DescriptionNamesTheReasonWhenThereIsNoDevice) {
  std::string text = ropescope::kernels::describe_cuda_devices();
  std::string why;
  if (ropescope::kernels::cuda_devices(&why).empty()) {
    EXPECT_NE(text.find("no device"), std::string::npos) << text;
  } else {
    EXPECT_NE(text.find("sm_"), std::string::npos) << text;
  }
}
