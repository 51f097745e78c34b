// The CUDA error check shared by the op kernels' host wrappers: any failed
// runtime call or launch becomes a std::runtime_error naming the call site.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ropescope::kernels {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace ropescope::kernels
