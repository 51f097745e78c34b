// Oniguruma regexes as HF tokenizers uses them (the `onig` crate: UTF-8,
// default options, Ruby syntax), and its find_iter over a string.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ropescope::tokenizer {

class Regex {
 public:
  // Throws FormatError (with `where`, the JSON path) if Oniguruma rejects the pattern.
  Regex(const std::string& pattern, const std::string& where);
  // HF's String patterns: `text` escaped as a regex. A non-empty one is searched
  // for directly (leftmost, non-overlapping: what the escaped regex matches).
  static std::unique_ptr<Regex> literal(const std::string& text, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every match of the pattern in `text`, as (begin, end) byte offsets, in the
  // order and with the empty-match rule of the onig crate's find_iter: an
  // empty match right where the previous match ended is skipped (the search
  // moves on by one character).
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& matches) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  std::string literal_;    // non-empty: search for this text instead of running the regex
  void* regex_ = nullptr;  // OnigRegex (searching it from several threads at once is safe)
};

// `text` with Rust's regex::escape applied (what HF does to String patterns).
std::string regex_escape(std::string_view text);

}  // namespace ropescope::tokenizer
