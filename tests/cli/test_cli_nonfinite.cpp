// NaN is never a number, end to end: `ppl` and `profile` with query noise that
// overflows float32, and `ppl` on a checkpoint with a NaN or infinite weight,
// exit 1 with a message naming the layer (or the tensor), write no new file,
// and leave an earlier result at the output path byte for byte as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "../common/run_command.hpp"
#include "../cpu/poisoned_checkpoint.hpp"

using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kModels = std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/models/";

std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) files.insert(e.path().lexically_relative(dir));
  return files;
}

// A directory with a byte-level token file and an earlier run's outputs at `old`.
struct Workspace {
  TempDir dir;
  std::string old_csv = "condition,L\nearlier,1\n", old_json = "{\"earlier\": true}\n";
  Workspace() {
    std::ofstream(dir / "text.bin", std::ios::binary) << std::string(200, 'a') + "the rotary position embedding";
    std::ofstream(dir / "old.csv", std::ios::binary) << old_csv;
    std::ofstream(dir / "old.csv.json", std::ios::binary) << old_json;
  }
  std::string tokens() const { return (dir / "text.bin").string(); }
  std::string out() const { return (dir / "old").string(); }
  // Nothing new and the earlier outputs untouched.
  void expect_untouched(const std::set<std::string>& before) const {
    EXPECT_EQ(files_in(dir.path), before);
    EXPECT_EQ(read_text(dir / "old.csv"), old_csv);
    EXPECT_EQ(read_text(dir / "old.csv.json"), old_json);
  }
};

}  // namespace

TEST(CliNonFinite, PplWithOverflowingNoiseExitsOneNamingTheLayer) {
  Workspace w;
  const auto before = files_in(w.dir.path);
  for (const char* flag : {"--noise-real", "--noise-imag"}) {
    auto r = run_ropescope("ppl " + kModels + "ec --tokens " + w.tokens() + " --bytes --lengths 32 " + flag +
                           " 1e300 --device cpu --quiet --out " + w.out());
    EXPECT_EQ(r.exit_code, 1) << flag << "\n" << r.err;
    EXPECT_NE(r.err.find("non-finite activations (NaN or infinity) in sequence 0 after the attention branch of layer 0"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("query noise std 1e+300"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("nan"), std::string::npos) << r.out;
    w.expect_untouched(before);
  }
}

TEST(CliNonFinite, ProfileWithOverflowingNoiseExitsOneNamingTheLayer) {
  Workspace w;
  const auto before = files_in(w.dir.path);
  auto r = run_ropescope("profile " + kModels + "ec --tokens " + w.tokens() +
                         " --bytes --window 64 --noise-real 1e300 --device cpu --quiet --out " +
                         w.out());
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("after the attention branch of layer 0"), std::string::npos) << r.err;
  w.expect_untouched(before);
}

TEST(CliNonFinite, PplOnACheckpointWithANanOrInfiniteWeightExitsOneNamingTheTensor) {
  Workspace w;
  const auto before = files_in(w.dir.path);
  TempDir models;
  for (float value : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const auto model = models / (std::isnan(value) ? "nan" : "inf");
    ropescope::testing::write_poisoned_checkpoint(kModels + "ec", model, "model.layers.1.self_attn.v_proj.weight", 40,
                                                  value);
    auto r = run_ropescope("ppl " + model.string() + " --tokens " + w.tokens() +
                           " --bytes --lengths 32 --device cpu --quiet --out " + w.out());
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("tensor \"model.layers.1.self_attn.v_proj.weight\" holds a non-finite weight"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("at element 40 (index [1, 8] of shape [32, 32])"), std::string::npos) << r.err;
    w.expect_untouched(before);
  }
}
