// A hand-written matcher for the pre-tokenizer regex of Llama 3 (also
// cl100k_base / OLMo 2) and its single-digit variant of Qwen2 / 2.5 / 3:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// It gives the matches Oniguruma's leftmost-first backtracking gives, several
// times faster. Letters and numbers come from utf8proc's Unicode 15 tables
// (Debian's Oniguruma has Unicode 14, HF's wheel 16); tests compare it with
// the Oniguruma regex on every code point where the two tables agree.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace ropescope::tokenizer {

extern const char* const llama3_pattern;
extern const char* const qwen2_pattern;

// Appends the (begin, end) byte offsets of every match in `text` (valid UTF-8).
// `max_digits`: 3 for Llama 3's \p{N}{1,3}, 1 for Qwen2's \p{N}.
void llama3_matches(std::string_view text, int max_digits, std::vector<std::pair<std::size_t, std::size_t>>& matches);

}  // namespace ropescope::tokenizer
