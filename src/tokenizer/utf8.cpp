// UTF-8 decoding, validation and replacement; White_Space and \w; NFC through utf8proc.
#include "tokenizer/utf8.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "core/error.hpp"
#include "io/utf8_check.hpp"

namespace ropescope::tokenizer {

char32_t decode_utf8(std::string_view text, std::size_t pos, std::size_t& length) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  unsigned char lead = p[0];
  if (lead < 0x80) {
    length = 1;
    return lead;
  }
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    return (char32_t(lead & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if ((lead & 0xF0) == 0xE0) {
    length = 3;
    return (char32_t(lead & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  length = 4;
  return (char32_t(lead & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string replace_invalid_utf8(std::string_view text, std::size_t& replaced) {
  std::string out;
  out.reserve(text.size());
  replaced = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const long len = io::utf8_sequence_length(text, pos);
    if (len > 0) {
      out.append(text.substr(pos, std::size_t(len)));
      pos += std::size_t(len);
    } else {
      out += "\xEF\xBF\xBD";
      ++replaced;
      pos += std::size_t(-len);
    }
  }
  return out;
}

bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  if (cp == 0x200C || cp == 0x200D) return true;  // Join_Control
  // Other_Alphabetic code points whose category is So (circled / squared letters).
  if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
      (cp >= 0x1F170 && cp <= 0x1F189))
    return true;
  switch (utf8proc_category(utf8proc_int32_t(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  auto category = utf8proc_category(utf8proc_int32_t(cp));
  return category == UTF8PROC_CATEGORY_ND || category == UTF8PROC_CATEGORY_NL || category == UTF8PROC_CATEGORY_NO;
}

std::string nfc(std::string_view text) {
  // ASCII is its own NFC form and never composes with what precedes it.
  bool ascii = true;
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return std::string(text);
  // HF's NFC tables (unicode-normalization-alignments) predate Unicode 13 and
  // do not compose U+11935 U+11930 into U+11938; utf8proc does. U+11930 is a
  // starter that composes with nothing else, so normalizing the text in
  // pieces that each begin at a U+11930 reproduces HF.
  static constexpr std::string_view dives_akuru_aa = "\xF0\x91\xA4\xB0";
  if (std::size_t cut = text.find(dives_akuru_aa, 1); cut != std::string_view::npos)
    return nfc(text.substr(0, cut)) + nfc(text.substr(cut));
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    utf8proc_ssize_t(text.size()), &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw Error(std::string("NFC failed: ") + utf8proc_errmsg(n));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(out, &std::free);
  return std::string(reinterpret_cast<const char*>(out), std::size_t(n));
}

}  // namespace ropescope::tokenizer
