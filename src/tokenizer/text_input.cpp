// Reading and tokenizing a text file (see text_input.hpp).
#include "tokenizer/text_input.hpp"

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

TokenizedText tokenize_file(const Tokenizer& tokenizer, const std::filesystem::path& path, bool add_special_tokens,
                            bool replace_invalid) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw ArgumentError("text", fmt::format("'{}': no such file", path.string()));
  std::string text = io::read_regular_file(path, "text file");
  TokenizedText out;
  out.file_bytes = text.size();
  std::size_t invalid = find_invalid_utf8(text);
  if (invalid != std::string::npos) {
    if (!replace_invalid)
      throw ArgumentError("text", fmt::format("'{}': not valid UTF-8 at byte offset {} (the replace-invalid option replaces "
                                              "invalid sequences by U+FFFD, as Python's errors=\"replace\")",
                                              path.string(), invalid));
    text = replace_invalid_utf8(text, out.replaced);
  }
  out.text_bytes = text.size();
  auto start = std::chrono::steady_clock::now();
  Tokenizer::Cache cache;
  out.encoding = tokenizer.encode_with_bytes(text, add_special_tokens, &cache);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::vector<std::int32_t> model_token_ids(const Tokenizer& tokenizer, std::span<const std::uint32_t> ids,
                                          int vocab_size, const std::string& parameter, const std::string& where) {
  std::vector<std::int32_t> out;
  out.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= static_cast<std::uint32_t>(vocab_size))
      throw ArgumentError(parameter, fmt::format("{}token {} ('{}', id {}) is beyond the model's {} embedding rows: the "
                                                 "tokenizer does not belong to this model",
                                                 where, i, tokenizer.token_text(ids[i]), ids[i], vocab_size));
    out.push_back(static_cast<std::int32_t>(ids[i]));
  }
  return out;
}

}  // namespace ropescope::tokenizer
