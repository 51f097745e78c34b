// Normalizers, pre-tokenizers, post-processors and decoders (see pipeline.hpp).
#include "tokenizer/pipeline.hpp"

#include <fmt/format.h>

#include <array>

#include "core/error.hpp"
#include "tokenizer/split_llama3.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

using nlohmann::json;

void refuse(const std::string& where, const std::string& what) { throw FormatError(fmt::format("{}: {}", where, what)); }

namespace {

const json& member(const json& object, const char* key, const std::string& where) {
  if (!object.is_object()) refuse(where, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) refuse(where, fmt::format("missing \"{}\"", key));
  return *it;
}

std::string string_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_string()) refuse(where + "." + key, "expected a string");
  return value.get<std::string>();
}

bool bool_member(const json& object, const char* key, const std::string& where, std::optional<bool> fallback) {
  if (!object.is_object()) refuse(where, "expected an object");
  auto it = object.find(key);
  if (it == object.end() || (it->is_null() && fallback)) {
    if (!fallback) refuse(where, fmt::format("missing \"{}\"", key));
    return *fallback;
  }
  if (!it->is_boolean()) refuse(where + "." + key, "expected true or false");
  return it->get<bool>();
}

const json& array_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_array()) refuse(where + "." + key, "expected an array");
  return value;
}

std::string type_of(const json& object, const std::string& where) { return string_member(object, "type", where); }

// {"String": s} or {"Regex": r} as an Oniguruma regex (String patterns escaped, as HF does).
std::unique_ptr<Regex> make_pattern(const json& pattern, const std::string& where) {
  if (!pattern.is_object() || pattern.size() != 1) refuse(where, "expected {\"String\": ...} or {\"Regex\": ...}");
  auto it = pattern.begin();
  if (!it.value().is_string()) refuse(where + "." + it.key(), "expected a string");
  std::string text = it.value().get<std::string>();
  if (it.key() == "String") return Regex::literal(text, where);
  if (it.key() == "Regex") return std::make_unique<Regex>(text, where);
  refuse(where, fmt::format("unsupported pattern kind \"{}\" (expected String or Regex)", it.key()));
}

// Every match of `regex` in `text` and the stretches between them, flagged
// (HF's Pattern::find_matches for SysRegex), optionally inverted.
void find_matches(const Regex& regex, std::string_view text, bool invert,
                  std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>>& out) {
  out.clear();
  if (text.empty()) {
    out.push_back({{0, 0}, invert});
    return;
  }
  thread_local std::vector<std::pair<std::size_t, std::size_t>> matches;
  regex.find_all(text, matches);
  std::size_t previous = 0;
  for (auto [s, e] : matches) {
    if (previous != s) out.push_back({{previous, s}, invert});
    out.push_back({{s, e}, !invert});
    previous = e;
  }
  if (previous != text.size()) out.push_back({{previous, text.size()}, invert});
}

// ---------------------------------------------------------------- normalizers

class Nfc final : public Normalizer {
 public:
  void apply(std::string& text) const override { text = nfc(text); }
  std::string name() const override { return "NFC"; }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }
  std::string name() const override { return "Prepend"; }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::unique_ptr<Regex> regex, std::string content) : regex_(std::move(regex)), content_(std::move(content)) {}
  void apply(std::string& text) const override {
    thread_local std::vector<std::pair<std::size_t, std::size_t>> matches;
    regex_->find_all(text, matches);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size() + matches.size() * content_.size());
    std::size_t previous = 0;
    for (auto [s, e] : matches) {
      out.append(text, previous, s - previous);
      out += content_;
      previous = e;
    }
    out.append(text, previous);
    text = std::move(out);
  }
  std::string name() const override { return "Replace"; }

 private:
  std::unique_ptr<Regex> regex_;
  std::string content_;
};

