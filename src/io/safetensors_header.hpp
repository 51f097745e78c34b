// The safetensors header parser, on a byte buffer (no file, no mmap), so that
// the libFuzzer target and the reader share it. It enforces every rule of the
// reference reader (huggingface/safetensors, tensor.rs) and more:
//   - 8-byte little-endian header length N, N <= 100,000,000, 8 + N <= file size;
//   - the header is UTF-8 and one JSON object, only whitespace around it;
//   - each tensor entry has "dtype" (a known name), "shape" (non-negative
//     integers) and "data_offsets" ([begin, end], non-negative integers);
//     other keys are ignored, as the reference does;
//   - "__metadata__" is null or an object of string values;
//   - sorted by offsets, the tensors are contiguous from 0 (no gap, no overlap),
//     each holds exactly dtype size x product(shape) bytes (overflow-checked),
//     and the last ends exactly at the end of the file;
//   - beyond the reference: no duplicate keys, no empty tensor names, no NUL in names.
// Every violation throws FormatError "<source>: <what is wrong>".
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.hpp"

namespace ropescope::io {

inline constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

struct TensorInfo {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;  // byte offsets into the data section
  std::uint64_t end = 0;
};

struct SafetensorsHeader {
  std::uint64_t header_length = 0;                // N
  std::uint64_t data_offset = 0;                  // 8 + N: where the data section starts in the file
  std::vector<TensorInfo> tensors;                // sorted by data offset
  std::map<std::string, std::string> metadata;    // "__metadata__"
};

// Parses and validates the whole file image `file` (header and the data
// section's extent; the data bytes themselves are not read).
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, const std::string& source);

}  // namespace ropescope::io
