// Token inputs (see tokens.hpp).
#include "io/tokens.hpp"

#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "io/npy.hpp"

namespace ropescope::io {

TokenFormat parse_token_format(const std::string& name) {
  if (name == "npy") return TokenFormat::npy;
  if (name == "raw") return TokenFormat::raw;
  if (name == "bytes") return TokenFormat::bytes;
  throw ArgumentError(fmt::format("unknown token format '{}' (expected npy, raw or bytes)", name));
}

namespace {

std::size_t raw_size(const std::string& dtype) {
  if (dtype == "uint16") return 2;
  if (dtype == "uint32" || dtype == "int32") return 4;
  if (dtype == "int64") return 8;
  throw ArgumentError("dtype", fmt::format("'{}' is not one of uint16, uint32, int32, int64", dtype));
}

std::vector<std::int64_t> npy_ids(std::span<const std::byte> file, const std::string& source) {
  NpyIntegers array = parse_npy_integers(file, source);
  const auto& shape = array.shape;
  if (shape.size() == 1 || (shape.size() == 2 && shape[0] == 1)) return std::move(array.values);
  throw FormatError(fmt::format("token file '{}': a .npy array of shape {}; expected shape (N,) or (1, N), one sequence",
                                source, npy_shape_string(shape)));
}

std::vector<std::int64_t> raw_ids(std::span<const std::byte> file, const std::string& source, const std::string& dtype) {
  const std::size_t size = raw_size(dtype);
  if (file.size() % size != 0)
    throw FormatError(fmt::format("token file '{}': {} bytes is not a whole number of {} values ({} bytes each)", source,
                                  file.size(), dtype, size));
  std::vector<std::int64_t> ids(file.size() / size);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    std::uint64_t u = 0;
    for (std::size_t b = 0; b < size; ++b) u |= std::uint64_t(file[i * size + b]) << (8 * b);
    ids[i] = dtype == "int32" ? static_cast<std::int32_t>(u) : static_cast<std::int64_t>(u);
  }
  return ids;
}

}  // namespace

std::vector<std::int32_t> parse_tokens(std::span<const std::byte> file, const std::string& source, TokenFormat format,
                                       const std::string& raw_dtype, int vocab_size) {
  if (format == TokenFormat::raw) raw_size(raw_dtype);  // an unknown dtype is refused before the file's contents
  if (file.empty()) throw FormatError(fmt::format("token file '{}' is empty (0 bytes)", source));
  std::vector<std::int64_t> ids;
  if (format == TokenFormat::npy) {
    ids = npy_ids(file, source);
  } else if (format == TokenFormat::raw) {
    ids = raw_ids(file, source, raw_dtype);
  } else {
    if (file.size() >= 6 && std::memcmp(file.data(), "\x93NUMPY", 6) == 0)
      throw ArgumentError(fmt::format(
          "token file '{}' is a .npy file (it starts with \\x93NUMPY), not raw bytes: use --format npy or drop --bytes",
          source));
    ids.resize(file.size());
    for (std::size_t i = 0; i < file.size(); ++i) ids[i] = static_cast<unsigned char>(file[i]);
  }
  if (ids.empty()) throw ArgumentError(fmt::format("token file '{}' holds no tokens", source));
  std::vector<std::int32_t> tokens(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw ArgumentError(fmt::format("token file '{}': token id {} at position {} is outside the model's vocabulary [0, {})",
                                      source, ids[i], i, vocab_size));
    tokens[i] = static_cast<std::int32_t>(ids[i]);
  }
  return tokens;
}

std::vector<std::int32_t> load_tokens(const TokenInput& input, int vocab_size) {
  std::error_code ec;
  if (!std::filesystem::exists(input.path, ec))
    throw ArgumentError(fmt::format("cannot open token file '{}': no such file", input.path.string()));
  const MappedFile file(input.path, "token file");
  return parse_tokens(file.bytes(), input.path.string(), input.format, input.raw_dtype, vocab_size);
}

}  // namespace ropescope::io
