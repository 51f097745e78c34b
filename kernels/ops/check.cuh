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

// The layout every attention kernel takes (ops.hpp): A a multiple of KV with
// G = A / KV in {1, 2, 4, 8}, A = 2Q with imaginary twins (else Q), and a
// rope table covering T positions and at most d / 2 pairs. Returns G; throws
// std::runtime_error prefixed with `who` otherwise.
inline int check_attention_shape(const char* who, const AttentionShape& shape, const DeviceRopeTable& rope,
                                 bool any_group = false) {
  const int KV = shape.kv_heads, A = shape.attention_heads;
  if (KV <= 0 || A % KV != 0) throw std::runtime_error(std::string(who) + ": A must be a multiple of KV");
  const int G = A / KV;
  if (any_group ? G > 8 : G != 1 && G != 2 && G != 4 && G != 8)
    throw std::runtime_error(std::string(who) + (any_group ? ": G = A / KV must be at most 8"
                                                           : ": G = A / KV must be 1, 2, 4 or 8"));
  if (A != (shape.imaginary_twins ? 2 * shape.query_heads : shape.query_heads))
    throw std::runtime_error(std::string(who) + ": A must be 2Q with imaginary twins, else Q");
  if (rope.positions < shape.T || 2 * rope.pairs > shape.head_dim)
    throw std::runtime_error(std::string(who) + ": rope table too small");
  return G;
}

}  // namespace ropescope::kernels
