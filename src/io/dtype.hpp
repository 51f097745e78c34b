// Element types of safetensors files (the names the format uses) and the exact
// conversions between float and the 16-bit float formats (F16, BF16).
// Conversions work on bit patterns, never through misaligned pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ropescope::io {

// Every dtype of the reference safetensors format. Only F32, F16, BF16 (and F64)
// convert to float; the others are recognised so that a file holding them is
// still validated completely.
enum class Dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

// Bytes per element.
std::size_t dtype_size(Dtype dtype);
// The safetensors name ("BF16").
std::string_view to_string(Dtype dtype);
// The dtype with that safetensors name, or nullopt.
std::optional<Dtype> dtype_from_name(std::string_view name);
// Whether to_float conversion exists for it (F32, F16, BF16, F64).
bool is_float_dtype(Dtype dtype);

// Exact: every BF16 / F16 value (NaN, inf, subnormals included) is a float.
float bf16_to_float(std::uint16_t bits);
float f16_to_float(std::uint16_t bits);
// Round to nearest, ties to even; overflow goes to infinity; NaN stays NaN (quiet).
std::uint16_t float_to_bf16(float value);
std::uint16_t float_to_f16(float value);
// x rounded to float32 and then to `dtype` (BF16 / F16 round to nearest even; F32 and F64 to float32).
double round_to_dtype(double x, Dtype dtype);

// Element `index` of a little-endian array of `dtype` starting at `bytes`
// (any alignment), converted to float. `dtype` must satisfy is_float_dtype.
float load_as_float(const std::byte* bytes, Dtype dtype, std::size_t index);

}  // namespace ropescope::io
