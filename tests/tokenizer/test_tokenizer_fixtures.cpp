// The tokenizer against HF tokenizers: every fixture of tests/data/tokenizers
// (one trained tokenizer.json per model family's shape, written by
// tests/tokenizer/make_fixtures.py) encodes every test text to the committed
// ids, and decodes the edge cases' ids to HF's decode.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tokenizer/tokenizer.hpp"

using ropescope::tokenizer::Tokenizer;

namespace {

const std::filesystem::path kFixtures = std::filesystem::path(ROPESCOPE_SOURCE_DIR) / "tests/data/tokenizers";

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::size_t plain_count(const Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.encode(text, false).size();
}

class Fixture : public testing::TestWithParam<std::string> {};

TEST_P(Fixture, SameIdsAsHfTokenizers) {
  const auto dir = kFixtures / GetParam();
  const Tokenizer tokenizer = Tokenizer::load(dir);
  const auto texts = read_jsonl(kFixtures / "texts.jsonl");
  const auto expected = read_jsonl(dir / "expected.jsonl");
  ASSERT_EQ(texts.size(), expected.size());
  Tokenizer::Cache cache;
  int mismatches = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    auto ids = tokenizer.encode(text, true, &cache);
    auto want = expected[i]["ids"].get<std::vector<std::uint32_t>>();
    if (ids != want) {
      // Debian's Oniguruma / utf8proc know Unicode 14 / 15, HF tokenizers 0.23.3 Unicode 16:
      // a text with code points assigned after 14 may split differently. Reported, not failed.
      if (expected[i].contains("unicode_newer_than_14")) {
        std::cout << "[ NOTE ] " << GetParam() << " text " << i << " differs; code points newer than Unicode 14: "
                  << expected[i]["unicode_newer_than_14"].dump() << "\n";
        continue;
      }
      if (++mismatches <= 5) ADD_FAILURE() << "text " << i << ": " << nlohmann::json(text).dump();
    }
    if (expected[i].contains("decoded")) {
      EXPECT_EQ(tokenizer.decode(want), expected[i]["decoded"].get<std::string>()) << "decode of text " << i;
    }
    if (expected[i].contains("ids_no_special") && !expected[i].contains("unicode_newer_than_14")) {
      auto plain = tokenizer.encode(text, false);
      EXPECT_EQ(plain, expected[i]["ids_no_special"].get<std::vector<std::uint32_t>>()) << "text " << i;
    }
    // The bytes of an encoding partition the text.
    auto with_bytes = tokenizer.encode_with_bytes(text);
    EXPECT_EQ(with_bytes.ids, ids);
    std::size_t total = 0;
    for (auto b : with_bytes.bytes) total += b;
    if (plain_count(tokenizer, text) > 0) {
      EXPECT_EQ(total, text.size()) << "text " << i;
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts.size() << " texts";

  // One tokenizer shared by threads (each with its own cache) gives the same ids.
  std::vector<std::vector<std::vector<std::uint32_t>>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& result : per_thread)
    threads.emplace_back([&tokenizer, &texts, &result] {
      Tokenizer::Cache own;
      for (const auto& t : texts) result.push_back(tokenizer.encode(t.get<std::string>(), true, &own));
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < texts.size(); ++i)
    for (const auto& result : per_thread) EXPECT_EQ(result[i], tokenizer.encode(texts[i].get<std::string>())) << i;
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Fixture,
                         testing::Values("llama3_like", "qwen2_like", "olmo2_like", "neox_like", "starcoder2_like",
                                         "llama2_like", "phi3_like", "mistral_v03_like", "metaspace_always_like",
                                         "gemma_like", "affixes_like"));

}  // namespace
