// Text input end to end: `ropescope tokenize` (ids, sidecar, summary,
// --no-special, invalid UTF-8), and --text on ppl (bits per byte from the
// bytes of the scored tokens: a byte-identity tokenizer must give exactly the
// numbers of --bytes), profile (the same) and attn (token text in the
// manifest); ids beyond the model's embedding rows refused before any forward pass.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../common/run_command.hpp"
#include "io/npy.hpp"
#include "tokenizer/pipeline.hpp"

using ropescope::testing::lines_of;
using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kSource = ROPESCOPE_SOURCE_DIR;
const std::string kFixtures = kSource + "/tests/data/tokenizers/";
const std::string kModels = kSource + "/tests/data/models/";

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

nlohmann::json jsonl_line(const std::string& path, std::size_t index) {
  return nlohmann::json::parse(lines_of(read_text(path)).at(index));
}

// A byte-level tokenizer whose id is the byte (no merges): the models' byte vocabulary.
std::string byte_identity_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ropescope::tokenizer::byte_level_char(static_cast<unsigned char>(b))] = b;
  nlohmann::json j = {{"version", "1.0"},
                      {"added_tokens", nlohmann::json::array()},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                                         {"use_regex", false}}},
                      {"decoder", {{"type", "ByteLevel"}}},
                      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return j.dump();
}

}  // namespace

