// Oniguruma wrapper (see regex.hpp).
#include "tokenizer/regex.hpp"

#include <fmt/format.h>
#include <oniguruma.h>

#include <memory>
#include <mutex>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

namespace {
void initialise_oniguruma() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}
}  // namespace

namespace {
// In the Oniguruma that HF tokenizers bundles (onig_sys 69.9.3), [:punct:]
// in Unicode encodings is \p{P} plus \p{S} (measured: every assigned code
// point of Unicode 14); Debian 12's 6.9.8 gives \p{P} only. The POSIX bracket
// is widened to the newer definition.
std::string with_hf_posix_punct(const std::string& pattern, const std::string& where) {
  if (pattern.find("[:^punct:]") != std::string::npos)
    throw FormatError(where + ": [:^punct:] is not supported (its meaning differs between Oniguruma 6.9.8 and HF's 6.9.9)");
  static const std::string punct = "[:punct:]";
  std::string out;
  std::size_t from = 0;
  for (std::size_t at; (at = pattern.find(punct, from)) != std::string::npos; from = at + punct.size())
    out.append(pattern, from, at - from).append("[:punct:]\\p{S}");
  return out.append(pattern, from);
}
}  // namespace

Regex::Regex(const std::string& source, const std::string& where)
    : pattern_(source) {
  initialise_oniguruma();
  const std::string pattern = with_hf_posix_punct(source, where);
  OnigRegex regex = nullptr;
  OnigErrorInfo info;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int rc = onig_new(&regex, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, rc, &info);
    throw FormatError(fmt::format("{}: regex '{}' rejected by Oniguruma: {}", where, pattern,
                                  reinterpret_cast<const char*>(message)));
  }
  regex_ = regex;
}

Regex::~Regex() {
  if (regex_) onig_free(static_cast<OnigRegex>(regex_));
}

std::unique_ptr<Regex> Regex::literal(const std::string& text, const std::string& where) {
  auto regex = std::make_unique<Regex>(regex_escape(text), where);
  regex->literal_ = text;
  return regex;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& matches) const {
  matches.clear();
  if (!literal_.empty()) {
    for (std::size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at + literal_.size()))
      matches.emplace_back(at, at + literal_.size());
    return;
  }
  // A region per call: a Regex is shared by the threads that encode documents.
  std::unique_ptr<OnigRegion, void (*)(OnigRegion*)> owned(onig_region_new(),
                                                           [](OnigRegion* r) { onig_region_free(r, 1); });
  OnigRegion* region = owned.get();
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  std::size_t search_from = 0;
  bool have_previous = false;
  std::size_t previous_end = 0;
  while (search_from <= text.size()) {
    onig_region_clear(region);
    int rc = onig_search(static_cast<OnigRegex>(regex_), begin, end, begin + search_from, end, region, ONIG_OPTION_NONE);
    if (rc == ONIG_MISMATCH) break;
    if (rc < 0) {
      OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(message, rc);
      throw Error(fmt::format("regex '{}' failed: {}", pattern_, reinterpret_cast<const char*>(message)));
    }
    std::size_t s = std::size_t(region->beg[0]), e = std::size_t(region->end[0]);
    if (s == e && have_previous && previous_end == e) {
      // The onig crate skips such an empty match and resumes one character later.
      if (e >= text.size()) break;
      search_from = e + utf8_length(static_cast<unsigned char>(text[e]));
      continue;
    }
    matches.emplace_back(s, e);
    have_previous = true;
    previous_end = e;
    search_from = e;  // an empty match is found again there, then skipped as above
  }
}

std::string regex_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '\\': case '.': case '+': case '*': case '?': case '(': case ')': case '|': case '[': case ']':
      case '{': case '}': case '^': case '$': case '#': case '&': case '-': case '~':
        out += '\\';
        break;
      default:
        break;
    }
    out += c;
  }
  return out;
}

}  // namespace ropescope::tokenizer
