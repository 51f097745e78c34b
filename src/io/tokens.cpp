// Token inputs (see tokens.hpp).
#include "io/tokens.hpp"

#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "core/error.hpp"
#include "io/npy.hpp"

namespace ropescope::io {

TokenFormat parse_token_format(const std::string& name) {
  if (name == "npy") return TokenFormat::npy;
  if (name == "raw") return TokenFormat::raw;
  if (name == "bytes") return TokenFormat::bytes;
  throw ArgumentError(fmt::format("unknown token format '{}' (expected npy, raw or bytes)", name));
}

std::vector<std::int32_t> load_tokens(const TokenInput& input, int vocab_size) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(input.path, ec))
    throw ArgumentError(fmt::format("cannot open token file '{}': not a readable file", input.path.string()));
  std::vector<std::int64_t> ids;
  if (input.format == TokenFormat::npy) {
    ids = read_npy_integers(input.path).values;
  } else {
    std::ifstream in(input.path, std::ios::binary);
    if (!in) throw ArgumentError(fmt::format("cannot open token file '{}'", input.path.string()));
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (input.format == TokenFormat::bytes) {
      ids.assign(bytes.begin(), bytes.end());
    } else {
      std::size_t size = input.raw_dtype == "uint16" ? 2 : (input.raw_dtype == "int64" ? 8 : 4);
      if (input.raw_dtype != "uint16" && input.raw_dtype != "uint32" && input.raw_dtype != "int32" &&
          input.raw_dtype != "int64")
        throw ArgumentError(fmt::format("--dtype '{}' is not one of uint16, uint32, int32, int64", input.raw_dtype));
      if (bytes.size() % size != 0)
        throw FormatError(fmt::format("{}: {} bytes is not a whole number of {} values", input.path.string(),
                                      bytes.size(), input.raw_dtype));
      ids.resize(bytes.size() / size);
      for (std::size_t i = 0; i < ids.size(); ++i) {
        std::uint64_t u = 0;
        for (std::size_t b = 0; b < size; ++b) u |= std::uint64_t(bytes[i * size + b]) << (8 * b);
        ids[i] = input.raw_dtype == "int32" ? static_cast<std::int32_t>(u) : static_cast<std::int64_t>(u);
      }
    }
  }
  if (ids.empty()) throw ArgumentError(fmt::format("token file '{}' holds no tokens", input.path.string()));
  std::vector<std::int32_t> tokens(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size)
      throw ArgumentError(fmt::format("token file '{}': token id {} at position {} is outside the model's vocabulary [0, {})",
                                      input.path.string(), ids[i], i, vocab_size));
    tokens[i] = static_cast<std::int32_t>(ids[i]);
  }
  return tokens;
}

}  // namespace ropescope::io
