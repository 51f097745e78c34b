// Non-finite weights (NaN, +-infinity) found at load: every tensor the model
// consumes is scanned on its raw bit patterns (no conversion), in parallel
// chunks, so a checkpoint with one bad value is refused before any forward
// pass turns it into a plausible-looking number.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "io/safetensors.hpp"

namespace ropescope::model {

// The index of the first element of `bytes` (a little-endian array of
// `dtype`, any alignment) that is NaN or infinite; nullopt when every element
// is finite or the dtype is not a floating-point one (integers are always finite).
std::optional<std::uint64_t> first_non_finite(std::span<const std::byte> bytes, io::Dtype dtype);

// Throws FormatError naming the file, the tensor, the first bad element (flat
// index, its coordinates in the tensor's shape) and its value, for the first
// of `tensors` (in the order given) that holds a NaN or an infinity.
void check_finite(const std::vector<io::TensorView>& tensors);

}  // namespace ropescope::model
