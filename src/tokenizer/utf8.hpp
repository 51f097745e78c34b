// UTF-8 helpers for the tokenizer: decoding one code point, validating a text
// (refusing with the byte offset, or replacing as Python's errors="replace"
// does), encoding, and the two character classes HF applies outside its
// regexes: White_Space (\s) and word characters (\w) of Rust's regex crate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/utf8_check.hpp"

namespace ropescope::tokenizer {

// Length in bytes of the UTF-8 sequence that starts with `lead` (1 for a
// continuation or invalid byte, so loops over valid text always advance).
inline std::size_t utf8_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// The code point at `text[pos]`; `text` must be valid UTF-8. Sets `length`.
char32_t decode_utf8(std::string_view text, std::size_t pos, std::size_t& length);

void append_utf8(std::string& out, char32_t cp);

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos (io/utf8_check.hpp).
using io::find_invalid_utf8;

// `text` with every maximal invalid subsequence replaced by U+FFFD, exactly as
// Python's bytes.decode("utf-8", errors="replace"); `replaced` counts them.
std::string replace_invalid_utf8(std::string_view text, std::size_t& replaced);

// Unicode White_Space (Rust regex \s; 25 code points, not U+180E/U+200B/U+FEFF).
bool is_white_space(char32_t cp);

// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation,
// join controls (general categories from utf8proc; Other_Alphabetic symbols
// listed by hand).
bool is_word_char(char32_t cp);

// Rust's char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t cp);

// Canonical composition (NFC) of valid UTF-8 text.
std::string nfc(std::string_view text);

}  // namespace ropescope::tokenizer
