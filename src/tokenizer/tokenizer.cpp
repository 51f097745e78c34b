// tokenizer.json loading and the encode pipeline (see tokenizer.hpp); the order
// of steps is HF's TokenizerImpl::encode_single_sequence and
// AddedVocabulary::extract_and_normalize.
#include "tokenizer/tokenizer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pipeline.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

using nlohmann::json;

struct Tokenizer::Cache::Map {
  StringIdMap words;                                 // word -> index into spans
  std::vector<std::pair<std::uint32_t, std::uint32_t>> spans;  // (first, count) in ids
  std::vector<std::uint32_t> ids;
};
Tokenizer::Cache::Cache() : map(std::make_unique<Map>()) {}
Tokenizer::Cache::~Cache() = default;

namespace {

// The BPE memo: words shorter than 256 bytes (as HF), at most 2^18 of them (HF keeps
// 10,000; more only saves time on large multilingual inputs, the ids are the same).
constexpr std::size_t cache_max_word = 256;
constexpr std::size_t cache_capacity = std::size_t(1) << 18;

struct AddedToken {
  std::string content;
  std::uint32_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// Leftmost-longest matching of a set of strings (what HF does with daachorse),
// as a byte trie.
class TokenMatcher {
 public:
  void add(std::string_view pattern, std::uint32_t value) {
    if (pattern.empty()) return;
    int node = 0;
    for (char c : pattern) {
      auto& children = nodes_[node].children;
      auto it = std::lower_bound(children.begin(), children.end(), static_cast<unsigned char>(c),
                                 [](const auto& edge, unsigned char key) { return edge.first < key; });
      if (it != children.end() && it->first == static_cast<unsigned char>(c)) {
        node = it->second;
      } else {
        int child = int(nodes_.size());
        children.insert(it, {static_cast<unsigned char>(c), child});
        nodes_.push_back({});
        node = child;
      }
    }
    nodes_[node].value = value;
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }

  // The leftmost match at or after `from`, the longest there: (begin, end, value).
  std::optional<std::tuple<std::size_t, std::size_t, std::uint32_t>> find(std::string_view text, std::size_t from) const {
    for (std::size_t start = from; start < text.size(); ++start) {
      if (!first_byte_[static_cast<unsigned char>(text[start])]) continue;
      int node = 0;
      std::optional<std::pair<std::size_t, std::uint32_t>> best;
      for (std::size_t pos = start; pos < text.size(); ++pos) {
        const auto& children = nodes_[node].children;
        unsigned char key = static_cast<unsigned char>(text[pos]);
        auto it = std::lower_bound(children.begin(), children.end(), key,
                                   [](const auto& edge, unsigned char k) { return edge.first < k; });
        if (it == children.end() || it->first != key) break;
        node = it->second;
        if (nodes_[node].value) best = {{pos + 1, *nodes_[node].value}};
      }
      if (best) return std::make_tuple(start, best->first, best->second);
    }
    return std::nullopt;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> children;
    std::optional<std::uint32_t> value;  // index into the added tokens
  };
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  std::size_t pos = text.size() - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  std::size_t length;
  return is_word_char(decode_utf8(text, pos, length));
}

bool starts_with_word(std::string_view text) {
  if (text.empty()) return false;
  std::size_t length;
  return is_word_char(decode_utf8(text, 0, length));
}

// Start of the run of White_Space that ends `text` (its size if none).
std::size_t trailing_space_start(std::string_view text) {
  std::size_t end = text.size();
  while (end > 0) {
    std::size_t pos = end - 1;
    while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
    std::size_t length;
    if (!is_white_space(decode_utf8(text, pos, length))) break;
    end = pos;
  }
  return end;
}

// Length of the run of White_Space that starts `text`.
std::size_t leading_space_length(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length;
    if (!is_white_space(decode_utf8(text, pos, length))) break;
    pos += length;
  }
  return pos;
}

std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw ArgumentError(fmt::format("cannot open '{}': no such file", path.string()));
  return io::read_regular_file(path, "tokenizer file");
}

