// CUDA device discovery (see device_info.hpp).
#include <cuda_runtime.h>

#include <cstdio>

#include "kernels/device_info.hpp"

namespace ropescope::kernels {

std::vector<CudaDevice> cuda_devices(std::string* why_none) {
  std::vector<CudaDevice> devices;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why_none) *why_none = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error for later callers
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    devices.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem});
  }
  if (devices.empty() && why_none) *why_none = "the CUDA runtime reports no device";
  return devices;
}

std::string describe_cuda_devices() {
  std::string why;
  auto devices = cuda_devices(&why);
  if (devices.empty()) return "no device (" + why + ")";
  std::string text = std::to_string(devices.size()) + (devices.size() == 1 ? " device: " : " devices: ");
  for (std::size_t i = 0; i < devices.size(); ++i) {
    char line[256];
    std::snprintf(line, sizeof line, "%s%s (sm_%d%d, %.1f GiB)", i ? ", " : "", devices[i].name.c_str(),
                  devices[i].compute_major, devices[i].compute_minor, devices[i].memory_bytes / 1073741824.0);
    text += line;
  }
  return text;
}

}  // namespace ropescope::kernels
