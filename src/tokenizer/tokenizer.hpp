// HF `tokenizers` tokenizer.json in C++: loads the file and encodes text to
// exactly the ids of `tokenizers.Tokenizer.from_file(path).encode(text)`.
// Supported (everything else is refused at load, naming its JSON path):
//   added tokens (special and not; lstrip, rstrip, single_word, normalized),
//   normalizers NFC, Prepend, Replace, Sequence;
//   pre-tokenizers Split (all behaviours, invert), ByteLevel, Metaspace, Digits, Sequence;
//   model BPE (ignore_merges, byte_fallback, unk / fuse_unk, prefix / suffix,
//   both merge formats); post-processors TemplateProcessing, ByteLevel, Sequence;
//   decoders ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence (display only).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ropescope::tokenizer {

struct Encoding {
  std::vector<std::uint32_t> ids;
  // Bytes of the input text each token stands for; they partition the text
  // (their sum is its length) and tokens added by the post-processor count 0.
  // Exact per token for byte-level models whose normalizer leaves the text
  // unchanged; otherwise exact per stretch between added tokens, shared out
  // within it by each token's decoded length.
  std::vector<std::uint32_t> bytes;
};

class Tokenizer {
 public:
  // Per-thread memo of BPE results for repeated words (performance only).
  class Cache;

  // `path` is a tokenizer.json or a directory holding one. A directory with
  // only a tokenizer.model is refused with what that file is and how to get a
  // tokenizer.json. Malformed or unsupported content: FormatError with the JSON path.
  static Tokenizer load(const std::filesystem::path& path);
  // The same from the JSON text itself (`origin` names it in messages).
  static Tokenizer from_json(std::string_view json, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Throws ArgumentError naming the byte offset if `text` is not valid UTF-8.
  std::vector<std::uint32_t> encode(std::string_view text, bool add_special_tokens = true, Cache* cache = nullptr) const;
  Encoding encode_with_bytes(std::string_view text, bool add_special_tokens = true, Cache* cache = nullptr) const;

  // The bytes one token stands for, for labels and byte counts: an added
  // token's content, else the token through the decoder without Strip, each
  // Metaspace replacement a space, byte tokens as raw bytes (possibly part of
  // a character, so not always UTF-8).
  std::string token_text(std::uint32_t id) const;
  // HF's Tokenizer.decode(ids, skip_special_tokens=False): the decoder chain
  // over the tokens' strings (joined by spaces without a decoder).
  std::string decode(const std::vector<std::uint32_t>& ids) const;

  // One more than the largest id the tokenizer can produce.
  std::uint32_t id_limit() const;
  // A one-line description of the pipeline, e.g. "BPE (128000 + 256 added), Sequence[Split, ByteLevel], ...".
  std::string describe() const;
  const std::string& origin() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Tokenizer::Cache {
 public:
  Cache();
  ~Cache();
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  struct Map;
  std::unique_ptr<Map> map;
};

// The tokenizer.json for `path` (itself when a file). For a directory without
// one, throws ArgumentError; if it holds a tokenizer.model, the message says
// whether that is a SentencePiece protobuf or tiktoken ranks and how to get a tokenizer.json.
std::filesystem::path find_tokenizer_json(const std::filesystem::path& path);

}  // namespace ropescope::tokenizer