std::uint32_t id_value(const json& value, const std::string& where) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > 0x7FFFFFFFull) refuse(where, "expected a token id");
  return value.get<std::uint32_t>();
}


// tokenizer.json into a DOM, except model.vocab and model.merges (hundreds of
// thousands of entries), which go straight into lists: a DOM node per entry
// would take most of the load time. A vocab or merges that is not an object /
// array is left in the DOM, to be refused there with its path.
class TokenizerJsonSax {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  TokenizerJsonSax(json& root, const std::string& where) : dom_(root, true), where_(where) {}

  std::vector<std::pair<std::string, std::uint32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  bool have_vocab = false, have_merges = false;
  std::string error;  // a malformed entry, with its JSON path

  bool null() { return intercepted() ? bad() : (flush(), dom_.null()); }
  bool boolean(bool v) { return intercepted() ? bad() : (flush(), dom_.boolean(v)); }
  bool number_integer(number_integer_t v) { return intercepted() ? bad() : (flush(), dom_.number_integer(v)); }
  bool number_unsigned(number_unsigned_t v) {
    if (mode_ == Mode::vocab && depth_ == container_depth_) {
      if (v > 0x7FFFFFFFull) return bad();
      vocab.emplace_back(std::move(vocab_key_), std::uint32_t(v));
      return true;
    }
    return intercepted() ? bad() : (flush(), dom_.number_unsigned(v));
  }
  bool number_float(number_float_t v, const string_t& s) { return intercepted() ? bad() : (flush(), dom_.number_float(v, s)); }
  bool binary(binary_t& v) { return intercepted() ? bad() : (flush(), dom_.binary(v)); }
  bool string(string_t& v) {
    if (mode_ == Mode::merges) {
      if (depth_ == container_depth_) {  // legacy "a b"
        if (saw_pair_) return bad_merge_mix();
        saw_string_ = true;
        ++merge_index_;
        if (v.rfind("#version", 0) == 0) return true;
        std::size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos)
          return fail(fmt::format("{}.model.merges[{}]: a merge string must be two tokens separated by one space",
                                  where_, merge_index_ - 1));
        merges.emplace_back(v.substr(0, space), v.substr(space + 1));
        return true;
      }
      if (depth_ == container_depth_ + 1 && pair_.size() < 2) {
        pair_.push_back(std::move(v));
        return true;
      }
      return bad();
    }
    return intercepted() ? bad() : (flush(), dom_.string(v));
  }
  bool start_object(std::size_t n) {
    if (pending_ == Mode::vocab) {
      pending_ = Mode::none;
      mode_ = Mode::vocab;
      have_vocab = true;
      container_depth_ = ++depth_;
      return true;
    }
    if (intercepted()) return bad();
    flush();
    ++depth_;
    return dom_.start_object(n);
  }
  bool key(string_t& k) {
    if (mode_ == Mode::vocab) {
      vocab_key_ = std::move(k);
      return true;
    }
    if (intercepted()) return bad();
    if (depth_ == 1) top_key_ = k;
    if (depth_ == 2 && top_key_ == "model" && (k == "vocab" || k == "merges")) {
      pending_ = k == "vocab" ? Mode::vocab : Mode::merges;
      pending_key_ = k;
      return true;
    }
    return dom_.key(k);
  }
  bool end_object() {
    if (mode_ == Mode::vocab && depth_ == container_depth_) {
      mode_ = Mode::none;
      --depth_;
      return true;
    }
    if (intercepted()) return bad();
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (pending_ == Mode::merges) {
      pending_ = Mode::none;
      mode_ = Mode::merges;
      have_merges = true;
      container_depth_ = ++depth_;
      return true;
    }
    if (mode_ == Mode::merges && depth_ == container_depth_) {
      if (saw_string_) return bad_merge_mix();
      saw_pair_ = true;
      ++depth_;
      pair_.clear();
      return true;
    }
    if (intercepted()) return bad();
    flush();
    ++depth_;
    return dom_.start_array(n);
  }
  bool end_array() {
    if (mode_ == Mode::merges) {
      if (depth_ == container_depth_) {
        mode_ = Mode::none;
        --depth_;
        return true;
      }
      if (pair_.size() != 2) return bad();
      merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      ++merge_index_;
      --depth_;
      return true;
    }
    if (intercepted()) return bad();
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    return dom_.parse_error(position, token, e);
  }

 private:
  enum class Mode { none, vocab, merges };
  bool intercepted() const { return mode_ != Mode::none; }
  // A vocab / merges key whose value is not the expected container goes to the DOM after all.
  void flush() {
    if (pending_ == Mode::none) return;
    pending_ = Mode::none;
    dom_.key(pending_key_);
  }
  bool fail(std::string message) {
    error = std::move(message);
    return false;
  }
  bool bad() {
    if (mode_ == Mode::vocab)
      return fail(fmt::format("{}.model.vocab[{}]: expected a token id", where_, json(vocab_key_).dump()));
    return fail(fmt::format("{}.model.merges[{}]: expected \"a b\" or [\"a\", \"b\"]", where_, merge_index_));
  }
  bool bad_merge_mix() {
    return fail(fmt::format("{}.model.merges[{}]: strings and pairs mixed in one merges list", where_, merge_index_));
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::string where_;
  Mode mode_ = Mode::none, pending_ = Mode::none;
  int depth_ = 0, container_depth_ = 0;
  std::string top_key_, pending_key_, vocab_key_;
  std::vector<std::string> pair_;
  std::size_t merge_index_ = 0;
  bool saw_string_ = false, saw_pair_ = false;
};

}  // namespace

