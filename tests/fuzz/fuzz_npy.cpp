// libFuzzer target for the .npy integer reader (scripts/run-fuzz.sh, clang,
// ASan and UBSan): malformed input may only raise FormatError; an accepted
// array must hold exactly the values its shape needs, each within its dtype.
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "core/error.hpp"
#include "io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto array = ropescope::io::parse_npy_integers(file, "fuzz");
    std::uint64_t count = 1;
    for (auto d : array.shape) count *= d;
    if (count != array.values.size()) __builtin_trap();
    std::int64_t low = 0, high = 0;
    if (array.dtype == "<i4") low = std::numeric_limits<std::int32_t>::min(), high = std::numeric_limits<std::int32_t>::max();
    else if (array.dtype == "<u4") high = std::numeric_limits<std::uint32_t>::max();
    else if (array.dtype == "<u2") high = std::numeric_limits<std::uint16_t>::max();
    else if (array.dtype == "|u1") high = std::numeric_limits<std::uint8_t>::max();
    else if (array.dtype == "<i8") low = std::numeric_limits<std::int64_t>::min(), high = std::numeric_limits<std::int64_t>::max();
    else __builtin_trap();
    for (auto v : array.values)
      if (v < low || v > high) __builtin_trap();
  } catch (const ropescope::FormatError&) {
    // Rejected input: the expected outcome for most of them.
  }
  return 0;
}
