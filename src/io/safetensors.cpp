// safetensors reader: mapping, lookup and float conversion of tensor views.
#include "io/safetensors.hpp"

#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

#include "core/error.hpp"
#include "io/strict_json.hpp"

namespace ropescope::io {

TensorView::TensorView(std::shared_ptr<const MappedFile> file, const TensorInfo& info, std::uint64_t data_offset)
    : file_(std::move(file)), name_(info.name), dtype_(info.dtype), shape_(info.shape) {
  bytes_ = file_->bytes().subspan(data_offset + info.begin, info.end - info.begin);
}

std::uint64_t TensorView::numel() const {
  std::uint64_t n = 1;
  for (auto d : shape_) n *= d;  // cannot overflow: the header parser checked the byte size
  return n;
}

const std::filesystem::path& TensorView::file() const {
  static const std::filesystem::path none;
  return file_ ? file_->path() : none;
}

void TensorView::require_float() const {
  if (!is_float_dtype(dtype_))
    throw FormatError(fmt::format("{}: unsupported dtype {} in tensor {} (expected F32, F16, BF16 or F64)",
                                  file().string(), to_string(dtype_), json_quoted(name_)));
}

float TensorView::at(std::uint64_t index) const {
  require_float();
  if (index >= numel())
    throw std::out_of_range(fmt::format("tensor {}: element {} of {}", name_, index, numel()));
  return load_as_float(bytes_.data(), dtype_, index);
}

void TensorView::to_float(std::span<float> out) const {
  require_float();
  const std::uint64_t n = numel();
  if (out.size() != n)
    throw std::invalid_argument(fmt::format("tensor {}: output holds {} floats, expected {}", name_, out.size(), n));
  const std::byte* src = bytes_.data();
  switch (dtype_) {
    case Dtype::F32:
      if (n) std::memcpy(out.data(), src, n * 4);
      break;
    case Dtype::BF16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        out[i] = bf16_to_float(v);
      }
      break;
    case Dtype::F16:
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        out[i] = f16_to_float(v);
      }
      break;
    default:
      for (std::uint64_t i = 0; i < n; ++i) out[i] = load_as_float(src, dtype_, i);
      break;
  }
}

std::vector<float> TensorView::to_float() const {
  require_float();
  std::vector<float> out(numel());
  to_float(out);
  return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(std::make_shared<const MappedFile>(path)),
      header_(parse_safetensors_header(file_->bytes(), path.string())) {
  for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) names.push_back(t.name);
  return names;
}

TensorView SafetensorsFile::tensor(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw FormatError(fmt::format("{}: no tensor {}", path().string(), json_quoted(name)));
  return TensorView(file_, header_.tensors[it->second], header_.data_offset);
}

}  // namespace ropescope::io