struct Tokenizer::Impl {
  std::string origin;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  PostProcessor post;
  bool has_post = false;
  std::optional<Bpe> model;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, std::uint32_t> added_ids;
  std::unordered_set<std::uint32_t> added_id_set;
  // Normalized added tokens whose normalized form differs: HF decodes them from that form.
  std::unordered_map<std::uint32_t, std::string> decode_forms;
  TokenMatcher raw_matcher, normalized_matcher;  // values index `added`
  // Views into the model's vocabulary or `added` (both fixed once loaded); empty where no token has that id.
  std::vector<std::string_view> id_to_token;
  // Bytes of token_text(id), computed on the first encode_with_bytes.
  mutable std::vector<std::uint32_t> decoded_length;
  mutable std::once_flag decoded_length_once;
  const std::vector<std::uint32_t>& decoded_lengths() const {
    std::call_once(decoded_length_once, [&] {
      decoded_length.resize(limit);
      for (std::uint32_t id = 0; id < limit; ++id) decoded_length[id] = std::uint32_t(text_of(id).size());
    });
    return decoded_length;
  }
  std::uint32_t limit = 0;

  std::string token_string(std::uint32_t id) const {
    return id < id_to_token.size() ? std::string(id_to_token[id]) : std::string();
  }

  void model_tokens(std::string_view piece, std::vector<std::uint32_t>& out, Cache* cache) const {
    if (cache && piece.size() < cache_max_word) {
      auto& map = *cache->map;
      if (auto index = map.words.find(piece)) {
        auto [first, count] = map.spans[*index];
        out.insert(out.end(), map.ids.begin() + first, map.ids.begin() + first + count);
        return;
      }
      std::size_t before = out.size();
      model->tokenize(piece, out);
      if (map.words.size() < cache_capacity) {
        map.words.assign(piece, std::uint32_t(map.spans.size()));
        map.spans.emplace_back(std::uint32_t(map.ids.size()), std::uint32_t(out.size() - before));
        map.ids.insert(map.ids.end(), out.begin() + long(before), out.end());
      }
      return;
    }
    model->tokenize(piece, out);
  }

