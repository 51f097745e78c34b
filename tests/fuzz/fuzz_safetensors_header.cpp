// libFuzzer target for the safetensors header parser (built and run by
// scripts/run-fuzz.sh with clang, ASan and UBSan). A malformed input may only
// raise FormatError; an accepted one must describe tensors inside the buffer.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.hpp"
#include "io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto header = ropescope::io::parse_safetensors_header(file, "fuzz");
    std::uint64_t end = 0;
    for (const auto& t : header.tensors) {
      if (t.begin != end || t.end < t.begin) __builtin_trap();
      end = t.end;
    }
    if (header.data_offset + end != size) __builtin_trap();
  } catch (const ropescope::FormatError&) {
    // Rejected input: the expected outcome for most of them.
  }
  return 0;
}
