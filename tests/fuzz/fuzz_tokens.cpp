// libFuzzer target for the token readers (scripts/run-fuzz.sh, clang, ASan and
// UBSan): the first byte picks the format (npy, raw of each dtype, bytes) and
// the vocabulary size, the rest is the file. Malformed input may only raise
// FormatError or ArgumentError; accepted tokens must be non-empty, inside the
// vocabulary, and as many as the format says the file holds.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/error.hpp"
#include "io/tokens.hpp"

namespace {
struct Reading {
  ropescope::io::TokenFormat format;
  const char* dtype;
  std::size_t width;  // bytes per token, 0 for .npy
};
const Reading kReadings[] = {{ropescope::io::TokenFormat::npy, "uint32", 0},
                             {ropescope::io::TokenFormat::raw, "uint16", 2},
                             {ropescope::io::TokenFormat::raw, "uint32", 4},
                             {ropescope::io::TokenFormat::raw, "int32", 4},
                             {ropescope::io::TokenFormat::raw, "int64", 8},
                             {ropescope::io::TokenFormat::bytes, "uint32", 1},
                             {ropescope::io::TokenFormat::raw, "float32", 4}};
constexpr std::size_t kCount = sizeof(kReadings) / sizeof(kReadings[0]);
const int kVocab[] = {1, 256, 50000, 2147483647};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Reading& reading = kReadings[(data[0] & 0x0f) % kCount];
  const int vocab = kVocab[(data[0] >> 4) % 4];
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  try {
    const auto tokens = ropescope::io::parse_tokens(file, "fuzz", reading.format, reading.dtype, vocab);
    if (tokens.empty()) __builtin_trap();
    if (reading.width != 0 && tokens.size() * reading.width != file.size()) __builtin_trap();
    for (auto t : tokens)
      if (t < 0 || t >= vocab) __builtin_trap();
  } catch (const ropescope::FormatError&) {
    // A malformed file.
  } catch (const ropescope::ArgumentError&) {
    // An id outside the vocabulary, a .npy read as bytes, an unknown dtype.
  }
  return 0;
}
