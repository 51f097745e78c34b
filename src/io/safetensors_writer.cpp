// safetensors writer: header construction and streamed, atomic output.
#include "io/safetensors_writer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "io/strict_json.hpp"

namespace ropescope::io {

namespace {

std::uint64_t byte_size(const TensorSpec& t) {
  std::uint64_t n = dtype_size(t.dtype);
  for (auto d : t.shape)
    if (__builtin_mul_overflow(n, d, &n))
      throw ArgumentError(fmt::format("tensor {}: byte size overflows 64 bits", json_quoted(t.name)));
  return n;
}

std::string make_header(const std::vector<TensorSpec>& tensors, const std::map<std::string, std::string>& metadata,
                        std::uint64_t& total) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  total = 0;
  for (const auto& t : tensors) {
    if (t.name.empty()) throw ArgumentError("safetensors writer: a tensor has an empty name");
    if (t.name.find('\0') != std::string::npos || t.name == "__metadata__")
      throw ArgumentError(fmt::format("safetensors writer: invalid tensor name {}", json_quoted(t.name)));
    if (!seen.insert(t.name).second)
      throw ArgumentError(fmt::format("safetensors writer: duplicate tensor name {}", json_quoted(t.name)));
    const std::uint64_t bytes = byte_size(t);
    header[t.name] = {{"dtype", std::string(to_string(t.dtype))}, {"shape", t.shape}, {"data_offsets", {total, total + bytes}}};
    total += bytes;
  }
  std::string text = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::filesystem::path target, std::vector<TensorSpec> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : out_(std::move(target)) {
  const std::string header = make_header(tensors, metadata, expected_);
  std::byte length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((header.size() >> (8 * i)) & 0xff);
  out_.write(length, 8);
  out_.write(header);
}

void SafetensorsWriter::write(std::span<const std::byte> bytes) {
  if (bytes.size() > expected_ - written_)
    throw ArgumentError(fmt::format("safetensors writer {}: more data than the {} bytes the header announces",
                                    out_.target().string(), expected_));
  out_.write(bytes.data(), bytes.size());
  written_ += bytes.size();
}

void SafetensorsWriter::commit() {
  if (written_ != expected_)
    throw ArgumentError(fmt::format("safetensors writer {}: {} bytes of tensor data written, the header announces {}",
                                    out_.target().string(), written_, expected_));
  out_.commit();
}

void write_safetensors(const std::filesystem::path& target, std::vector<TensorData> tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorData& a, const TensorData& b) {
    const auto sa = dtype_size(a.dtype), sb = dtype_size(b.dtype);
    return sa != sb ? sa > sb : a.name < b.name;
  });
  std::vector<TensorSpec> specs;
  specs.reserve(tensors.size());
  for (const auto& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  for (const auto& t : tensors) {
    const std::uint64_t expected = byte_size(specs[&t - tensors.data()]);
    if (t.bytes.size() != expected)
      throw ArgumentError(fmt::format("safetensors writer: tensor {} has {} bytes, expected {} ({} x [{}])",
                                      json_quoted(t.name), t.bytes.size(), expected, to_string(t.dtype),
                                      fmt::join(t.shape, ", ")));
  }
  SafetensorsWriter writer(target, std::move(specs), metadata);
  for (const auto& t : tensors) writer.write(t.bytes);
  writer.commit();
}

}  // namespace ropescope::io