class NormalizerSequence final : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::string& text) const override {
    for (const auto& step : steps_) step->apply(text);
  }
  std::string name() const override {
    std::string out = "Sequence[";
    for (std::size_t i = 0; i < steps_.size(); ++i) out += (i ? ", " : "") + steps_[i]->name();
    return out + "]";
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// ------------------------------------------------------------- pre-tokenizers

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

Behavior parse_behavior(const json& object, const std::string& where) {
  std::string name = string_member(object, "behavior", where);
  if (name == "Removed") return Behavior::removed;
  if (name == "Isolated") return Behavior::isolated;
  if (name == "MergedWithPrevious") return Behavior::merged_with_previous;
  if (name == "MergedWithNext") return Behavior::merged_with_next;
  if (name == "Contiguous") return Behavior::contiguous;
  refuse(where + ".behavior", fmt::format("unknown split behavior \"{}\"", name));
}

// NormalizedString::split: which stretches of `matches` become pieces under `behavior`.
void split_piece(const Piece& piece, const std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>>& matches,
                 Behavior behavior, std::vector<Piece>& out) {
  thread_local std::vector<std::pair<std::size_t, std::size_t>> kept;
  kept.clear();
  switch (behavior) {
    case Behavior::isolated:
      for (const auto& m : matches) kept.push_back(m.first);
      break;
    case Behavior::removed:
      for (const auto& m : matches)
        if (!m.second) kept.push_back(m.first);
      break;
    case Behavior::contiguous: {
      bool previous_match = false;
      for (const auto& [offsets, is_match] : matches) {
        if (is_match == previous_match && !kept.empty())
          kept.back().second = offsets.second;
        else
          kept.push_back(offsets);
        previous_match = is_match;
      }
      break;
    }
    case Behavior::merged_with_previous: {
      bool previous_match = false;
      for (const auto& [offsets, is_match] : matches) {
        if (is_match && !previous_match && !kept.empty())
          kept.back().second = offsets.second;
        else
          kept.push_back(offsets);
        previous_match = is_match;
      }
      break;
    }
    case Behavior::merged_with_next: {
      bool previous_match = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        const auto& [offsets, is_match] = *it;
        if (is_match && !previous_match && !kept.empty())
          kept.back().first = offsets.first;
        else
          kept.push_back(offsets);
        previous_match = is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (auto [s, e] : kept)
    if (e > s) out.push_back({piece.text.substr(s, e - s), piece.at_origin && s == 0});
}

class Split final : public PreTokenizer {
 public:
  // `hand_digits` > 0: the pattern is Llama 3's (3) or Qwen2's (1), matched by llama3_matches.
  Split(std::unique_ptr<Regex> regex, Behavior behavior, bool invert, int hand_digits)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert), hand_digits_(hand_digits) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 4);
    thread_local std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> matches;
    for (const Piece& piece : pieces) {
      if (hand_digits_)
        hand_matches(piece.text, matches);
      else
        find_matches(*regex_, piece.text, invert_, matches);
      split_piece(piece, matches, behavior_, out);
    }
    pieces = std::move(out);
  }
  std::string name() const override { return "Split"; }

 private:
  // find_matches for the hand-written matcher (whose matches cover the text: no gaps).
  void hand_matches(std::string_view text, std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>>& out) const {
    out.clear();
    if (text.empty()) {
      out.push_back({{0, 0}, invert_});
      return;
    }
    thread_local std::vector<std::pair<std::size_t, std::size_t>> spans;
    spans.clear();
    llama3_matches(text, hand_digits_, spans);
    for (auto span : spans) out.push_back({span, !invert_});
  }

  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
  int hand_digits_;
};

