// Hand-written Llama 3 / Qwen2 pre-tokenizer matcher (see split_llama3.hpp).
#include "tokenizer/split_llama3.hpp"

#include <utf8proc.h>

#include <array>
#include <cstdint>

#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

const char* const llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

enum Class : std::uint8_t { other = 0, letter = 1, number = 2, space = 3, newline = 4 };  // newline: \r or \n (also space)

Class classify_slow(char32_t cp) {
  if (cp == '\r' || cp == '\n') return newline;
  if (is_white_space(cp)) return space;
  switch (utf8proc_category(utf8proc_int32_t(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return letter;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return number;
    default:
      return other;
  }
}

// Classes of the Basic Multilingual Plane, computed once.
const std::array<std::uint8_t, 0x10000>& bmp_classes() {
  static const auto table = [] {
    std::array<std::uint8_t, 0x10000> t{};
    for (char32_t cp = 0; cp < 0x10000; ++cp) t[cp] = classify_slow(cp);
    return t;
  }();
  return table;
}

struct Char {
  char32_t cp;
  std::size_t length;
  Class cls;
};

inline Char char_at(std::string_view text, std::size_t pos, const std::array<std::uint8_t, 0x10000>& bmp) {
  unsigned char lead = static_cast<unsigned char>(text[pos]);
  if (lead < 0x80) return {lead, 1, Class(bmp[lead])};
  std::size_t length;
  char32_t cp = decode_utf8(text, pos, length);
  return {cp, length, cp < 0x10000 ? Class(bmp[cp]) : classify_slow(cp)};
}

// Case-insensitive ASCII letter test as Oniguruma folds it: 's' also matches U+017F (long s).
inline bool folds_to(char32_t cp, char lower) {
  if (cp == char32_t(lower) || cp == char32_t(lower - 'a' + 'A')) return true;
  return lower == 's' && cp == 0x17F;
}

}  // namespace

void llama3_matches(std::string_view text, int max_digits, std::vector<std::pair<std::size_t, std::size_t>>& matches) {
  const auto& bmp = bmp_classes();
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const Char c = char_at(text, i, bmp);
    std::size_t end = 0;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (c.cp == '\'' && i + 1 < n) {
      const Char a = char_at(text, i + 1, bmp);
      std::size_t after_a = i + 1 + a.length;
      if (folds_to(a.cp, 's') || folds_to(a.cp, 't') || folds_to(a.cp, 'm') || folds_to(a.cp, 'd')) {
        end = after_a;
      } else if ((folds_to(a.cp, 'r') || folds_to(a.cp, 'v') || folds_to(a.cp, 'l')) && after_a < n) {
        const Char b = char_at(text, after_a, bmp);
        if (folds_to(b.cp, folds_to(a.cp, 'l') ? 'l' : 'e')) end = after_a + b.length;
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!end) {
      std::size_t j = i;
      if (c.cls != letter && c.cls != number && c.cls != newline) j = i + c.length;
      if (j == i || (j < n && char_at(text, j, bmp).cls == letter)) {
        std::size_t k = j;
        while (k < n) {
          const Char l = char_at(text, k, bmp);
          if (l.cls != letter) break;
          k += l.length;
        }
        if (k > j) end = k;
      }
    }
    // \p{N}{1,max_digits}
    if (!end && c.cls == number) {
      std::size_t k = i;
      for (int d = 0; d < max_digits && k < n; ++d) {
        const Char m = char_at(text, k, bmp);
        if (m.cls != number) break;
        k += m.length;
      }
      end = k;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    if (!end) {
      std::size_t j = i;
      if (c.cp == ' ' && i + 1 < n && char_at(text, i + 1, bmp).cls == other) j = i + 1;
      std::size_t k = j;
      while (k < n) {
        const Char o = char_at(text, k, bmp);
        if (o.cls != other) break;
        k += o.length;
      }
      if (k > j) {
        while (k < n && (text[k] == '\r' || text[k] == '\n')) ++k;
        end = k;
      }
    }
    // \s*[\r\n]+ | \s+(?!\S) | \s+ : c is white space here.
    if (!end) {
      std::size_t k = i, last_newline_end = 0, last_start = i;
      while (k < n) {
        const Char s = char_at(text, k, bmp);
        if (s.cls != space && s.cls != newline) break;
        if (s.cls == newline) last_newline_end = k + s.length;
        last_start = k;
        k += s.length;
      }
      if (last_newline_end)
        end = last_newline_end;  // the whitespace run up to its last \r or \n
      else if (k == n || last_start == i)
        end = k;  // at the end of the text, or a single white space before a non-space (\s+)
      else
        end = last_start;  // all but the last white space, which goes with what follows
    }
    matches.emplace_back(i, end);
    i = end;
  }
}

}  // namespace ropescope::tokenizer
