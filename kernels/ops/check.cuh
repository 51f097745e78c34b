// The checks shared by the op kernels' host wrappers: any failed runtime call
// or launch becomes a std::runtime_error naming the call site, and the
// attention kernels' common shape contract.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels/ops/ops.hpp"

namespace ropescope::kernels {

inline void cuda_check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// The layout every tiled attention kernel takes (ops.hpp): A a multiple of KV
// with G = A / KV at most 8 (a CTA's 128 rows hold G heads of >= 16
// positions), A = 2Q with imaginary twins (else Q), and a rope table covering
// T positions and at most d / 2 pairs. Returns G; throws std::runtime_error
// prefixed with `who` otherwise.
inline int check_attention_shape(const char* who, const AttentionShape& shape, const DeviceRopeTable& rope) {
  const int KV = shape.kv_heads, A = shape.attention_heads;
  if (KV <= 0 || A % KV != 0) throw std::runtime_error(std::string(who) + ": A must be a multiple of KV");
  const int G = A / KV;
  if (G > 8) throw std::runtime_error(std::string(who) + ": G = A / KV must be at most 8");
  if (A != (shape.imaginary_twins ? 2 * shape.query_heads : shape.query_heads))
    throw std::runtime_error(std::string(who) + ": A must be 2Q with imaginary twins, else Q");
  if (rope.positions < shape.T || 2 * rope.pairs > shape.head_dim)
    throw std::runtime_error(std::string(who) + ": rope table too small");
  return G;
}

}  // namespace ropescope::kernels
