// Token inputs for the model analyses: a .npy array of token ids, raw
// little-endian integers, or raw bytes for byte-level (vocab 256) models.
// A tokenizer (tokenizer.json) will be one more TokenFormat that yields ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ropescope::io {

enum class TokenFormat {
  npy,    // .npy of int32 / int64 / uint16 / uint32 (any shape, flattened in C order)
  raw,    // raw little-endian integers of `raw_dtype`
  bytes,  // every byte of the file is one token (vocab 256)
};

struct TokenInput {
  std::filesystem::path path;
  TokenFormat format = TokenFormat::npy;
  std::string raw_dtype = "uint32";  // for raw: uint16, uint32, int32, int64
};

// The token ids of the file, each checked to lie in [0, vocab_size): the first
// one that does not is an ArgumentError naming its position and the file.
std::vector<std::int32_t> load_tokens(const TokenInput& input, int vocab_size);

// "npy" / "raw" / "bytes"; ArgumentError otherwise.
TokenFormat parse_token_format(const std::string& name);

}  // namespace ropescope::io
