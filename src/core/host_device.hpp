// ROPESCOPE_HOST_DEVICE: __host__ __device__ under nvcc, nothing otherwise,
// for the few plain C++ functions that the CPU code and the CUDA kernels share
// (backend/query_noise_value.hpp, kernels/ops/fixed_point.hpp).
#pragma once

#ifdef __CUDACC__
#define ROPESCOPE_HOST_DEVICE __host__ __device__
#else
#define ROPESCOPE_HOST_DEVICE
#endif
