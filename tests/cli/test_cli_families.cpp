// The analysis commands on every architecture family's fixture
// (tests/data/arch, checked against transformers by test_architectures):
// ppl, profile and attn run and record the family in their sidecars; a
// checkpoint's warnings are printed and recorded; what is not modelled
// (RoPE++ on a non-Llama family, virtual imaginary scores of a NoPE layer, an
// unsupported family) is refused with the exit code and a message that names
// it, and nothing is written. All runs pin --device cpu.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "../common/run_command.hpp"

using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kArch = std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/arch/";

// n random token ids below 64 (every fixture's vocabulary) as a raw uint32 file.
std::string token_file(const TempDir& dir, int n) {
  std::mt19937 rng(7);
  std::vector<std::uint32_t> ids(n);
  for (auto& x : ids) x = rng() % 64;
  const auto path = dir / "tokens.u32";
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  return path.string();
}

nlohmann::json read_json(const std::filesystem::path& path) { return nlohmann::json::parse(read_text(path)); }

class EveryFamily : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryFamily, PplProfileAndAttnRun) {
  const std::string name = GetParam();
  TempDir dir;
  const std::string tokens = token_file(dir, 96);
  const std::string common = kArch + name + " --tokens " + tokens + " --device cpu --quiet ";
  // Noise on the real queries, ablation and a RoPE override: one condition each.
  auto r = run_ropescope("ppl " + common + "--lengths 16,32 --curve 32 --noise-real 0.5 --ablate real "
                         "--scaling type=linear,factor=2 --out " + (dir / "p").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto sidecar = read_json(dir / "p.csv.json");
  const std::string family = read_json(kArch + name + "/case.json")["family"];
  EXPECT_EQ(sidecar["model"]["family"], family == "gemma3" ? "gemma3_text" : family);  // the multimodal file's text part
  EXPECT_TRUE(sidecar["model"]["architecture"].contains("layers"));
  EXPECT_TRUE(sidecar["warnings"].is_array());

  r = run_ropescope("profile " + common + "--window 32 --exact-limit 8 --out " + (dir / "pr").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_ropescope("attn " + common + "--start 4 --length 8 --out " + (dir / "maps").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Virtual imaginary scores of a layer with RoPE (layer 0 rotates in every fixture).
  r = run_ropescope("attn " + common + "--layers 0 --virtual-imaginary --start 4 --length 8 --out " +
                    (dir / "virtual").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Families, EveryFamily,
                         ::testing::Values("qwen2", "qwen3", "granite", "smollm3", "gemma2", "gemma3_mm", "phi3",
                                           "olmo3", "gpt_neox_parallel", "stablelm", "starcoder2", "cohere2", "glm4"),
                         [](const auto& info) { return info.param; });

TEST(Families, ProfileOfAWindowedLayerEndsAtTheWindow) {
  TempDir dir;
  const std::string tokens = token_file(dir, 64);
  auto r = run_ropescope("profile " + kArch + "gemma2 --tokens " + tokens + " --device cpu --quiet --window 32 " +
                         "--exact-limit 32 --beyond 7,8 --out " + (dir / "pr").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = read_json(dir / "pr_summary.json");
  int windowed = 0;
  for (const auto& head : summary["heads"]) {
    if (head["layer"] != 0) continue;  // layer 0 slides over 8 keys, layer 1 is full
    ++windowed;
    EXPECT_GT(head["mass_beyond"]["7"].get<double>(), 0.0) << head.dump();
    EXPECT_EQ(head["mass_beyond"]["8"].get<double>(), 0.0) << head.dump();
  }
  EXPECT_GT(windowed, 0);
}

TEST(Families, WarningsArePrintedAndRecorded) {
  TempDir dir;
  const std::string tokens = token_file(dir, 40);
  auto r = run_ropescope("ppl " + kArch + "gemma3_mm --tokens " + tokens + " --device cpu --lengths 16 --out " +
                         (dir / "p").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ropescope: warning: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tensors under \"vision_tower.\" (not the language model) are not read"), std::string::npos)
      << r.err;
  const auto warnings = read_json(dir / "p.csv.json")["warnings"];
  ASSERT_EQ(warnings.size(), 2u) << warnings.dump();
  r = run_ropescope("ppl " + kArch + "gemma3_mm --tokens " + tokens + " --device cpu --quiet --lengths 16 --out " +
                    (dir / "q").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(read_json(dir / "q.csv.json")["warnings"].size(), 2u);
  // A figure's default legend names the family from the sidecar.
  r = run_ropescope("plot ppl " + (dir / "q.csv").string() + " --out " + (dir / "q.svg").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(read_text(dir / "q.svg").find("gemma3_mm (gemma3_text, rope)"), std::string::npos);
}

TEST(Families, WhatIsNotModelledIsRefused) {
  TempDir dir;
  const std::string tokens = token_file(dir, 40);
  // RoPE++ on a family without RoPE++ weights.
  auto r = run_ropescope("ppl " + kArch + "qwen3 --tokens " + tokens + " --device cpu --variant ec --lengths 16 --out " +
                         (dir / "p").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("variant ec needs RoPE++ weights; a qwen3 checkpoint is vanilla RoPE"), std::string::npos) << r.err;
  // Virtual imaginary scores of a NoPE layer (SmolLM3's layer 3).
  r = run_ropescope("attn " + kArch + "smollm3 --tokens " + tokens + " --device cpu --layers 2,3 --virtual-imaginary " +
                    "--out " + (dir / "maps").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("layer 3 of this smollm3 model is NoPE"), std::string::npos) << r.err;
  r = run_ropescope("attn " + kArch + "smollm3 --tokens " + tokens + " --device cpu --quiet --layers 2 " +
                    "--virtual-imaginary --out " + (dir / "maps").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // A family that is not modelled: exit 1, nothing written.
  r = run_ropescope("ppl " + kArch + "refuse_qwen3_moe --tokens " + tokens + " --device cpu --lengths 16 --out " +
                    (dir / "moe").string());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("model_type \"qwen3_moe\" is not supported (mixture-of-experts MLPs are not modelled)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "moe.csv"));
}

TEST(Families, InfoListsTheFeatures) {
  auto r = run_ropescope("info " + kArch + "gemma2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* line : {"family            gemma2", "block: sandwich norms", "attention softcap 2",
                           "sliding window 8 on layers 0", "final logit softcap 3", "norms             rmsnorm (1+w)"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  r = run_ropescope("info --json " + kArch + "cohere2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["family"], "cohere2");
  EXPECT_EQ(j["architecture"]["layers"][3]["rope"], "none");  // the full-attention layer is NoPE
  EXPECT_EQ(j["architecture"]["interleaved_rotary"], true);
}

}  // namespace
