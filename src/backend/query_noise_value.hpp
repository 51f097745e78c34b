// The value of the paper's query noise at one element: a standard normal number
// that is a pure function of (seed, layer, attention head, position, dim), so
// noise does not depend on blocking, threading, batching or the backend.
// splitmix64 mixes the coordinates into a key, two 53-bit uniforms come from
// it, and Box-Muller turns them into one normal value, all in float64.
// Plain C++17 with __host__ __device__ under nvcc: the CPU backend and the
// CUDA kernels call this one definition.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"

namespace ropescope::backend {

ROPESCOPE_HOST_DEVICE inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

ROPESCOPE_HOST_DEVICE inline double query_noise_value(std::uint64_t seed, int layer, int head, long position, int dim) {
  std::uint64_t key = splitmix64(seed);
  key = splitmix64(key ^ static_cast<std::uint64_t>(layer));
  key = splitmix64(key ^ static_cast<std::uint64_t>(head));
  key = splitmix64(key ^ static_cast<std::uint64_t>(position));
  key = splitmix64(key ^ static_cast<std::uint64_t>(dim));
  const double u1 = (static_cast<double>(key >> 11) + 0.5) * 0x1.0p-53;      // (0, 1)
  const double u2 = static_cast<double>(splitmix64(key) >> 11) * 0x1.0p-53;  // [0, 1)
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return sqrt(-2.0 * log(u1)) * cos(kTwoPi * u2);
}

}  // namespace ropescope::backend