  // Normalizes, extracts normalized added tokens, pre-tokenizes and tokenizes
  // one stretch of text between raw added tokens.
  void encode_segment(std::string_view segment, bool at_origin, std::vector<std::uint32_t>& out, Cache* cache) const {
    std::string text(segment);
    if (normalizer) normalizer->apply(text);
    std::vector<Piece> pieces;
    auto emit_pieces = [&](std::string_view part, bool part_at_origin) {
      if (part.empty()) return;
      pieces.clear();
      pieces.push_back({std::string(part), part_at_origin});
      if (pre_tokenizer) pre_tokenizer->apply(pieces);
      for (const Piece& piece : pieces) model_tokens(piece.text, out, cache);
    };
    if (normalized_matcher.empty()) {
      emit_pieces(text, at_origin);
      return;
    }
    split_added(normalized_matcher, text, [&](std::size_t begin, std::size_t end, const AddedToken* token) {
      if (token)
        out.push_back(token->id);
      else
        emit_pieces(std::string_view(text).substr(begin, end - begin), at_origin && begin == 0);
    });
  }

  // AddedVocabulary::find_matches: calls `visit(begin, end, token or null)`
  // for the stretches of `text` in order.
  template <typename Visit>
  void split_added(const TokenMatcher& matcher, std::string_view text, Visit&& visit) const {
    std::size_t previous_end = 0, search = 0;
    while (search < text.size()) {
      auto match = matcher.find(text, search);
      if (!match) break;
      auto [start, stop, index] = *match;
      search = stop;
      const AddedToken& token = added[index];
      if (token.single_word) {
        bool start_ok = start == 0 || !ends_with_word(text.substr(0, start));
        bool stop_ok = stop == text.size() || !starts_with_word(text.substr(stop));
        if (!start_ok || !stop_ok) continue;
      }
      if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), previous_end);
      if (token.rstrip) stop += leading_space_length(text.substr(stop));
      if (previous_end < start) visit(previous_end, start, nullptr);
      // As in HF, the search resumes at the end of the match itself, not of
      // the whitespace rstrip took; a later match inside that whitespace
      // still counts (only its bytes are clamped here).
      visit(std::min(std::max(start, previous_end), stop), stop, &token);
      previous_end = stop;
    }
    if (previous_end < text.size()) visit(previous_end, text.size(), nullptr);
  }

  void encode(std::string_view text, bool add_special, Cache* cache, std::vector<std::uint32_t>& ids,
              std::vector<std::uint32_t>* bytes) const {
    std::size_t invalid = find_invalid_utf8(text);
    if (invalid != std::string_view::npos)
      throw ArgumentError(fmt::format("the text is not valid UTF-8 at byte offset {}", invalid));
    if (add_special && has_post) {
      ids.insert(ids.end(), post.before.begin(), post.before.end());
      if (bytes) bytes->insert(bytes->end(), post.before.size(), 0);
    }
    // Bytes of stretches that gave no token (e.g. whitespace a Split removed)
    // go to the next token, or to the last one at the end.
    std::size_t unclaimed = 0;
    const std::size_t first_text_token = ids.size();
    auto segment = [&](std::size_t begin, std::size_t end, const AddedToken* token) {
      std::size_t first = ids.size();
      if (token)
        ids.push_back(token->id);
      else
        encode_segment(text.substr(begin, end - begin), begin == 0, ids, cache);
      if (!bytes) return;
      if (ids.size() == first) {
        unclaimed += end - begin;
        return;
      }
      share_bytes(ids, first, end - begin, *bytes);
      (*bytes)[first] += std::uint32_t(unclaimed);
      unclaimed = 0;
    };
    if (raw_matcher.empty()) {
      if (!text.empty()) segment(0, text.size(), nullptr);
    } else {
      split_added(raw_matcher, text, segment);
    }
    if (bytes && unclaimed && ids.size() > first_text_token) bytes->back() += std::uint32_t(unclaimed);
    if (add_special && has_post) {
      ids.insert(ids.end(), post.after.begin(), post.after.end());
      if (bytes) bytes->insert(bytes->end(), post.after.size(), 0);
    }
  }

  // Shares the `length` bytes of a stretch of input out over its tokens ids[first..]:
  // each takes its decoded length while bytes remain, the last takes the rest.
  void share_bytes(const std::vector<std::uint32_t>& ids, std::size_t first, std::size_t length,
                   std::vector<std::uint32_t>& bytes) const {
    std::size_t remaining = length;
    const auto& decoded = decoded_lengths();
    for (std::size_t i = first; i < ids.size(); ++i) {
      std::size_t take = i + 1 == ids.size() ? remaining : std::min<std::size_t>(remaining, decoded[ids[i]]);
      bytes.push_back(std::uint32_t(take));
      remaining -= take;
    }
  }

  // The bytes one token stands for: added tokens their content, others through the decoder's raw mode.
  std::string text_of(std::uint32_t id) const {
    std::vector<std::string> tokens{token_string(id)};
    if (decoder && !added_id_set.count(id)) decoder->apply(tokens, false);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::filesystem::path find_tokenizer_json(const std::filesystem::path& path) {
  std::error_code ec;
  const bool is_file = std::filesystem::is_regular_file(path, ec);
  if (is_file && path.extension() != ".model") return path;
  if (!is_file && !std::filesystem::is_directory(path, ec))
    throw ArgumentError(fmt::format("tokenizer '{}': no such file or directory", path.string()));
  auto json_path = path / "tokenizer.json";
  if (!is_file && std::filesystem::is_regular_file(json_path, ec)) return json_path;
  auto model_path = is_file ? path : path / "tokenizer.model";
  if (std::filesystem::is_regular_file(model_path, ec)) {
    std::string head = read_file(model_path).substr(0, 4096);
    // tiktoken rank files are lines of "<base64 token> <rank>"; SentencePiece models are protobuf (binary).
    bool tiktoken = !head.empty() && head.find('\0') == std::string::npos &&
                    std::all_of(head.begin(), head.end(), [](char c) {
                      return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=' ||
                             c == ' ' || c == '\n' || c == '\r';
                    });
    std::string what = tiktoken ? "tiktoken BPE ranks (base64 token and rank per line, as in Llama 3's original/)"
                                : "a SentencePiece model (protobuf)";
    throw ArgumentError(fmt::format(
        "'{}' {} {}. ropescope reads only HF tokenizer.json: "
        "take tokenizer.json from the model's Hugging Face repository, or convert once with transformers "
        "(AutoTokenizer.from_pretrained(dir).save_pretrained(dir) writes tokenizer.json)",
        path.string(), is_file ? "is a tokenizer.model:" : "holds no tokenizer.json, only a tokenizer.model:", what));
  }
  throw ArgumentError(fmt::format("'{}' holds no tokenizer.json", path.string()));
}

Tokenizer Tokenizer::load(const std::filesystem::path& path) {
  auto file = find_tokenizer_json(path);
  return from_json(read_file(file), file.string());
}

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& origin) {
  std::string at = origin + ": $";
  json root;
  TokenizerJsonSax sax(root, at);
  try {
    bool ok = json::sax_parse(text, &sax);
    if (!ok && !sax.error.empty()) throw FormatError(sax.error);
  } catch (const json::exception& e) {
    throw FormatError(fmt::format("{}: not valid JSON: {}", origin, e.what()));
  }
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  if (!root.is_object()) refuse(at, "expected an object");
  for (const char* unmodelled : {"truncation", "padding"}) {
    auto it = root.find(unmodelled);
    if (it != root.end() && !it->is_null())
      refuse(at + "." + unmodelled, fmt::format("{} is not supported (it must be null)", unmodelled));
  }
  if (auto it = root.find("version"); it != root.end() && (!it->is_string() || *it != "1.0"))
    refuse(at + ".version", "unknown tokenizer version (expected \"1.0\")");

  // Model.
  auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) refuse(at + ".model", "missing or not an object");
  const json& model = *model_it;
  std::string mat = at + ".model";
  auto type_it = model.find("type");
  if (type_it == model.end() || !type_it->is_string()) refuse(mat + ".type", "missing model type");
  if (*type_it != "BPE")
    refuse(mat + ".type", fmt::format("model \"{}\" is not supported (only BPE)", type_it->get<std::string>()));
  BpeConfig config;
  if (auto it = model.find("dropout"); it != model.end() && !it->is_null())
    refuse(mat + ".dropout", "BPE dropout is not supported (it must be null)");
  auto optional_string = [&](const char* key) -> std::optional<std::string> {
    auto it = model.find(key);
    if (it == model.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) refuse(mat + "." + key, "expected a string or null");
    return it->get<std::string>();
  };
  auto optional_bool = [&](const char* key) {
    auto it = model.find(key);
    if (it == model.end() || it->is_null()) return false;
    if (!it->is_boolean()) refuse(mat + "." + key, "expected true, false or null");
    return it->get<bool>();
  };
  config.unk_token = optional_string("unk_token");
  config.continuing_subword_prefix = optional_string("continuing_subword_prefix");
  config.end_of_word_suffix = optional_string("end_of_word_suffix");
  config.fuse_unk = optional_bool("fuse_unk");
  config.byte_fallback = optional_bool("byte_fallback");
  config.ignore_merges = optional_bool("ignore_merges");
  if (!sax.have_vocab) refuse(mat + ".vocab", "missing or not an object");
  if (!sax.have_merges) refuse(mat + ".merges", "missing or not an array");
  config.vocab = std::move(sax.vocab);
  config.merges = std::move(sax.merges);
  impl->model.emplace(std::move(config), mat);
  // The vocabulary's ids, for display.
  const StringIdMap& vocab = impl->model->vocab();
  std::uint32_t max_id = 0;
  for (const auto& entry : vocab.entries()) max_id = std::max(max_id, entry.id);
  std::size_t model_vocab_size = vocab.size();
  impl->id_to_token.assign(model_vocab_size ? max_id + 1 : 0, std::string_view());
  std::vector<bool> seen(impl->id_to_token.size());
  for (const auto& entry : vocab.entries()) {
    if (seen[entry.id]) refuse(mat + ".vocab", fmt::format("id {} is given to two tokens", entry.id));
    seen[entry.id] = true;
    impl->id_to_token[entry.id] = vocab.view(entry);
  }

  // Normalizer, pre-tokenizer, post-processor, decoder.
  auto component = [&](const char* key) -> const json* {
    auto it = root.find(key);
    return it == root.end() || it->is_null() ? nullptr : &*it;
  };
  if (const json* j = component("normalizer")) impl->normalizer = make_normalizer(*j, at + ".normalizer");
  if (const json* j = component("pre_tokenizer")) impl->pre_tokenizer = make_pre_tokenizer(*j, at + ".pre_tokenizer");
  if (const json* j = component("post_processor")) {
    impl->post = make_post_processor(*j, at + ".post_processor");
    impl->has_post = true;
  }
  if (const json* j = component("decoder")) impl->decoder = make_decoder(*j, at + ".decoder");

  // Added tokens: ids as AddedVocabulary::add_tokens gives them (the JSON id must agree).
  std::uint32_t next_id = std::uint32_t(model_vocab_size);
  if (auto it = root.find("added_tokens"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) refuse(at + ".added_tokens", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& entry = (*it)[i];
      std::string where = fmt::format("{}.added_tokens[{}]", at, i);
      if (!entry.is_object()) refuse(where, "expected an object");
      AddedToken token;
      auto content = entry.find("content");
      if (content == entry.end() || !content->is_string()) refuse(where + ".content", "missing or not a string");
      token.content = content->get<std::string>();
      auto flag = [&](const char* key, bool fallback) {
        auto f = entry.find(key);
        if (f == entry.end()) return fallback;
        if (!f->is_boolean()) refuse(where + "." + key, "expected true or false");
        return f->get<bool>();
      };
      token.single_word = flag("single_word", false);
      token.lstrip = flag("lstrip", false);
      token.rstrip = flag("rstrip", false);
      token.normalized = flag("normalized", true);
      token.special = flag("special", false);
      auto json_id = entry.find("id");
      if (json_id == entry.end()) refuse(where + ".id", "missing");
      std::uint32_t declared = id_value(*json_id, where + ".id");
      if (token.content.empty()) continue;  // HF ignores empty added tokens
      std::uint32_t id;
      if (auto known = impl->added_ids.find(token.content); known != impl->added_ids.end())
        id = known->second;
      else if (auto model_id = impl->model->token_to_id(token.content))
        id = *model_id;
      else
        id = next_id++;
      if (id != declared)
        refuse(where + ".id", fmt::format("token \"{}\" is declared with id {} but HF tokenizers gives it id {}",
                                          token.content, declared, id));
      token.id = id;
      impl->added_ids[token.content] = id;
      // A repeated content replaces the earlier entry's flags.
      auto same = std::find_if(impl->added.begin(), impl->added.end(), [&](const AddedToken& a) { return a.id == id; });
      if (same != impl->added.end())
        *same = token;
      else
        impl->added.push_back(token);
    }
  }
  for (std::uint32_t i = 0; i < impl->added.size(); ++i) {
    const AddedToken& token = impl->added[i];
    if (token.normalized) {
      std::string pattern = token.content;
      if (impl->normalizer) impl->normalizer->apply(pattern);
      impl->normalized_matcher.add(pattern, i);
      if (pattern != token.content) impl->decode_forms[token.id] = pattern;
    } else {
      impl->raw_matcher.add(token.content, i);
    }
    impl->added_id_set.insert(token.id);
    if (token.id >= impl->id_to_token.size()) impl->id_to_token.resize(token.id + 1);
    impl->id_to_token[token.id] = token.content;  // `added` is complete: its strings stay where they are
  }
  impl->limit = std::uint32_t(impl->id_to_token.size());
  for (std::uint32_t id : impl->post.before) impl->limit = std::max(impl->limit, id + 1);
  for (std::uint32_t id : impl->post.after) impl->limit = std::max(impl->limit, id + 1);
  return Tokenizer(std::move(impl));
}