TEST(CliTokenize, IdsSidecarAndSummary) {
  TempDir dir;
  const std::size_t index = 26;  // "<|begin_of_text|>Hello<|eot_id|>" in texts.jsonl
  const std::string text = jsonl_line(kFixtures + "texts.jsonl", index).get<std::string>();
  const auto expected = jsonl_line(kFixtures + "llama3_like/expected.jsonl", index);
  write_file(dir / "in.txt", text);
  auto r = run_ropescope("tokenize " + kFixtures + "llama3_like --text " + (dir / "in.txt").string() + " --out " +
                         (dir / "ids.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(std::to_string(text.size()) + " bytes -> "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bytes/token"), std::string::npos) << r.err;
  auto ids = ropescope::io::read_npy_integers(dir / "ids.npy");
  EXPECT_EQ(ids.dtype, "<i4");
  std::vector<std::int64_t> want;
  for (auto id : expected["ids"]) want.push_back(id.get<std::int64_t>());
  EXPECT_EQ(ids.values, want);
  auto sidecar = nlohmann::json::parse(read_text(dir / "ids.npy.json"));
  EXPECT_EQ(sidecar["tokens"], want.size());
  EXPECT_EQ(sidecar["add_special_tokens"], true);
  EXPECT_EQ(sidecar["text"]["text_bytes"], text.size());

  r = run_ropescope("tokenize " + kFixtures + "llama3_like/tokenizer.json --no-special -q --text " +
                    (dir / "in.txt").string() + " --out " + (dir / "plain.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  want.clear();
  for (auto id : expected["ids_no_special"]) want.push_back(id.get<std::int64_t>());
  EXPECT_EQ(ropescope::io::read_npy_integers(dir / "plain.npy").values, want);
}

TEST(CliTokenize, InvalidUtf8) {
  TempDir dir;
  write_file(dir / "bad.txt", "caf\xC3\xA9 \xFF ok");
  auto r = run_ropescope("tokenize " + kFixtures + "qwen2_like --text " + (dir / "bad.txt").string() + " --out " +
                         (dir / "ids.npy").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not valid UTF-8 at byte offset 6"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "ids.npy"));
  r = run_ropescope("tokenize " + kFixtures + "qwen2_like --replace-invalid --text " + (dir / "bad.txt").string() +
                    " --out " + (dir / "ids.npy").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("replaced 1 invalid UTF-8 sequence"), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(read_text(dir / "ids.npy.json"))["text"]["invalid_utf8_replaced"], 1);
}

TEST(CliTokenize, TokenizerModelOnlyDirectory) {
  TempDir dir;
  write_file(dir / "tokenizer.model", "IQ== 0\nIg== 1\n");
  write_file(dir / "in.txt", "hi");
  auto r = run_ropescope("tokenize " + dir.path.string() + " --text " + (dir / "in.txt").string() + " --out " +
                         (dir / "ids.npy").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("tiktoken BPE ranks"), std::string::npos) << r.err;
}

TEST(CliTextInput, PplBitsPerByteEqualBytesInput) {
  TempDir dir;
  std::string text;
  for (int i = 0; text.size() < 500; ++i) text += "Rotary position " + std::to_string(i * 37 % 101) + " — ü. ";
  write_file(dir / "in.txt", text);
  write_file(dir / "bytes.json", byte_identity_tokenizer());
  auto bytes = run_ropescope("ppl " + kModels + "rope --tokens " + (dir / "in.txt").string() +
                             " --bytes --lengths 64 --device cpu --quiet --out " + (dir / "a").string());
  ASSERT_EQ(bytes.exit_code, 0) << bytes.err;
  auto via_text = run_ropescope("ppl " + kModels + "rope --text " + (dir / "in.txt").string() + " --tokenizer " +
                                (dir / "bytes.json").string() + " --lengths 64 --device cpu --quiet --out " +
                                (dir / "b").string());
  ASSERT_EQ(via_text.exit_code, 0) << via_text.err;
  const auto a = lines_of(read_text(dir / "a.csv")), b = lines_of(read_text(dir / "b.csv"));
  ASSERT_EQ(a.size(), 2u);
  // Same tokens, same scored bytes: identical rows; bits_per_byte equal up to rounding order.
  auto fields = [](const std::string& line) {
    std::vector<std::string> out;
    std::stringstream s(line);
    for (std::string f; std::getline(s, f, ',');) out.push_back(f);
    return out;
  };
  auto fa = fields(a[1]), fb = fields(b[1]);
  ASSERT_EQ(fa.size(), fb.size());
  for (std::size_t i = 0; i < fa.size(); ++i)
    if (i == 7)
      EXPECT_NEAR(std::stod(fa[i]), std::stod(fb[i]), 1e-12 * std::stod(fa[i]));
    else
      EXPECT_EQ(fa[i], fb[i]) << "column " << i;
  auto sidecar = nlohmann::json::parse(read_text(dir / "b.csv.json"));
  EXPECT_EQ(sidecar["tokens"]["text_bytes"], text.size());
}

TEST(CliTextInput, IdsBeyondEmbeddingRowsRefusedBeforeForward) {
  TempDir dir;
  write_file(dir / "in.txt", "The translation of this sentence, with words the tokenizer merged.");
  auto r = run_ropescope("ppl " + kModels + "rope --text " + (dir / "in.txt").string() + " --tokenizer " + kFixtures +
                         "llama3_like --lengths 8 --device cpu --quiet --out " + (dir / "p").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("beyond the model's 256 embedding rows"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "p.csv"));
  r = run_ropescope("ppl " + kModels + "rope --tokens x.npy --text " + (dir / "in.txt").string() +
                    " --lengths 8 --out " + (dir / "p").string());
  EXPECT_EQ(r.exit_code, 2);
}

TEST(CliTextInput, AttnManifestLabelsPositions) {
  TempDir dir;
  write_file(dir / "in.txt", "attention é maps\nwith labels");
  write_file(dir / "bytes.json", byte_identity_tokenizer());
  auto r = run_ropescope("attn " + kModels + "rope --text " + (dir / "in.txt").string() + " --tokenizer " +
                         (dir / "bytes.json").string() + " --layers 0 --heads 0 --start 8 --length 6 --device cpu "
                         "--quiet --out " + (dir / "maps").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto manifest = nlohmann::json::parse(read_text(dir / "maps/manifest.json"));
  ASSERT_TRUE(manifest.contains("token_text")) << manifest.dump();
  EXPECT_EQ(manifest["token_text"]["first_position"], 8);
  // Positions 8..13 are the bytes "n \xC3\xA9 m": the two halves of é show as U+FFFD.
  EXPECT_EQ(manifest["token_text"]["text"],
            (nlohmann::json{"n", " ", "\xEF\xBF\xBD", "\xEF\xBF\xBD", " ", "m"}));
  EXPECT_EQ(manifest["token_text"]["ids"][2], 0xC3);
  // `plot attn` puts that text on the axes.
  r = run_ropescope("plot attn " + (dir / "maps").string() + " --out " + (dir / "maps.svg").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string svg = read_text(dir / "maps.svg");
  EXPECT_NE(svg.find(">m</text>"), std::string::npos) << "no tick labelled with the token text \"m\"";
  EXPECT_NE(svg.find(">n</text>"), std::string::npos) << "no tick labelled with the token text \"n\"";
}

TEST(CliTextInput, ProfileSameAsBytesInput) {
  TempDir dir;
  std::string text;
  for (int i = 0; text.size() < 300; ++i) text += "distance " + std::to_string(i) + " profile. ";
  write_file(dir / "in.txt", text);
  write_file(dir / "bytes.json", byte_identity_tokenizer());
  const std::string common = " --window 64 --exact-limit 16 --device cpu --quiet --out ";
  auto a = run_ropescope("profile " + kModels + "ec --tokens " + (dir / "in.txt").string() + " --bytes" + common +
                         (dir / "a").string());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = run_ropescope("profile " + kModels + "ec --text " + (dir / "in.txt").string() + " --tokenizer " +
                         (dir / "bytes.json").string() + common + (dir / "b").string());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(read_text(dir / "a.csv"), read_text(dir / "b.csv"));
}
