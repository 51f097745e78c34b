// `ropescope info` end to end: text and --json over the test models, exit codes.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "../io/temp_dir.hpp"

namespace {

struct CommandResult {
  int status;
  std::string out;
};

// `prefix` goes before the binary (e.g. "timeout 20").
CommandResult run(const std::string& args, const std::string& prefix = "") {
  const std::string command = prefix + " " + std::string(ROPESCOPE_BINARY) + " " + args + " 2>&1";
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

// Issue 12 case 10: `info` on a model whose config.json or weights file is a
// FIFO hung in open(); now exit 2 naming the file. `timeout` keeps a
// regression from hanging the suite (exit 124 fails the test).
TEST(CliInfo, FifoInputsAreRefusedNotWaitedOn) {
  ropescope::test::TempDir dir;
  for (const auto& entry : std::filesystem::directory_iterator(model("ec")))
    std::filesystem::copy(entry.path(), dir / entry.path().filename().string());
  for (const std::string name : {"config.json", "model.safetensors"}) {
    std::filesystem::rename(dir / name, dir / (name + ".saved"));
    ASSERT_EQ(::mkfifo((dir / name).c_str(), 0600), 0);
    const CommandResult r = run("info " + dir.path().string(), "timeout 20");
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_NE(r.out.find((dir / name).string() + " is a FIFO, not a regular file"), std::string::npos) << r.out;
    std::filesystem::remove(dir / name);
    std::filesystem::rename(dir / (name + ".saved"), dir / name);
  }
}
