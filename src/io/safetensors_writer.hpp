// Writing safetensors files in the reference layout: 8-byte little-endian
// header length, a JSON header padded with spaces to a multiple of 8 bytes (so
// the data section is 8-byte aligned), then the tensors back to back. Output
// goes through AtomicOutput: a target appears complete or not at all. Tensor
// data is streamed, never gathered into one buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/dtype.hpp"

namespace ropescope::io {

struct TensorSpec {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;
};

// Streams one file: construct with the tensors in file order, then write()
// their bytes in that order (in pieces of any size), then commit(). Tensors
// stay aligned to their element size when given in decreasing element size
// (write_safetensors orders them so).
class SafetensorsWriter {
 public:
  // Throws ArgumentError for an empty, NUL-containing or duplicate name, or "__metadata__".
  SafetensorsWriter(std::filesystem::path target, std::vector<TensorSpec> tensors,
                    const std::map<std::string, std::string>& metadata = {});
  void write(std::span<const std::byte> bytes);
  // Throws ArgumentError unless exactly the announced bytes were written.
  void commit();

 private:
  AtomicOutput out_;
  std::uint64_t expected_ = 0;
  std::uint64_t written_ = 0;
};

struct TensorData {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;
  std::span<const std::byte> bytes;  // dtype size x product(shape) bytes, little-endian
};

// Writes `tensors` to `target`, ordered as the reference writer orders them
// (decreasing element size, then name), with optional "__metadata__".
void write_safetensors(const std::filesystem::path& target, std::vector<TensorData> tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ropescope::io
