// Token inputs for the model analyses: a .npy array of token ids, raw
// little-endian integers, or raw bytes for byte-level (vocab 256) models,
// read from a file or (parse_tokens) from bytes in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ropescope::io {

enum class TokenFormat {
  npy,    // .npy of int32 / int64 / uint16 / uint32 / uint8, shape (N,) or (1, N) (a batch of one)
  raw,    // raw little-endian integers of `raw_dtype`
  bytes,  // every byte of the file is one token (vocab 256); a .npy file is refused
};

struct TokenInput {
  std::filesystem::path path;
  TokenFormat format = TokenFormat::npy;
  std::string raw_dtype = "uint32";  // for raw: uint16, uint32, int32, int64
};

// The token ids of `file` (named `source` in messages), each checked to lie in
// [0, vocab_size): the first one that does not is an ArgumentError naming its
// position. An empty input, a raw input that is not a whole number of values,
// a .npy array of another shape than (N,) or (1, N), and a .npy file read as
// bytes are refused (FormatError, or ArgumentError for a contradicting format
// or dtype), each message naming the source.
std::vector<std::int32_t> parse_tokens(std::span<const std::byte> file, const std::string& source, TokenFormat format,
                                       const std::string& raw_dtype, int vocab_size);

// parse_tokens of the file (mapped, not copied). A missing path or one that is
// not a regular file (a FIFO, a directory) is an ArgumentError naming it.
std::vector<std::int32_t> load_tokens(const TokenInput& input, int vocab_size);

// "npy" / "raw" / "bytes"; ArgumentError otherwise.
TokenFormat parse_token_format(const std::string& name);

}  // namespace ropescope::io
