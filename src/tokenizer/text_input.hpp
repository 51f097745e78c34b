// A text file tokenized for the analyses and `ropescope tokenize`: read whole,
// checked to be UTF-8 (refused with the byte offset of the first invalid
// sequence, or with `replace_invalid` each invalid sequence replaced by U+FFFD
// as Python's errors="replace" does), then encoded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace ropescope::tokenizer {

struct TokenizedText {
  Encoding encoding;
  std::size_t file_bytes = 0;    // bytes of the file
  std::size_t text_bytes = 0;    // bytes encoded (differs from file_bytes only after replacement)
  std::size_t replaced = 0;      // invalid sequences replaced by U+FFFD
  double seconds = 0;            // encoding time
};

TokenizedText tokenize_file(const Tokenizer& tokenizer, const std::filesystem::path& path, bool add_special_tokens,
                            bool replace_invalid);

// The ids as a model's int32 token ids, each checked to be below its
// vocab_size embedding rows; otherwise ArgumentError(parameter, "<where>token
// i ('text', id n) is beyond the model's V embedding rows: the tokenizer does
// not belong to this model"), `where` prefixed as given (e.g. the file name).
std::vector<std::int32_t> model_token_ids(const Tokenizer& tokenizer, std::span<const std::uint32_t> ids,
                                          int vocab_size, const std::string& parameter, const std::string& where = "");

}  // namespace ropescope::tokenizer