// Digits: every numeric character (Rust's char::is_numeric: Nd, Nl, No) is a
// match; each one its own piece (individual_digits) or runs of them (Contiguous).
class Digits final : public PreTokenizer {
 public:
  explicit Digits(bool individual) : behavior_(individual ? Behavior::isolated : Behavior::contiguous) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size() * 2);
    thread_local std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> matches;
    for (const Piece& piece : pieces) {
      matches.clear();
      std::size_t last = 0;
      for (std::size_t pos = 0; pos < piece.text.size();) {
        std::size_t length;
        char32_t cp = decode_utf8(piece.text, pos, length);
        if (is_numeric(cp)) {
          if (last < pos) matches.push_back({{last, pos}, false});
          matches.push_back({{pos, pos + length}, true});
          last = pos + length;
        }
        pos += length;
      }
      if (last < piece.text.size()) matches.push_back({{last, piece.text.size()}, false});
      split_piece(piece, matches, behavior_, out);
    }
    pieces = std::move(out);
  }
  std::string name() const override { return "Digits"; }

 private:
  Behavior behavior_;
};

const char* const gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex, const std::string& where) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(gpt2_pattern, where);
  }
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> split;
    split.reserve(pieces.size());
    thread_local std::vector<std::pair<std::pair<std::size_t, std::size_t>, bool>> matches;
    for (Piece& piece : pieces) {
      if (add_prefix_space_ && (piece.text.empty() || piece.text[0] != ' ')) piece.text.insert(piece.text.begin(), ' ');
      if (regex_) {
        find_matches(*regex_, piece.text, false, matches);
        split_piece(piece, matches, Behavior::isolated, split);
      } else if (!piece.text.empty()) {
        split.push_back(std::move(piece));
      }
    }
    for (Piece& piece : split) {
      std::string mapped;
      mapped.reserve(piece.text.size() * 2);
      for (char c : piece.text) mapped += byte_level_char(static_cast<unsigned char>(c));
      piece.text = std::move(mapped);
    }
    pieces = std::move(split);
  }
  std::string name() const override { return "ByteLevel"; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { always, first, never };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void apply(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (Piece& piece : pieces) {
      std::string text;
      text.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ')
          text += replacement_;
        else
          text += c;
      }
      bool starts = text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && piece.at_origin)))
        text.insert(0, replacement_);
      if (!split_) {
        if (!text.empty()) out.push_back({std::move(text), piece.at_origin});
        continue;
      }
      // Split on every replacement character, each joined to what follows it (MergedWithNext).
      std::size_t start = 0;
      std::size_t pos = text.find(replacement_, 1);  // a replacement at 0 starts the first piece
      while (pos != std::string::npos && pos > start) {
        out.push_back({text.substr(start, pos - start), piece.at_origin && start == 0});
        start = pos;
        pos = text.find(replacement_, pos + replacement_.size());
      }
      if (start < text.size()) out.push_back({text.substr(start), piece.at_origin && start == 0});
    }
    pieces = std::move(out);
  }
  std::string name() const override { return "Metaspace"; }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class PreTokenizerSequence final : public PreTokenizer {
 public:
  explicit PreTokenizerSequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->apply(pieces);
  }
  std::string name() const override {
    std::string out = "Sequence[";
    for (std::size_t i = 0; i < steps_.size(); ++i) out += (i ? ", " : "") + steps_[i]->name();
    return out + "]";
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// ------------------------------------------------------------------- decoders

class ByteLevelDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool exact) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      std::string decoded;
      bool all = true;
      std::size_t pos = 0;
      while (pos < token.size()) {
        std::size_t length;
        char32_t cp = decode_utf8(token, pos, length);
        int byte = byte_of(cp);
        if (byte < 0) {
          all = false;
          break;
        }
        decoded += char(byte);
        pos += length;
      }
      bytes += all ? decoded : token;
    }
    std::size_t replaced;
    tokens.assign(1, exact ? replace_invalid_utf8(bytes, replaced) : bytes);  // from_utf8_lossy
  }
  std::string name() const override { return "ByteLevel"; }

  static int byte_of(char32_t cp) {
    static const std::array<int, 324> table = [] {
      std::array<int, 324> t;
      t.fill(-1);
      for (int b = 0; b < 256; ++b) {
        std::size_t length;
        t[decode_utf8(byte_level_char(static_cast<unsigned char>(b)), 0, length)] = b;
      }
      return t;
    }();
    return cp < table.size() ? table[cp] : -1;
  }
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool drop_in_first) : replacement_(std::move(replacement)), drop_in_first_(drop_in_first) {}
  void apply(std::vector<std::string>& tokens, bool exact) const override {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      std::size_t pos = 0;
      std::string& token = tokens[i];
      // As HF: in the first token every replacement character is dropped (unless prepend_scheme is never).
      const bool drop = exact && i == 0 && drop_in_first_;
      while (pos < token.size()) {
        if (token.compare(pos, replacement_.size(), replacement_) == 0) {
          if (!drop) out += ' ';
          pos += replacement_.size();
        } else {
          out += token[pos++];
        }
      }
      token = std::move(out);
    }
  }
  std::string name() const override { return "Metaspace"; }

 private:
  std::string replacement_;
  bool drop_in_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  explicit ReplaceDecoder(std::unique_ptr<Normalizer> replace) : replace_(std::move(replace)) {}
  void apply(std::vector<std::string>& tokens, bool /*exact*/) const override {
    for (std::string& token : tokens) replace_->apply(token);
  }
  std::string name() const override { return "Replace"; }

 private:
  std::unique_ptr<Normalizer> replace_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool exact) const override {
    // Runs of <0xHH> tokens become their bytes: one piece if they are UTF-8, else one U+FFFD per byte (HF).
    std::vector<std::string> out;
    std::string run;
    std::size_t run_length = 0;
    auto flush = [&] {
      if (!run_length) return;
      if (!exact) {
        for (char c : run) out.emplace_back(1, c);
      } else if (find_invalid_utf8(run) == std::string::npos) {
        out.push_back(run);
      } else {
        for (std::size_t k = 0; k < run_length; ++k) out.emplace_back("\xEF\xBF\xBD");
      }
      run.clear();
      run_length = 0;
    };
    for (std::string& token : tokens) {
      int byte = byte_token(token);
      if (byte >= 0) {
        run += char(byte);
        ++run_length;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
  std::string name() const override { return "ByteFallback"; }

 private:
  // HF: six characters "<0x" H H ">" whose hex digits parse (either case).
  static int byte_token(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
    auto hex = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (c | 0x20) - 'a' + 10; };
    if (!std::isxdigit(static_cast<unsigned char>(token[3])) || !std::isxdigit(static_cast<unsigned char>(token[4]))) return -1;
    return hex(token[3]) * 16 + hex(token[4]);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void apply(std::vector<std::string>& tokens, bool /*exact*/) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, all);
  }
  std::string name() const override { return "Fuse"; }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, std::size_t start, std::size_t stop) : content_(content), start_(start), stop_(stop) {}
  void apply(std::vector<std::string>& tokens, bool exact) const override {
    if (!exact) return;
    for (std::string& token : tokens) {
      std::vector<std::pair<std::size_t, char32_t>> chars;
      for (std::size_t pos = 0; pos < token.size();) {
        std::size_t length;
        chars.push_back({pos, decode_utf8(token, pos, length)});
        pos += length;
      }
      std::size_t first = 0, last = chars.size();
      while (first < chars.size() && first < start_ && chars[first].second == content_) ++first;
      while (last > first && chars.size() - last < stop_ && chars[last - 1].second == content_) --last;
      std::size_t begin_byte = first < chars.size() ? chars[first].first : token.size();
      std::size_t end_byte = last < chars.size() ? chars[last].first : token.size();
      token = token.substr(begin_byte, end_byte - begin_byte);
    }
  }
  std::string name() const override { return "Strip"; }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

