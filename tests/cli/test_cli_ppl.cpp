// `ropescope ppl` end to end on the tiny checkpoints: the CSV, curve CSV and
// curve .npy with their JSON sidecars; conditions that must equal the clean
// model do; token files of every kind give the same perplexity; bad arguments
// exit 2 naming the argument; failed runs leave no output behind.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../common/run_command.hpp"
#include "io/npy.hpp"

using ropescope::testing::lines_of;
using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kModels = std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/models/";

// Splits a CSV line whose first field is quoted (and holds commas) from the rest.
std::pair<std::string, std::vector<std::string>> split_row(const std::string& line) {
  const auto close = line.find("\",", 1);
  std::vector<std::string> rest;
  std::stringstream s(line.substr(close + 2));
  std::string field;
  while (std::getline(s, field, ',')) rest.push_back(field);
  if (!line.empty() && line.back() == ',') rest.push_back("");
  return {line.substr(1, close - 1), rest};
}

// Deterministic text-like bytes: a repeated sentence with a counter, so it has some structure.
std::string text_bytes(int n) {
  std::string s;
  for (int i = 0; static_cast<int>(s.size()) < n; ++i) s += "the rotary position " + std::to_string(i * 37 % 101) + ". ";
  return s.substr(0, n);
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path().filename());
  return files;
}

