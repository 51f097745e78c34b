// `ropescope info` end to end: text and --json over the test models, exit codes.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../io/temp_dir.hpp"

namespace {

struct CommandResult {
  int status;
  std::string out;
};

CommandResult run(const std::string& args) {
  const std::string command = std::string(ROPESCOPE_BINARY) + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  std::array<char, 4096> buffer;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe)) out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  return {WEXITSTATUS(status), out};
}

std::string model(const std::string& name) { return (ropescope::test::source_dir() / "tests/data/models" / name).string(); }

}  // namespace

TEST(CliInfo, TextForEc) {
  const CommandResult r = run("info " + model("ec"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("variant           ec (RoPE++ equal cache, imag2) [from rope_config]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("attention heads   8: 4 real + 4 imaginary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV heads          2 (GQA group: 4 attention heads per KV head)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV cache          256 bytes per token"), std::string::npos) << r.out;
}

TEST(CliInfo, JsonForEhTied) {
  const CommandResult r = run("info --json " + model("eh_tied"));
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["variant"], "eh");
  EXPECT_EQ(j["variant_source"], "tensor shapes");
  EXPECT_EQ(j["query_heads"], 2);
  EXPECT_EQ(j["kv_heads"], 1);
  EXPECT_EQ(j["attention_heads"]["imaginary"], 2);
  EXPECT_EQ(j["gqa_group_size"], 4);
  EXPECT_EQ(j["heads"][3]["kind"], "imaginary");
  EXPECT_EQ(j["heads"][3]["query_head"], 1);
  EXPECT_EQ(j["dtype"], "F16");
  EXPECT_EQ(j["kv_cache_bytes_per_token"], 2 * 2 * 1 * 16 * 2);
  EXPECT_EQ(j["parameters"]["lm_head"], 0);
  EXPECT_EQ(j["rope"]["base"], 10000.0);
  EXPECT_EQ(j["rope"]["scaling"]["type"], "none");
  EXPECT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["run"]["command"], "info");
}

TEST(CliInfo, ErrorsAndExitCodes) {
  CommandResult r = run("info --variant eh " + model("ec"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("contradictory RoPE variant"), std::string::npos) << r.out;
  r = run("info --variant xx " + model("ec"));
  EXPECT_EQ(r.status, 2) << r.out;
  r = run("info /nonexistent/dir");
  EXPECT_EQ(r.status, 2) << r.out;
  ropescope::test::TempDir dir;
  ropescope::test::write_file(dir / "config.json", "{\"model_type\": \"llama\", \"hidden_size\": 1}");
  r = run("info " + dir.path().string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("\"vocab_size\" is missing"), std::string::npos) << r.out;
  ropescope::test::write_file(dir / "config.json", "{\"hidden_size\": 1}");
  r = run("info " + dir.path().string());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("\"model_type\" is missing; supported families: llama, mistral"), std::string::npos) << r.out;
}