class DecoderSequence final : public Decoder {
 public:
  explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& tokens, bool exact) const override {
    for (const auto& step : steps_) step->apply(tokens, exact);
  }
  std::string name() const override { return "Sequence"; }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

char32_t single_char(const std::string& text, const std::string& where) {
  std::size_t length = 0;
  if (text.empty() || find_invalid_utf8(text) != std::string::npos) refuse(where, "expected one character");
  char32_t cp = decode_utf8(text, 0, length);
  if (length != text.size()) refuse(where, "expected one character");
  return cp;
}

PrependScheme parse_prepend_scheme(const json& object, const std::string& where) {
  PrependScheme scheme = PrependScheme::always;
  auto it = object.find("prepend_scheme");
  if (it != object.end()) {
    if (!it->is_string()) refuse(where + ".prepend_scheme", "expected a string");
    std::string name = it->get<std::string>();
    if (name == "always") scheme = PrependScheme::always;
    else if (name == "first") scheme = PrependScheme::first;
    else if (name == "never") scheme = PrependScheme::never;
    else refuse(where + ".prepend_scheme", fmt::format("unknown prepend_scheme \"{}\"", name));
  }
  auto legacy = object.find("add_prefix_space");
  if (legacy != object.end() && !legacy->is_null()) {
    if (!legacy->is_boolean()) refuse(where + ".add_prefix_space", "expected true or false");
    if (!legacy->get<bool>()) {
      if (scheme != PrependScheme::never)
        refuse(where, "add_prefix_space does not match declared prepend_scheme");
      scheme = PrependScheme::never;
    }
  }
  return scheme;
}

}  // namespace

