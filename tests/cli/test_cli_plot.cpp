// `ropescope plot` end to end, one test per kind on the committed flagship
// outputs (notebooks-data/flagship): PNG, SVG and PDF are drawn, the PNG has
// the requested size and shows the series' colours, the SVG holds each
// series' legend text; bad input is one line naming the file, exit 2 for
// usage and 1 for failures, and no figure left behind.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "../common/png.hpp"
#include "../common/run_command.hpp"

using ropescope::testing::decode_png;
using ropescope::testing::drawn_fraction;
using ropescope::testing::lines_of;
using ropescope::testing::pixels_of_colour;
using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kFlagship = std::string(ROPESCOPE_SOURCE_DIR) + "/notebooks-data/flagship/";
constexpr std::uint32_t kBlue = 0x1f4fd1, kRed = 0xd12a1f, kViridisTop = 0xfde725;

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

// Draws `kind` of `inputs` (flagship files) at 900x600 as PNG, SVG and PDF and checks the three.
void check_kind(const std::string& kind, const std::string& inputs, const std::string& extra,
                const std::vector<std::string>& legend, std::uint32_t series_colour) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not installed";
  TempDir dir;
  std::string args;
  std::stringstream names(inputs);
  for (std::string name; names >> name;) args += " " + kFlagship + name;
  for (std::string ext : {"png", "svg", "pdf"}) {
    auto r = run_ropescope("plot " + kind + args + " " + extra + " --size 900x600 --out " + (dir / ("fig." + ext)).string());
    ASSERT_EQ(r.exit_code, 0) << ext << ": " << r.err;
  }
  auto png = decode_png(read_text(dir / "fig.png"));
  EXPECT_EQ(png.width, 900u);
  EXPECT_EQ(png.height, 600u);
  EXPECT_GT(drawn_fraction(png), 0.03);
  EXPECT_GT(pixels_of_colour(png, series_colour), 50u) << "the first series' colour is (almost) absent";
  std::string svg = read_text(dir / "fig.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  for (const auto& text : legend) EXPECT_NE(svg.find(">" + text + "<"), std::string::npos) << "legend '" << text << "' missing";
  EXPECT_EQ(read_text(dir / "fig.pdf").substr(0, 4), "%PDF");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, 3);
}

}  // namespace

TEST(CliPlot, Decay) {
  check_kind("decay", "decay_d64.csv decay_d128.csv", "--labels d64,d128",
             {"d64 (discrete)", "d64 (integral)", "d128 (discrete)", "d128 (integral)"}, kBlue);
}

TEST(CliPlot, PplComparesModelsAndConditions) {
  check_kind("ppl", "ppl_rope.csv ppl_eh.csv ppl_ec.csv", "--conditions clean,yarn16",
             {"rope (llama) clean", "rope (llama) yarn16", "eh (llama) clean", "eh (llama) yarn16", "ec (llama) clean",
              "ec (llama) yarn16", "training length 512"}, kBlue);
}

TEST(CliPlot, ProfileOverlaysRunsAndTheory) {
  check_kind("profile", "profile_ec_512_summary.json profile_eh_512_summary.json", "",
             {"ec (llama) real", "ec (llama) imaginary", "eh (llama) real", "eh (llama) imaginary", "c_re theory",
              "c_im theory"}, kBlue);
}

TEST(CliPlot, MeanDistanceSideBySide) {
  check_kind("meandist", "profile_ec_512_summary.json profile_ec_2048_summary.json", "--labels EC-512,EC-2048",
             {"real heads", "imaginary heads", "EC-512 (window 512)", "EC-2048 (window 2048)"}, kRed);
}

TEST(CliPlot, CurveComparesModels) {
  check_kind("curve", "ppl_rope_curve.csv ppl_ec_curve.csv", "--conditions clean,yarn16",
             {"rope (llama) clean", "rope (llama) yarn16", "ec (llama) clean", "ec (llama) yarn16"}, kBlue);
}

