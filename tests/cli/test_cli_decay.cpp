// `ropescope decay` end to end: the default reproduces Figure 1, outputs are
// written atomically with their JSON sidecar, plots come out of gnuplot, and
// bad arguments get a one-line error and exit code 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../common/run_command.hpp"

using ropescope::testing::lines_of;
using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {
bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }
}  // namespace

TEST(CliDecay, DefaultRunReproducesFigureOneOnStdout) {
  auto r = run_ropescope("decay");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 258u);  // header + D = 0..256
  EXPECT_EQ(lines[0], "variant,distance,re_integral,im_integral,re_discrete,im_discrete,relative_bound");
  EXPECT_EQ(lines[1].rfind("\"RoPE\",0,1,0,1,0,32.5", 0), 0u) << lines[1];
  // D = 256: real integral ~0.3349, imaginary ~0.1678 (ROPEPP.md: about 0.33 and a plateau near 0.17)
  EXPECT_EQ(lines[257].rfind("\"RoPE\",256,0.3348637013805", 0), 0u) << lines[257];
}

TEST(CliDecay, WritesCsvJsonSidecarAndPlots) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not installed";
  TempDir dir;
  auto csv = dir / "curves.csv";
  auto r = run_ropescope("decay --quiet --log 1:1e7:50 --variant label=plain --variant type=linear,factor=4 --out " +
                         csv.string() + " --plot " + (dir / "f.png").string() + " --plot " + (dir / "f.svg").string() +
                         " --plot " + (dir / "f.pdf").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(read_text(csv)).size(), 1u + 2 * 50);
  auto meta = nlohmann::json::parse(read_text(csv.string() + ".json"));
  EXPECT_EQ(meta["command"], "decay");
  EXPECT_EQ(meta["variants"].size(), 2u);
  EXPECT_EQ(meta["variants"][1]["scaling"]["type"], "linear");
  EXPECT_TRUE(meta.contains("git_commit"));
  EXPECT_TRUE(meta.contains("precision"));
  std::string png = read_text(dir / "f.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  EXPECT_NE(read_text(dir / "f.svg").find("<svg"), std::string::npos);
  EXPECT_EQ(read_text(dir / "f.pdf").substr(0, 4), "%PDF");
  // nothing temporary left behind
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, 5);
}

TEST(CliDecay, BoundReportAndBaseForContext) {
  auto r = run_ropescope("decay --bound --bound-max 5000 --context 4096");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("1707"), std::string::npos) << r.out;  // first D with c_re < 0, d=128 base 1e4
  EXPECT_NE(r.out.find("978"), std::string::npos) << r.out;   // first D with c_im < 0
  EXPECT_NE(r.out.find("threshold"), std::string::npos) << r.out;
}

TEST(CliDecay, MissingGnuplotIsAClearErrorAndLeavesNoFile) {
  TempDir dir;
  auto r = run_ropescope("decay --quiet --plot " + (dir / "f.png").string(), "PATH=/nonexistent");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("gnuplot is not installed"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));
}

TEST(CliDecay, UnwritableOutputIsRefusedUpFrontWithTheFileName) {
  auto r = run_ropescope("decay --out /nonexistent-dir/x.csv");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/nonexistent-dir/x.csv"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("directory '/nonexistent-dir' does not exist"), std::string::npos) << r.err;
}

struct BadArgument {
  const char* args;
  const char* message;
};

class CliDecayBadArguments : public ::testing::TestWithParam<BadArgument> {};

TEST_P(CliDecayBadArguments, OneLineErrorAndExitCodeTwo) {
  auto r = run_ropescope(std::string("decay ") + GetParam().args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(GetParam().message), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_LE(lines_of(r.err).size(), 2u) << r.err;  // the error, and at most a pointer to --help
}

INSTANTIATE_TEST_SUITE_P(
    Errors, CliDecayBadArguments,
    ::testing::Values(BadArgument{"--head-dim 127", "--head-dim: must be even"},
                      BadArgument{"--head-dim 0", "--head-dim: must be even"},
                      BadArgument{"--base 1", "--base: must be > 1"},
                      BadArgument{"--base -3", "--base: must be > 1"},
                      BadArgument{"--range -5:10", "distances must be >= 0"},
                      BadArgument{"--range 10:5", "STOP must be >= START"},
                      BadArgument{"--range 0:10:0", "STEP must be > 0"},
                      BadArgument{"--log 0:10:5", "0 < START < STOP"},
                      BadArgument{"--variant type=ntk-by-parts", "unknown RoPE scaling 'ntk-by-parts'"},
                      BadArgument{"--variant type=yarn,factor=0.5", "factor must be >= 1"},
                      BadArgument{"--variant colour=red", "unknown key 'colour'"},
                      BadArgument{"--variant factor=4", "factor given without a scaling type"},
                      BadArgument{"--plot figure.jpg", "unsupported extension '.jpg'"},
                      BadArgument{"--head-dim abc", "head-dim"},
                      BadArgument{"--no-such-flag", "no-such-flag"}));