const std::string& byte_level_char(unsigned char byte) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      append_utf8(t[b], char32_t(printable ? b : next++));
    }
    return t;
  }();
  return table[byte];
}

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  std::string type = type_of(j, where);
  if (type == "NFC") return std::make_unique<Nfc>();
  if (type == "Prepend") return std::make_unique<Prepend>(string_member(j, "prepend", where));
  if (type == "Replace")
    return std::make_unique<Replace>(make_pattern(member(j, "pattern", where), where + ".pattern"),
                                     string_member(j, "content", where));
  if (type == "Sequence") {
    const json& list = array_member(j, "normalizers", where);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (std::size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_normalizer(list[i], fmt::format("{}.normalizers[{}]", where, i)));
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  refuse(where + ".type", fmt::format("normalizer \"{}\" is not supported (supported: NFC, Prepend, Replace, Sequence)", type));
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  std::string type = type_of(j, where);
  if (type == "Split") {
    const json& pattern = member(j, "pattern", where);
    int hand_digits = 0;
    if (pattern.is_object() && pattern.size() == 1 && pattern.contains("Regex") && pattern["Regex"].is_string()) {
      const std::string& text = pattern["Regex"].get_ref<const std::string&>();
      hand_digits = text == llama3_pattern ? 3 : text == qwen2_pattern ? 1 : 0;
    }
    return std::make_unique<Split>(make_pattern(pattern, where + ".pattern"), parse_behavior(j, where),
                                   bool_member(j, "invert", where, std::nullopt), hand_digits);
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(bool_member(j, "add_prefix_space", where, std::nullopt),
                                       bool_member(j, "use_regex", where, true), where);
  if (type == "Digits") return std::make_unique<Digits>(bool_member(j, "individual_digits", where, std::nullopt));
  if (type == "Metaspace") {
    std::string replacement = string_member(j, "replacement", where);
    single_char(replacement, where + ".replacement");
    return std::make_unique<Metaspace>(replacement, parse_prepend_scheme(j, where), bool_member(j, "split", where, true));
  }
  if (type == "Sequence") {
    const json& list = array_member(j, "pretokenizers", where);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (std::size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", where, i)));
    return std::make_unique<PreTokenizerSequence>(std::move(steps));
  }
  refuse(where + ".type",
         fmt::format("pre-tokenizer \"{}\" is not supported (supported: Split, ByteLevel, Metaspace, Digits, Sequence)", type));
}

PostProcessor make_post_processor(const json& j, const std::string& where) {
  std::string type = type_of(j, where);
  if (type == "ByteLevel") return {{}, {}, "ByteLevel"};
  if (type == "Sequence") {
    const json& list = array_member(j, "processors", where);
    PostProcessor all{{}, {}, "Sequence["};
    for (std::size_t i = 0; i < list.size(); ++i) {
      PostProcessor step = make_post_processor(list[i], fmt::format("{}.processors[{}]", where, i));
      // Each processor wraps the result of the previous one.
      all.before.insert(all.before.begin(), step.before.begin(), step.before.end());
      all.after.insert(all.after.end(), step.after.begin(), step.after.end());
      all.name += (i ? ", " : "") + step.name;
    }
    all.name += "]";
    return all;
  }
  if (type == "TemplateProcessing") {
    const json& single = array_member(j, "single", where);
    const json& specials = member(j, "special_tokens", where);
    if (!specials.is_object()) refuse(where + ".special_tokens", "expected an object");
    PostProcessor out{{}, {}, "TemplateProcessing"};
    bool seen_sequence = false;
    for (std::size_t i = 0; i < single.size(); ++i) {
      std::string at = fmt::format("{}.single[{}]", where, i);
      const json& item = single[i];
      if (!item.is_object() || item.size() != 1) refuse(at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      auto it = item.begin();
      std::string id = string_member(it.value(), "id", at + "." + it.key());
      if (it.key() == "Sequence") {
        if (id != "A") refuse(at, fmt::format("sequence \"{}\" in the single template (only A is allowed)", id));
        if (seen_sequence) refuse(at, "$A appears twice in the single template");
        seen_sequence = true;
      } else if (it.key() == "SpecialToken") {
        auto special = specials.find(id);
        if (special == specials.end()) refuse(at, fmt::format("special token \"{}\" is not in special_tokens", id));
        std::string sat = fmt::format("{}.special_tokens[\"{}\"]", where, id);
        const json& ids = array_member(*special, "ids", sat);
        auto& target = seen_sequence ? out.after : out.before;
        for (std::size_t k = 0; k < ids.size(); ++k) {
          if (!ids[k].is_number_unsigned() || ids[k].get<std::uint64_t>() > 0xFFFFFFFFull)
            refuse(fmt::format("{}.ids[{}]", sat, k), "expected a token id");
          target.push_back(ids[k].get<std::uint32_t>());
        }
      } else {
        refuse(at, fmt::format("unknown template piece \"{}\"", it.key()));
      }
    }
    if (!seen_sequence) refuse(where + ".single", "the single template has no $A");
    return out;
  }
  refuse(where + ".type", fmt::format("post-processor \"{}\" is not supported (supported: TemplateProcessing, "
                                      "ByteLevel, Sequence)", type));
}

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
  std::string type = type_of(j, where);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    std::string replacement = string_member(j, "replacement", where);
    single_char(replacement, where + ".replacement");
    return std::make_unique<MetaspaceDecoder>(replacement, parse_prepend_scheme(j, where) != PrependScheme::never);
  }
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(make_normalizer(j, where));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    char32_t content = single_char(string_member(j, "content", where), where + ".content");
    const json& start = member(j, "start", where);
    const json& stop = member(j, "stop", where);
    if (!start.is_number_unsigned() || !stop.is_number_unsigned()) refuse(where, "start and stop must be counts");
    return std::make_unique<StripDecoder>(content, start.get<std::size_t>(), stop.get<std::size_t>());
  }
  if (type == "Sequence") {
    const json& list = array_member(j, "decoders", where);
    std::vector<std::unique_ptr<Decoder>> steps;
    for (std::size_t i = 0; i < list.size(); ++i)
      steps.push_back(make_decoder(list[i], fmt::format("{}.decoders[{}]", where, i)));
    return std::make_unique<DecoderSequence>(std::move(steps));
  }
  refuse(where + ".type", fmt::format("decoder \"{}\" is not supported (supported: ByteLevel, Metaspace, Replace, "
                                      "ByteFallback, Fuse, Strip, Sequence)", type));
}

}  // namespace ropescope::tokenizer
