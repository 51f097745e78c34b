// Validation of safetensors headers; see safetensors_header.hpp for the rules.
#include "io/safetensors_header.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "core/error.hpp"
#include "io/strict_json.hpp"
#include "io/utf8_check.hpp"

namespace ropescope::io {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw FormatError(fmt::format("{}: {}", source, what));
}

// A JSON value that must be a non-negative integer (as the reference's usize).
std::uint64_t non_negative_integer(const json& value, const std::string& source, const std::string& what) {
  // Only unsigned literals: like the reference (serde_json reads "-0" as a float), "-0" is refused.
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  const bool negative_zero = value.is_number_integer() && value.get<std::int64_t>() == 0;
  fail(source, fmt::format("{} is {}, expected a non-negative integer", what, negative_zero ? "-0" : value.dump()));
}

std::string shape_text(const std::vector<std::uint64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, const std::string& source) {
  const std::string tensor = "tensor " + json_quoted(name);
  if (name.empty()) fail(source, "a tensor has an empty name");
  if (name.find('\0') != std::string::npos) fail(source, tensor + ": the name contains a NUL character");
  if (!entry.is_object()) fail(source, fmt::format("{}: entry is a JSON {}, expected an object", tensor, entry.type_name()));

  TensorInfo info;
  info.name = name;
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end()) fail(source, tensor + ": missing \"dtype\"");
  if (!dtype->is_string()) fail(source, fmt::format("{}: \"dtype\" is {}, expected a string", tensor, dtype->dump()));
  const auto known = dtype_from_name(dtype->get_ref<const std::string&>());
  if (!known) fail(source, fmt::format("unsupported dtype {} in {}", dtype->dump(), tensor));
  info.dtype = *known;

  const auto shape = entry.find("shape");
  if (shape == entry.end()) fail(source, tensor + ": missing \"shape\"");
  if (!shape->is_array()) fail(source, fmt::format("{}: \"shape\" is {}, expected an array", tensor, shape->dump()));
  for (std::size_t i = 0; i < shape->size(); ++i)
    info.shape.push_back(non_negative_integer((*shape)[i], source, fmt::format("{}: shape[{}]", tensor, i)));

  const auto offsets = entry.find("data_offsets");
  if (offsets == entry.end()) fail(source, tensor + ": missing \"data_offsets\"");
  if (!offsets->is_array() || offsets->size() != 2)
    fail(source, fmt::format("{}: \"data_offsets\" is {}, expected [begin, end]", tensor, offsets->dump()));
  info.begin = non_negative_integer((*offsets)[0], source, tensor + ": data_offsets[0]");
  info.end = non_negative_integer((*offsets)[1], source, tensor + ": data_offsets[1]");
  return info;
}

// dtype size x product(shape), or throws on 64-bit overflow.
std::uint64_t byte_size(const TensorInfo& info, const std::string& source) {
  std::uint64_t elements = 1;
  for (auto dim : info.shape)
    if (__builtin_mul_overflow(elements, dim, &elements))
      fail(source, fmt::format("tensor {}: the element count of shape {} overflows 64 bits", json_quoted(info.name),
                               shape_text(info.shape)));
  std::uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<std::uint64_t>(dtype_size(info.dtype)), &bytes))
    fail(source, fmt::format("tensor {}: the byte size of {} x {} overflows 64 bits", json_quoted(info.name),
                             to_string(info.dtype), shape_text(info.shape)));
  return bytes;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file, const std::string& source) {
  if (file.size() < 8)
    fail(source, fmt::format("file is {} bytes, too short for the 8-byte header length", file.size()));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  if (n > kMaxSafetensorsHeader)
    fail(source, fmt::format("header length {} exceeds the limit of {} bytes", n, kMaxSafetensorsHeader));
  if (n > file.size() - 8)
    fail(source, fmt::format("header length {} runs past the end of the file ({} bytes)", n, file.size()));

  const auto header_bytes = file.subspan(8, n);
  const std::string_view text(reinterpret_cast<const char*>(header_bytes.data()), header_bytes.size());
  if (find_invalid_utf8(text) != std::string_view::npos) fail(source, "header is not valid UTF-8");
  const json header = parse_json_strict(text, source + ": header");
  if (!header.is_object()) fail(source, fmt::format("header is a JSON {}, expected an object", header.type_name()));

  SafetensorsHeader result;
  result.header_length = n;
  result.data_offset = 8 + n;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) fail(source, fmt::format("\"__metadata__\" is {}, expected an object", value.dump()));
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string())
          fail(source, fmt::format("\"__metadata__\" value {} is {}, expected a string", json_quoted(mkey), mvalue.dump()));
        result.metadata.emplace(mkey, mvalue.get<std::string>());
      }
      continue;
    }
    result.tensors.push_back(parse_tensor_entry(key, value, source));
  }

  // As the reference: order by (begin, end), then require contiguity from 0.
  std::sort(result.tensors.begin(), result.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t expected_begin = 0;
  for (const auto& t : result.tensors) {
    const std::string tensor = "tensor " + json_quoted(t.name);
    if (t.end < t.begin)
      fail(source, fmt::format("{}: data_offsets [{}, {}] end before they begin", tensor, t.begin, t.end));
    if (t.begin != expected_begin)
      fail(source, fmt::format("{}: data begins at byte {}, expected {} ({})", tensor, t.begin, expected_begin,
                               t.begin > expected_begin ? "a gap before it" : "it overlaps the tensor before it"));
    const std::uint64_t bytes = byte_size(t, source);
    if (t.end - t.begin != bytes)
      fail(source, fmt::format("{}: data_offsets [{}, {}] hold {} bytes, expected {} ({} x {})", tensor, t.begin,
                               t.end, t.end - t.begin, bytes, to_string(t.dtype), shape_text(t.shape)));
    expected_begin = t.end;
  }
  const std::uint64_t data_size = file.size() - result.data_offset;
  if (expected_begin > data_size)
    fail(source, fmt::format("file is truncated: tensors end at data byte {} but the data section has {} bytes",
                             expected_begin, data_size));
  if (expected_begin < data_size)
    fail(source, fmt::format("{} stray bytes after the last tensor (tensors end at data byte {}, the data section has {})",
                             data_size - expected_begin, expected_begin, data_size));
  return result;
}

}  // namespace ropescope::io
