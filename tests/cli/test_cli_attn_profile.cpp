// `ropescope attn` and `ropescope profile` end to end on the tiny checkpoints:
// the dumped maps equal the forward's own probabilities, the manifest labels
// follow the head layout, the profile's outputs agree with each other and
// load with numpy; oversized maps and bad arguments exit 2, and a failed run
// leaves no partial output.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "../common/run_command.hpp"
#include "../cpu/forward_fixtures.hpp"
#include "cpu/cpu_backend.hpp"

using namespace ropescope;
using ropescope::testing::lines_of;
using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kModels = std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/models/";

// A byte-level token file of `n` pseudo-random printable bytes.
std::string write_text(const TempDir& dir, long n) {
  std::mt19937 rng(5);
  std::string text(n, ' ');
  for (auto& c : text) c = static_cast<char>(32 + rng() % 95);
  auto path = (dir / "text.txt").string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Shape and data of a little-endian .npy of element type T.
template <class T>
std::pair<std::string, std::vector<T>> read_npy(const std::filesystem::path& path) {
  std::string bytes = read_text(path);
  EXPECT_EQ(bytes.substr(1, 5), "NUMPY");
  std::uint16_t header = 0;
  std::memcpy(&header, bytes.data() + 8, 2);
  std::string text = bytes.substr(10, header);
  std::vector<T> data((bytes.size() - 10 - header) / sizeof(T));
  std::memcpy(data.data(), bytes.data() + 10 + header, data.size() * sizeof(T));
  auto open = text.find("'shape': ("), close = text.find(')', open);
  return {text.substr(open + 10, close - open - 10), data};
}

bool python_numpy() { return std::system("python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

}  // namespace

TEST(CliAttn, DumpsTheForwardsOwnMapsWithManifestAndSidecar) {
  TempDir dir;
  const auto text = write_text(dir, 64);
  const auto out = dir / "maps";
  auto r = run_ropescope("attn " + kModels + "ec --tokens " + text + " --bytes --layers 1 --heads 0,3 --start 4 --length 8 "
                         "--scores --quiet --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto [shape, probs] = read_npy<float>(out / "attn_probs.npy");
  EXPECT_EQ(shape, "2, 8, 8");
  auto [score_shape, scores] = read_npy<float>(out / "attn_scores.npy");
  EXPECT_EQ(score_shape, "2, 8, 8");
  EXPECT_FALSE(std::filesystem::exists(out / "virtual_imaginary.npy"));

  auto manifest = nlohmann::json::parse(read_text(out / "manifest.json"));
  ASSERT_EQ(manifest["maps"].size(), 2u);
  EXPECT_EQ(manifest["maps"][0]["layer"], 1);
  EXPECT_EQ(manifest["maps"][0]["head"], 0);
  EXPECT_EQ(manifest["maps"][0]["kind"], "real");
  EXPECT_EQ(manifest["maps"][1]["head"], 3);
  EXPECT_EQ(manifest["maps"][1]["kind"], "imaginary");  // ec: head 2j+1 is query head j's imaginary twin
  EXPECT_EQ(manifest["maps"][1]["query_head"], 1);
  EXPECT_EQ(manifest["maps"][1]["window"]["query_positions"], nlohmann::json::array({4, 12}));
  EXPECT_EQ(manifest["arrays"]["scores"], "attn_scores.npy");
  auto sidecar = nlohmann::json::parse(read_text(out / "attn_probs.npy.json"));
  EXPECT_EQ(sidecar["command"], "attn");
  EXPECT_EQ(sidecar["model"]["variant"], "ec");
  EXPECT_TRUE(sidecar.contains("wall_time_s"));
  EXPECT_TRUE(sidecar.contains("git_commit"));

  // The same maps from the forward pass in this process.
  auto model = ropescope::testing::load_test_model("tests/data/models/ec");
  cpu::CpuBackend backend(model);
  ropescope::testing::MapRecorder full(12, false);
  backend::ForwardOptions options;
  options.observer = &full;
  std::string bytes = read_text(text);
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < 12; ++i) tokens.push_back(static_cast<unsigned char>(bytes[i]));
  backend.forward({tokens}, options);
  for (int m = 0; m < 2; ++m) {
    const auto& f = full.at(0, 1, m == 0 ? 0 : 3);
    for (long i = 0; i < 8; ++i)
      for (long j = 0; j <= i; ++j) {
        EXPECT_EQ(probs[(m * 8 + i) * 8 + j], f.probabilities[(4 + i) * 12 + 4 + j]) << m << " " << i << " " << j;
        EXPECT_EQ(scores[(m * 8 + i) * 8 + j], f.scores[(4 + i) * 12 + 4 + j]);
      }
  }
}

TEST(CliAttn, VirtualImaginaryAndFullRowsOnRope) {
  TempDir dir;
  const auto text = write_text(dir, 40);
  auto r = run_ropescope("attn " + kModels + "rope --tokens " + text + " --bytes --start 30 --length 10 --full-rows "
                         "--virtual-imaginary --quiet --out " + (dir / "m").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto [shape, v] = read_npy<float>(dir / "m" / "virtual_imaginary.npy");
  EXPECT_EQ(shape, "8, 10, 40");  // 2 layers x 4 heads, rows 30..39, keys 0..39
  auto manifest = nlohmann::json::parse(read_text(dir / "m" / "manifest.json"));
  EXPECT_EQ(manifest["maps"][5]["kind"], "real");
  EXPECT_EQ(manifest["window"]["key_positions"], nlohmann::json::array({0, 40}));
  EXPECT_TRUE(std::filesystem::exists(dir / "m" / "virtual_imaginary.npy.json"));
}

TEST(CliAttn, RefusesMapsThatDoNotFitAndBadArguments) {
  TempDir dir;
  const auto text = write_text(dir, 64);
  const auto out = (dir / "maps").string();
  const std::string base = "attn " + kModels + "ec --tokens " + text + " --bytes --quiet --out " + out + " ";
  auto r = run_ropescope(base + "--full-rows --start 32 --length 32 --scores --max-memory 100K");
  EXPECT_EQ(r.exit_code, 2);
  // 16 maps x 32 x 64 x 4 bytes x 2 arrays = 256 KiB
  EXPECT_NE(r.err.find("262144 bytes"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-memory"), std::string::npos) << r.err;
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--layers 2", "layer 2 does not exist"},
           {"--heads 0,8", "head 8 does not exist"},
           {"--start 60 --length 16", "the input has 64"},
           {"--virtual-imaginary", "vanilla RoPE"},
           {"--max-memory lots", "--max-memory"},
           {"--devices 0,1", "attn maps one window"},
           {"--devices all", "attn maps one window"}}) {
    auto bad = run_ropescope(base + args);
    EXPECT_EQ(bad.exit_code, 2) << args << ": " << bad.err;
    EXPECT_NE(bad.err.find(message), std::string::npos) << args << ": " << bad.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CliAttn, UnwritableOutputIsRefusedBeforeWorkAndLeavesNothing) {
  TempDir dir;
  const auto text = write_text(dir, 32);
  std::filesystem::create_directories(dir / "maps" / "manifest.json");  // the last output cannot be written
  auto r = run_ropescope("attn " + kModels + "ec --tokens " + text + " --bytes --quiet --scores --out " +
                         (dir / "maps").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("manifest.json': it is a directory"), std::string::npos) << r.err;
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "maps")) ++entries, (void)e;
  EXPECT_EQ(entries, 1);  // only the obstacle
}

TEST(CliProfile, OutputsAgreeAndLoadWithNumpy) {
  TempDir dir;
  const auto text = write_text(dir, 200);
  const auto prefix = (dir / "prof").string();
  auto r = run_ropescope("profile " + kModels + "ec --tokens " + text + " --bytes --window 64 --exact-limit 16 "
                         "--bins-per-decade 8 --beyond 4,32 --quiet --out " + prefix);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto summary = nlohmann::json::parse(read_text(prefix + "_summary.json"));
  EXPECT_EQ(summary["windows"], 3);  // 200 / 64 full windows
  EXPECT_EQ(summary["queries_per_head"], 192);
  const int bins = summary["bins"]["count"];
  EXPECT_GT(bins, 16);
  ASSERT_EQ(summary["heads"].size(), 16u);  // 2 layers x 8 attention heads
  EXPECT_EQ(summary["heads"][1]["kind"], "imaginary");
  EXPECT_TRUE(summary["heads"][1]["mass_beyond"].contains("32"));
  EXPECT_TRUE(summary["definitions"].contains("entropy"));
  EXPECT_EQ(summary["layers"][0]["real"]["heads"], 4);
  EXPECT_EQ(summary["model"]["imaginary"]["heads"], 8);
  EXPECT_EQ(summary["model"]["imaginary"]["mean_prob"].size(), static_cast<std::size_t>(bins));

  auto csv = lines_of(read_text(prefix + ".csv"));
  ASSERT_EQ(csv.size(), 1u + 16 * bins);
  EXPECT_EQ(csv[0], "layer,head,kind,bin_lo,bin_hi,count,mean_prob,mean_score,score_count");
  EXPECT_EQ(csv[1].rfind("0,0,real,0,0,192,", 0), 0u) << csv[1];  // D = 0: one pair per query
  auto [shape, prob] = read_npy<double>(prefix + "_prob.npy");
  EXPECT_EQ(shape, fmt::format("2, 8, {}", bins));
  auto [bin_shape, edges] = read_npy<std::int64_t>(prefix + "_bins.npy");
  EXPECT_EQ(bin_shape, fmt::format("{}, 2", bins));
  EXPECT_EQ(edges.back(), 63);
  // mean probability at D = 0 of layer 0 head 0 in the CSV and the array
  EXPECT_EQ(csv[1].substr(csv[1].find("192,") + 4, 10), fmt::format("{:.17g}", prob[0]).substr(0, 10));
  for (const char* suffix : {".csv", "_summary.json", "_prob.npy", "_score.npy", "_bins.npy"}) {
    auto sidecar = nlohmann::json::parse(read_text(prefix + suffix + ".json"));
    EXPECT_EQ(sidecar["command"], "profile") << suffix;
    EXPECT_EQ(sidecar["profile"]["window"], 64) << suffix;
  }
  if (!python_numpy()) GTEST_SKIP() << "python3 with numpy not available";
  const std::string check = "python3 -c \"import numpy as n; p=n.load('" + prefix + "_prob.npy'); s=n.load('" + prefix +
                            "_score.npy'); b=n.load('" + prefix + "_bins.npy'); assert p.shape==s.shape==(2,8," +
                            std::to_string(bins) + "); assert b.shape==(" + std::to_string(bins) +
                            ",2) and b[0,0]==0 and b[-1,1]==63; assert n.isfinite(p).all()\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(CliProfile, BadArgumentsExitTwoAndFailuresLeaveNothing) {
  TempDir dir;
  const auto text = write_text(dir, 100);
  const auto prefix = (dir / "prof").string();
  const std::string base = "profile " + kModels + "ec --tokens " + text + " --bytes --quiet --out " + prefix + " ";
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--window 101", "longer than the token input"},
           {"--window 0", "--window"},
           {"--window 50 --beyond 50", "--beyond"},
           {"--window 50 --bins-per-decade 0", "--bins-per-decade"},
           {"--window 50 --bin-edges 60,55", "strictly increasing"},
           {"--window 50 --noise-real 1 --noise-imag 1", "excludes"}}) {
    auto bad = run_ropescope(base + args);
    EXPECT_EQ(bad.exit_code, 2) << args << ": " << bad.err;
    EXPECT_NE(bad.err.find(message), std::string::npos) << args << ": " << bad.err;
  }
  std::filesystem::create_directories(prefix + "_summary.json");  // the last output cannot be written
  auto failed = run_ropescope(base + "--window 50");
  EXPECT_EQ(failed.exit_code, 2) << failed.err;  // refused before the model is loaded
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) ++entries, (void)e;
  EXPECT_EQ(entries, 2);  // the token file and the obstacle
}

TEST(CliProfile, NoiseChangesOnlyTheScoresOfItsComponent) {
  TempDir dir;
  const auto text = write_text(dir, 64);
  const std::string base = "profile " + kModels + "ec --tokens " + text + " --bytes --quiet --window 64 --out ";
  ASSERT_EQ(run_ropescope(base + (dir / "clean").string()).exit_code, 0);
  ASSERT_EQ(run_ropescope(base + (dir / "noisy").string() + " --noise-imag 0.5").exit_code, 0);
  auto clean = read_npy<double>(dir / "clean_score.npy").second, noisy = read_npy<double>(dir / "noisy_score.npy").second;
  const std::size_t bins = clean.size() / 16;
  // Layer 0 (its inputs are untouched by noise): real heads equal, imaginary heads differ.
  for (int h = 0; h < 8; ++h) {
    bool same = std::equal(clean.begin() + h * bins, clean.begin() + (h + 1) * bins, noisy.begin() + h * bins);
    EXPECT_EQ(same, h % 2 == 0) << "head " << h;
  }
}
