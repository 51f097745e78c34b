// Reading safetensors files: one mmap per file, a validated header, and
// TensorViews that point into the map (raw bytes + dtype + shape). Typed access
// copies and converts (memcpy), so misaligned data from old writers is safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.hpp"
#include "io/mapped_file.hpp"
#include "io/safetensors_header.hpp"

namespace ropescope::io {

// A tensor inside a mapped file. Holds the mapping alive, so a view never dangles.
class TensorView {
 public:
  TensorView() = default;
  TensorView(std::shared_ptr<const MappedFile> file, const TensorInfo& info, std::uint64_t data_offset);

  const std::string& name() const { return name_; }
  Dtype dtype() const { return dtype_; }
  const std::vector<std::uint64_t>& shape() const { return shape_; }
  std::uint64_t numel() const;
  // The raw little-endian bytes (any alignment).
  std::span<const std::byte> bytes() const { return bytes_; }
  // The file it lives in (for messages).
  const std::filesystem::path& file() const;
  bool empty() const { return file_ == nullptr; }

  // Element i converted to float. Throws FormatError unless the dtype is F32, F16, BF16 or F64.
  float at(std::uint64_t index) const;
  // All elements converted to float into `out` (out.size() == numel()).
  void to_float(std::span<float> out) const;
  std::vector<float> to_float() const;

 private:
  void require_float() const;

  std::shared_ptr<const MappedFile> file_;
  std::string name_;
  Dtype dtype_ = Dtype::F32;
  std::vector<std::uint64_t> shape_;
  std::span<const std::byte> bytes_;
};

// One safetensors file, mapped once and validated at open.
class SafetensorsFile {
 public:
  // Throws Error if the file cannot be mapped, FormatError if it is malformed.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_->path(); }
  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // Tensor names in data order.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws FormatError naming the file when absent.
  TensorView tensor(const std::string& name) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, std::size_t> index_;  // name -> header_.tensors index
};

}  // namespace ropescope::io
