// The steps around the BPE model: normalizers, pre-tokenizers, the
// post-processor and the decoder of a tokenizer.json, each built from its JSON
// (unsupported types and values refused with the JSON path) and applied as
// tokenizers/src/{normalizers,pre_tokenizers,processors,decoders} do.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.hpp"

namespace ropescope::tokenizer {

// `where`: a JSON path such as "tokenizer.json: $.pre_tokenizer.pretrainers[1]".
[[noreturn]] void refuse(const std::string& where, const std::string& what);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& text) const = 0;
  virtual std::string name() const = 0;
};
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& json, const std::string& where);

// A piece of text between pre-tokenizer splits. `at_origin`: it begins at
// offset 0 of the original input (Metaspace's prepend_scheme "first").
struct Piece {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by the result of this step on each of them; empty pieces are dropped.
  virtual void apply(std::vector<Piece>& pieces) const = 0;
  virtual std::string name() const = 0;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& json, const std::string& where);

// TemplateProcessing (single sequence), ByteLevel (offsets only), Sequence:
// the ids placed before and after the encoded text when add_special_tokens is set.
struct PostProcessor {
  std::vector<std::uint32_t> before, after;
  std::string name;
};
PostProcessor make_post_processor(const nlohmann::json& json, const std::string& where);

// The decoder chain, applied to token strings.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // `tokens` in, decoded pieces out. `exact`: HF's decode_chain. Otherwise the
  // bytes each token stands for: no Strip, every Metaspace replacement a space,
  // byte tokens and byte-level characters kept as raw bytes (maybe part of a character).
  virtual void apply(std::vector<std::string>& tokens, bool exact) const = 0;
  virtual std::string name() const = 0;
};
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& json, const std::string& where);

// The GPT-2 byte-to-character table of ByteLevel (UTF-8 of each byte's character).
const std::string& byte_level_char(unsigned char byte);

}  // namespace ropescope::tokenizer