TEST(CliPlot, AttnRealBesideImaginary) {
  check_kind("attn", "attn_ec_16", "", {"Layer 1 head 0 (real)", "Layer 1 head 1 (imaginary)", "Layer 3 head 7 (imaginary)"},
             kViridisTop);
}

TEST(CliPlot, NoiseRealVersusImaginary) {
  check_kind("noise", "noise_ec.csv", "",
             {"noise on real queries, L = 512", "noise on imaginary queries, L = 512", "noise on imaginary queries, L = 2048"}, kBlue);
}

TEST(CliPlot, AblationByHeadKindAndLength) {
  check_kind("ablation", "noise_ec.csv ablate_eh.csv", "--labels EC,EH",
             {"EC clean", "EC ablate_real", "EC ablate_imag", "EH ablate_imag", "L = 2048 (> training 512)"}, 0x2a9d3a);
}

TEST(CliPlot, InputOfTheWrongKindIsAUsageError) {
  TempDir dir;
  auto r = run_ropescope("plot profile " + kFlagship + "ppl_ec.csv --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("ppl_ec.csv: not a profile summary"), std::string::npos) << r.err;
  r = run_ropescope("plot ppl " + kFlagship + "ppl_ec_curve.csv --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("ppl_ec_curve.csv: not a ppl CSV"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));
}

TEST(CliPlot, RunsWithDifferentWindowsDoNotShareAProfile) {
  TempDir dir;
  auto r = run_ropescope("plot profile " + kFlagship + "profile_ec_512_summary.json " + kFlagship +
                         "profile_ec_2048_summary.json --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("profile_ec_2048_summary.json: window 2048 differs"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));
}

TEST(CliPlot, MissingInputAndBadArgumentsAreUsageErrors) {
  TempDir dir;
  auto r = run_ropescope("plot ppl " + (dir / "absent.csv").string() + " --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("absent.csv: cannot open (expected a ppl CSV"), std::string::npos) << r.err;
  r = run_ropescope("plot ppl " + kFlagship + "ppl_ec.csv --out " + (dir / "f.gif").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unsupported extension '.gif'"), std::string::npos) << r.err;
  r = run_ropescope("plot spectrum " + kFlagship + "ppl_ec.csv --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown kind 'spectrum'"), std::string::npos) << r.err;
  r = run_ropescope("plot ppl " + kFlagship + "ppl_ec.csv --labels a,b --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--labels: 2 labels for 1 inputs"), std::string::npos) << r.err;
  r = run_ropescope("plot ppl " + kFlagship + "ppl_ec.csv --conditions yarn99 --out " + (dir / "f.png").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("'yarn99' is in none of the inputs"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path));
}

TEST(CliPlot, GnuplotMissingOrFailingIsAFailureAndLeavesNoFigure) {
  TempDir dir;
  auto r = run_ropescope("plot ppl " + kFlagship + "ppl_ec.csv --out " + (dir / "f.png").string(), "PATH=/nonexistent");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("gnuplot is not installed"), std::string::npos) << r.err;
  // A gnuplot that reads its input, complains and exits 3.
  std::filesystem::create_directory(dir / "bin");
  {
    std::ofstream fake(dir / "bin" / "gnuplot");
    fake << "#!/bin/sh\ncat >/dev/null\necho 'line 7: something broke' >&2\nexit 3\n";
  }
  std::filesystem::permissions(dir / "bin" / "gnuplot", std::filesystem::perms::owner_all);
  std::filesystem::create_directory(dir / "figs");
  r = run_ropescope("plot ppl " + kFlagship + "ppl_ec.csv --out " + (dir / "figs" / "f.png").string(),
                    "PATH=" + (dir / "bin").string() + ":/usr/bin:/bin");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("gnuplot failed drawing"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exit status 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("something broke"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "figs"));
}