std::vector<std::uint32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens, Cache* cache) const {
  std::vector<std::uint32_t> ids;
  impl_->encode(text, add_special_tokens, cache, ids, nullptr);
  return ids;
}

Encoding Tokenizer::encode_with_bytes(std::string_view text, bool add_special_tokens, Cache* cache) const {
  Encoding out;
  impl_->encode(text, add_special_tokens, cache, out.ids, &out.bytes);
  return out;
}

std::string Tokenizer::token_text(std::uint32_t id) const { return impl_->text_of(id); }

std::string Tokenizer::decode(const std::vector<std::uint32_t>& ids) const {
  std::vector<std::string> tokens;
  for (std::uint32_t id : ids)
    if (auto form = impl_->decode_forms.find(id); form != impl_->decode_forms.end())
      tokens.push_back(form->second);
    else if (id < impl_->id_to_token.size())
      tokens.push_back(impl_->token_string(id));  // HF skips unknown ids
  std::string joined;
  if (impl_->decoder) {
    impl_->decoder->apply(tokens, true);
    for (const auto& t : tokens) joined += t;
  } else {
    for (std::size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];  // HF joins with spaces
  }
  std::size_t replaced;
  return replace_invalid_utf8(joined, replaced);
}

std::uint32_t Tokenizer::id_limit() const { return impl_->limit; }

std::string Tokenizer::describe() const {
  return fmt::format("BPE ({} ids, {} added tokens); normalizer {}; pre-tokenizer {}; post-processor {}",
                     impl_->limit, impl_->added.size(), impl_->normalizer ? impl_->normalizer->name() : "none",
                     impl_->pre_tokenizer ? impl_->pre_tokenizer->name() : "none",
                     impl_->has_post ? impl_->post.name : "none");
}

const std::string& Tokenizer::origin() const { return impl_->origin; }

}  // namespace ropescope::tokenizer
