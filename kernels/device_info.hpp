// Which CUDA devices this process can see; the first thing the CUDA backend
// and the GPU tests ask. Works (and says "no device") on machines without a GPU.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace ropescope::kernels {

struct CudaDevice {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  std::size_t memory_bytes = 0;
};

// The usable devices; empty (not an error) when there is no driver or no GPU.
// `why_none` receives the CUDA runtime's reason when the list is empty.
std::vector<CudaDevice> cuda_devices(std::string* why_none = nullptr);

// One line for humans: "2 devices: NVIDIA H100 (sm_90, 79.1 GiB), ..." or "no device (reason)".
std::string describe_cuda_devices();

}  // namespace ropescope::kernels