TEST(CliPpl, EndToEndWithConditions) {
  TempDir dir;
  write_file(dir / "text.bin", text_bytes(600));
  const auto prefix = dir / "run";
  auto r = run_ropescope("ppl " + kModels + "ec --tokens " + (dir / "text.bin").string() +
                         " --bytes --lengths 32,64,300 --curve 64 --noise-imag 0,0.3 --ablate real "
                         "--scaling type=linear,factor=1 --scaling type=yarn,factor=4,label=yarn4 --quiet --out " +
                         prefix.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;  // --quiet
  EXPECT_NE(r.out.find("noise_imag_std=0.3"), std::string::npos) << r.out;
  for (const char* f : {"run.csv", "run.csv.json", "run_curve.csv", "run_curve.csv.json", "run_curve.npy",
                        "run_curve.npy.json"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  EXPECT_EQ(files_in(dir.path).size(), 7u);  // the six outputs and the token file: no temporaries left

  auto lines = lines_of(read_text(dir / "run.csv"));
  ASSERT_EQ(lines.size(), 1u + 6 * 3);
  EXPECT_EQ(lines[0], "condition,L,stride,windows,tokens_scored,mean_nll,ppl,bits_per_byte,beyond_training,curve_ppl");
  std::map<std::string, std::vector<std::vector<std::string>>> rows;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto [name, fields] = split_row(lines[i]);
    ASSERT_EQ(fields.size(), 9u) << lines[i];
    rows[name].push_back(fields);
  }
  ASSERT_EQ(rows.size(), 6u);
  for (const char* name : {"clean", "noise_imag_std=0", "noise_imag_std=0.3", "ablate_real", "type=linear,factor=1", "yarn4"})
    ASSERT_EQ(rows[name].size(), 3u) << name;
  const auto& clean = rows["clean"];
  // L = 32: default stride 16, every byte but the first scored, bits per byte = mean_nll / ln 2.
  EXPECT_EQ(clean[0][0], "32");
  EXPECT_EQ(clean[0][1], "16");
  EXPECT_EQ(clean[0][3], "599");
  EXPECT_NEAR(std::stod(clean[0][6]), std::stod(clean[0][4]) / std::log(2.0), 1e-12);
  EXPECT_NEAR(std::stod(clean[0][5]), std::exp(std::stod(clean[0][4])), 1e-9 * std::stod(clean[0][5]));
  EXPECT_EQ(clean[0][7], "false");
  EXPECT_EQ(clean[2][7], "true");  // 300 > max_position_embeddings 256
  EXPECT_FALSE(clean[1][8].empty());  // curve_ppl for L = 64 <= T
  EXPECT_TRUE(clean[2][8].empty());   // none for L = 300 > T
  EXPECT_EQ(rows["noise_imag_std=0"], clean);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(std::stod(rows["type=linear,factor=1"][i][4]), std::stod(clean[i][4]), 1e-12);
    EXPECT_NE(rows["ablate_real"][i][4], clean[i][4]);
    EXPECT_NE(rows["noise_imag_std=0.3"][i][4], clean[i][4]);
  }

  // Curve: 63 positions + 6 log bins per condition; the .npy holds [6, 63] float64.
  auto curve = lines_of(read_text(dir / "run_curve.csv"));
  ASSERT_EQ(curve.size(), 1u + 6 * (63 + 6));
  EXPECT_EQ(curve[0], "condition,kind,position,position_end,mean_nll,count");
  EXPECT_EQ(curve[1].rfind("\"clean\",position,1,2,", 0), 0u) << curve[1];
  EXPECT_TRUE(curve[63].ends_with(",9")) << curve[63];  // 600 / 64 = 9 windows
  EXPECT_EQ(curve[64].rfind("\"clean\",log_bin,1,2,", 0), 0u) << curve[64];
  auto npy = read_text(dir / "run_curve.npy");
  EXPECT_NE(npy.find("'descr': '<f8'"), std::string::npos);
  EXPECT_NE(npy.find("'shape': (6, 63)"), std::string::npos);

  auto meta = nlohmann::json::parse(read_text(dir / "run.csv.json"));
  for (const char* key : {"tool_version", "git_commit", "argv", "backend", "precision", "wall_time_s",
                          "perplexity_definition", "conditions", "tokens"})
    EXPECT_TRUE(meta.contains(key)) << key;
  EXPECT_TRUE(meta["model"].contains("config_hash_fnv1a64"));
  EXPECT_EQ(meta["model"]["variant"], "ec");
  EXPECT_EQ(meta["tokens"]["count"], 600);
  EXPECT_EQ(meta["tokens"]["byte_level"], true);
  EXPECT_EQ(meta["training_length"], 256);
  EXPECT_EQ(meta["conditions"].size(), 6u);
  EXPECT_NE(meta["perplexity_definition"].get<std::string>().find("tokens_scored"), std::string::npos);
  auto curve_meta = nlohmann::json::parse(read_text(dir / "run_curve.npy.json"));
  EXPECT_TRUE(curve_meta.contains("curve_definition"));
  EXPECT_EQ(curve_meta["curve"]["windows"], 9);
}

TEST(CliPpl, TokenFilesOfEveryKindGiveTheSamePerplexity) {
  TempDir dir;
  const std::string text = text_bytes(200);
  write_file(dir / "text.bin", text);
  std::vector<std::int32_t> ids(text.begin(), text.end());
  for (auto& id : ids) id = static_cast<unsigned char>(id);
  ropescope::io::write_npy<std::int32_t>(dir / "tokens.npy", ids, {ids.size()});
  std::string u16;
  for (auto id : ids) u16 += static_cast<char>(id & 0xff), u16 += static_cast<char>(id >> 8);
  write_file(dir / "tokens.u16", u16);
  const std::string common = "ppl " + kModels + "rope --lengths 50 --stride 25 --quiet --tokens ";
  std::vector<std::string> mean_nll;
  for (const auto& [input, prefix] : std::vector<std::pair<std::string, std::string>>{
           {(dir / "text.bin").string() + " --bytes", "a"},
           {(dir / "tokens.npy").string(), "b"},
           {(dir / "tokens.u16").string() + " --dtype uint16", "c"},
           {(dir / "tokens.u16").string() + " --format raw --dtype uint16", "d"}}) {
    auto r = run_ropescope(common + input + " --out " + (dir / prefix).string());
    ASSERT_EQ(r.exit_code, 0) << input << ": " << r.err;
    auto row = split_row(lines_of(read_text(dir / (prefix + ".csv"))).at(1)).second;
    mean_nll.push_back(row.at(4));
    EXPECT_EQ(row.at(6).empty(), prefix != "a") << "bits_per_byte only for byte input";
    EXPECT_FALSE(std::filesystem::exists(dir / (prefix + "_curve.csv")));  // no --curve
  }
  for (const auto& m : mean_nll) EXPECT_EQ(m, mean_nll[0]);
}

TEST(CliPpl, BadArgumentsExitTwoNamingTheArgumentAndWriteNothing) {
  TempDir dir;
  write_file(dir / "text.bin", text_bytes(100));
  std::vector<std::int32_t> oov = {1, 2, 3, 300};
  ropescope::io::write_npy<std::int32_t>(dir / "oov.npy", oov, {oov.size()});
  const std::string text = (dir / "text.bin").string(), out = " --out " + (dir / "o").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ec --tokens " + text + " --bytes --lengths 1" + out, "--lengths"},
      {"ec --tokens " + text + " --bytes --lengths 101" + out, "--lengths"},
      {"ec --tokens " + text + " --bytes --lengths 32 --stride 0" + out, "--stride"},
      {"ec --tokens " + text + " --bytes --lengths 32,16 --stride 20" + out, "--stride"},
      {"ec --tokens " + text + " --bytes --lengths 32 --curve 1" + out, "--curve"},
      {"ec --tokens " + text + " --bytes --lengths 32 --curve 200" + out, "--curve"},
      {"ec --tokens " + text + " --bytes --lengths 32 --ablate sideways" + out, "--ablate"},
      {"ec --tokens " + text + " --bytes --lengths 32 --noise-real=-0.5" + out, "--noise-real"},
      {"rope --tokens " + text + " --bytes --lengths 32 --noise-imag 0.1" + out, "--noise-imag"},
      {"rope --tokens " + text + " --bytes --lengths 32 --ablate imaginary" + out, "--ablate"},
      {"ec --tokens " + text + " --bytes --lengths 32 --scaling type=sideways" + out, "sideways"},
      {"ec --tokens " + text + " --bytes --lengths 32 --scaling factor=2" + out, "--scaling"},
      {"ec --tokens " + text + " --bytes --lengths 32 --scaling colour=red" + out, "--scaling"},
      {"ec --tokens " + text + " --bytes --lengths 32 --noise-real 0.1,0.1" + out, "twice"},
      {"ec --tokens " + text + " --bytes --lengths 32 --out " + (dir / "no/such/dir/o").string(), "does not exist"},
      {"ec --tokens " + (dir / "oov.npy").string() + " --lengths 2" + out, "position 3"},
      {"ec --tokens " + (dir / "missing.bin").string() + " --bytes --lengths 2" + out, "missing.bin"},
      {"ec --tokens " + text + " --bytes" + out, "--lengths"},
      {"ec --tokens " + text + " --bytes --lengths 32 --stride-fraction 0" + out, "--stride-fraction"},
      {"ec --tokens " + text + " --bytes --lengths 32 --device cpu --devices 0" + out, "--devices"},
      {"ec --tokens " + text + " --bytes --lengths 32 --devices 0,0" + out, "--devices"},
      // A group over processes: its file, size and rank belong together, and it runs on CUDA ranks.
      {"ec --tokens " + text + " --bytes --lengths 32 --world-size 2" + out, "--world-size: describes a group"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world-rank 1" + out, "--world-rank"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world r --world-size 2" + out, "--world-rank"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world r --world-size 2 --world-rank 2" + out, "not a process of 2"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world r --world-size 2 --world-rank 0" + out, "--tensor-parallel"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world r --world-size 2 --world-rank 0 --tensor-parallel 3" + out,
       "do not divide among 2 processes"},
      {"ec --tokens " + text + " --bytes --lengths 32 --world r --world-size 2 --world-rank 1 --tensor-parallel 2 "
       "--device cpu" + out, "CUDA ranks"},
  };
  for (const auto& [args, expected] : cases) {
    auto r = run_ropescope("ppl " + kModels + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << args << "\n" << r.err;
  }
  EXPECT_EQ(files_in(dir.path).size(), 2u);  // only the inputs
}

TEST(CliPpl, FailedRunExitsNonZeroAndLeavesNoOutput) {
  TempDir dir;
  write_file(dir / "bad.npy", "\x93NUMPY\x01");  // truncated .npy
  auto r = run_ropescope("ppl " + kModels + "ec --tokens " + (dir / "bad.npy").string() + " --lengths 4 --out " +
                         (dir / "o").string());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("bad.npy"), std::string::npos) << r.err;
  auto missing_model = run_ropescope("ppl " + (dir / "nomodel").string() + " --tokens " + (dir / "bad.npy").string() +
                                     " --lengths 4 --out " + (dir / "o").string());
  EXPECT_NE(missing_model.exit_code, 0);
  EXPECT_EQ(files_in(dir.path).size(), 1u);
}

}  // namespace
