// Bad input for the tokenizer: invalid UTF-8 refused with its byte offset or
// replaced as Python's errors="replace"; malformed or unsupported
// tokenizer.json refused with the JSON path; a directory with only a
// tokenizer.model refused with what that file is.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "../common/run_command.hpp"
#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/utf8.hpp"

using namespace ropescope;
using ropescope::testing::TempDir;
using tokenizer::Tokenizer;

namespace {

// A minimal valid tokenizer.json to break one part of at a time.
nlohmann::json minimal() {
  return nlohmann::json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 3, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
                      "normalized": false, "special": true}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": true},
    "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2},
              "merges": ["a b"]}})");
}

// Expects from_json to throw FormatError whose message contains `part`.
void expect_refused(const nlohmann::json& j, const std::string& part) {
  try {
    Tokenizer::from_json(j.dump(), "t.json");
    ADD_FAILURE() << "accepted: " << part;
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(TokenizerErrors, MinimalLoadsAndEncodes) {
  auto t = Tokenizer::from_json(minimal().dump(), "t.json");
  EXPECT_EQ(t.encode("ab<s>ab"), (std::vector<std::uint32_t>{2, 3, 2}));
  EXPECT_EQ(t.id_limit(), 4u);
}

TEST(TokenizerErrors, UnsupportedComponentsNamedByPath) {
  auto j = minimal();
  j["model"]["type"] = "Unigram";
  expect_refused(j, "t.json: $.model.type: model \"Unigram\" is not supported");
  j = minimal();
  j["normalizer"]["normalizers"].push_back({{"type", "Lowercase"}});
  expect_refused(j, "$.normalizer.normalizers[1].type: normalizer \"Lowercase\" is not supported");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Whitespace"}}}}};
  expect_refused(j, "$.pre_tokenizer.pretokenizers[0].type: pre-tokenizer \"Whitespace\" is not supported");
  j = minimal();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_refused(j, "$.post_processor.type: post-processor \"RobertaProcessing\" is not supported");
  j = minimal();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_refused(j, "$.decoder.type: decoder \"WordPiece\" is not supported");
  j = minimal();
  j["truncation"] = {{"max_length", 8}};
  expect_refused(j, "$.truncation: truncation is not supported");
  j = minimal();
  j["model"]["dropout"] = 0.1;
  expect_refused(j, "$.model.dropout");
}

TEST(TokenizerErrors, MalformedPartsNamedByPath) {
  auto j = minimal();
  j["model"]["merges"] = {"a c"};
  expect_refused(j, "$.model.merges[0]: 'c' is not in the vocabulary");
  j = minimal();
  j["model"]["merges"] = {"a b c"};
  expect_refused(j, "$.model.merges[0]: a merge string must be two tokens");
  j = minimal();
  j["added_tokens"][0]["id"] = 7;
  expect_refused(j, "$.added_tokens[0].id: token \"<s>\" is declared with id 7 but HF tokenizers gives it id 3");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(a"}}}, {"behavior", "Isolated"}, {"invert", false}};
  expect_refused(j, "$.pre_tokenizer.pattern: regex '(a' rejected by Oniguruma");
  j = minimal();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}, {"invert", false}};
  expect_refused(j, "$.pre_tokenizer.behavior: unknown split behavior \"Sideways\"");
  j = minimal();
  j["model"]["vocab"]["c"] = 1;
  expect_refused(j, "$.model.vocab: id 1 is given to two tokens");
  expect_refused(nlohmann::json::array(), "t.json: $: expected an object");
  try {
    Tokenizer::from_json("{\"model\": ", "t.json");
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("t.json: not valid JSON"), std::string::npos);
  }
}

TEST(TokenizerErrors, InvalidUtf8RefusedWithOffset) {
  auto t = Tokenizer::from_json(minimal().dump(), "t.json");
  try {
    t.encode("ab\xC3(ab");
    ADD_FAILURE();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.encode("\xED\xA0\x80"), ArgumentError);  // a surrogate
  EXPECT_THROW(t.encode("\xC0\xAF"), ArgumentError);      // overlong
  EXPECT_THROW(t.encode("\xF4\x90\x80\x80"), ArgumentError);  // above U+10FFFF
}

TEST(TokenizerErrors, ReplacementAsPythonErrorsReplace) {
  // Expected strings from Python: bytes.decode("utf-8", errors="replace").
  const std::string fffd = "\xEF\xBF\xBD";
  struct Case {
    std::string in, out;
    std::size_t count;
  };
  const Case cases[] = {{"a\xFF" "b", "a" + fffd + "b", 1},
                        {"\xE2\x82", fffd, 1},
                        {"\xF0\x9F\x98" "x", fffd + "x", 1},
                        {"\xED\xA0\x80", fffd + fffd + fffd, 3},
                        {"\xC0\xAF", fffd + fffd, 2},
                        {"\xE0\x80\x80", fffd + fffd + fffd, 3},
                        {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd, 4},
                        {"ok \xC3\xA9", "ok \xC3\xA9", 0}};
  for (const auto& c : cases) {
    std::size_t count = 0;
    EXPECT_EQ(tokenizer::replace_invalid_utf8(c.in, count), c.out);
    EXPECT_EQ(count, c.count);
  }
}

TEST(TokenizerErrors, TokenizerModelOnlyIsNamed) {
  TempDir dir;
  std::ofstream(dir / "tokenizer.model", std::ios::binary) << std::string("\x0a\x0b\x0a\x05<unk>\x15\x00\x00\x00\x00", 15);
  try {
    Tokenizer::load(dir.path);
    ADD_FAILURE();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("SentencePiece model (protobuf)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos);
  }
  std::ofstream(dir / "tokenizer.model", std::ios::binary) << "IQ== 0\nIg== 1\nIw== 2\n";
  try {
    Tokenizer::load(dir.path);
    ADD_FAILURE();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("tiktoken BPE ranks"), std::string::npos) << e.what();
  }
  try {
    Tokenizer::load(dir / "tokenizer.model");  // the file itself
    ADD_FAILURE();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("tiktoken BPE ranks"), std::string::npos) << e.what();
  }
}
