// `ropescope decay`: theoretical attention-decay curves (ROPEPP.md section 2)
// for one or several RoPE variants: integral (Si/Ci) and exact discrete forms of
// the real and imaginary expected scores, RoFormer's relative bound, sign-change
// and base-for-context reports; CSV, JSON sidecar, Figure-1-style plots.
// With no arguments it reproduces Figure 1 of the paper (d=128, base 1e4, D=0..256).
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/run_metadata.hpp"
#include "theory/rope_spec_text.hpp"
#include "plot/figures.hpp"
#include "plot/gnuplot.hpp"
#include "analysis/decay_table.hpp"

namespace ropescope::cli {
namespace {

using theory::parse_integer;
using theory::parse_number;
using theory::split;

struct DecayOptions {
  int head_dim = 128;
  double base = 1e4;
  std::string range = "0:256:1";
  std::string log_range;
  std::vector<std::string> variants;
  std::string out = "-";
  std::string json;
  std::vector<std::string> plots;
  bool bound = false;
  long bound_max = 1'000'000;
  long context = 0;
  bool quiet = false;
};

void check_distance_limit(double distance, const char* what) {
  if (distance > theory::kMaxExactDistance)
    throw ArgumentError(fmt::format("{} = {:g} is above {:g}, the largest distance whose curves are computed exactly "
                                    "(the float128 angle reduction); a value printed there would not be the true one",
                                    what, distance, theory::kMaxExactDistance));
}

// Distances from "START:STOP[:STEP]" (linear) or "START:STOP:COUNT" (log-spaced).
std::vector<double> parse_distances(const DecayOptions& o, bool& log_spaced) {
  std::vector<double> d;
  log_spaced = !o.log_range.empty();
  if (log_spaced) {
    auto p = split(o.log_range, ':');
    if (p.size() != 3) throw ArgumentError(fmt::format("--log: expected START:STOP:COUNT, got '{}'", o.log_range));
    double a = parse_number(p[0], "--log START"), b = parse_number(p[1], "--log STOP");
    long n = parse_integer(p[2], "--log COUNT");
    if (!(a > 0) || !(b > a)) throw ArgumentError(fmt::format("--log: need 0 < START < STOP, got '{}'", o.log_range));
    check_distance_limit(b, "--log STOP");
    if (n < 2 || n > 10'000'000) throw ArgumentError(fmt::format("--log: COUNT must be in [2, 1e7], got {}", n));
    for (long i = 0; i < n; ++i) d.push_back(a * std::pow(b / a, static_cast<double>(i) / (n - 1)));
    d.back() = b;
    return d;
  }
  auto p = split(o.range, ':');
  if (p.size() < 2 || p.size() > 3) throw ArgumentError(fmt::format("--range: expected START:STOP[:STEP], got '{}'", o.range));
  double a = parse_number(p[0], "--range START"), b = parse_number(p[1], "--range STOP");
  double step = p.size() == 3 ? parse_number(p[2], "--range STEP") : 1.0;
  if (a < 0 || b < 0) throw ArgumentError(fmt::format("--range: distances must be >= 0, got '{}'", o.range));
  if (b < a) throw ArgumentError(fmt::format("--range: STOP must be >= START, got '{}'", o.range));
  if (!(step > 0)) throw ArgumentError(fmt::format("--range: STEP must be > 0, got '{}'", o.range));
  check_distance_limit(b, "--range STOP");
  double count = std::floor((b - a) / step + 1e-9) + 1;
  if (count > 10'000'000) throw ArgumentError(fmt::format("--range: {:g} points is more than 1e7", count));
  for (long i = 0; i < static_cast<long>(count); ++i) d.push_back(a + i * step);
  return d;
}

void run_decay(const DecayOptions& o, const CommandLine& argv) {
  auto started = std::chrono::steady_clock::now();
  analysis::check_decay_spec(o.head_dim, o.base);
  if (!o.log_range.empty() && o.range != "0:256:1") throw ArgumentError("--range and --log are mutually exclusive");
  for (const auto& p : o.plots) plot::check_plot_path(p);
  bool log_spaced = false;
  std::vector<double> distances = parse_distances(o, log_spaced);
  const auto variants = analysis::decay_variants(o.variants, o.head_dim, o.base, "variant");
  analysis::check_decay_bounds_request(o.bound_max, o.context);

  // Every output is checked and staged before any work.
  std::vector<std::filesystem::path> targets;
  if (o.out != "-") targets.push_back(o.out);
  const std::string json_path = !o.json.empty() ? o.json : (o.out != "-" ? o.out + ".json" : std::string());
  if (!json_path.empty()) targets.push_back(json_path);
  targets.insert(targets.end(), o.plots.begin(), o.plots.end());
  io::OutputTransaction outputs(targets);

  nlohmann::json meta = io::run_metadata("decay", argv);
  meta["precision"] = {
      {"discrete", "angles D*theta_n reduced exactly in float128 from ~106-bit frequencies, terms summed in long double; "
                   "error ~1e-16"},
      {"integral", "Si/Ci/Cin in float64 (<= 2 ulp), Cin form for small arguments; ramp pieces by composite "
                   "Gauss-Legendre; absolute error ~1e-15"},
      {"relative_bound", "RoFormer (1/(d/2)) sum_j |S_j| with exact angles"}};
  meta["columns"] = analysis::DecayTable::columns();
  meta["note"] = "curves are per unit cos/sin magnitude; multiply by score_scale (m^2) for YaRN's magnitude";
  meta["distances"] = log_spaced ? nlohmann::json{{"log", o.log_range}, {"count", distances.size()}}
                                 : nlohmann::json{{"range", o.range}, {"count", distances.size()}};

  const auto table = analysis::decay_table(variants, distances);
  const std::string csv = table.csv();
  meta["variants"] = table.variants();
  std::vector<plot::DecayCurve> curves;
  for (const auto& c : table.curves)
    curves.push_back({c.label, c.distance, c.re_discrete, c.im_discrete, c.re_integral, c.im_integral});

  const bool report = o.bound || o.context > 0;
  if (report) {
    const auto bounds = analysis::decay_bounds(variants, o.bound_max, o.context);
    meta["bounds"] = bounds.json();
    meta["bounds_method"] = analysis::DecayBounds::kMethod;
    fmt::print("{}", bounds.text());
  }

  if (o.out != "-") outputs.write(o.out, csv);
  for (const auto& p : o.plots) plot::draw_decay_curves(curves, outputs.output(p), {}, "");

  meta["outputs"] = {{"csv", o.out == "-" ? (report ? nlohmann::json(nullptr) : nlohmann::json("stdout")) : nlohmann::json(o.out)},
                     {"plots", o.plots}};
  meta["wall_time_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!json_path.empty()) outputs.write(json_path, meta.dump(2) + "\n");
  outputs.commit();
  if (o.out == "-" && !report) fmt::print("{}", csv);
  if (!o.quiet && isatty(STDERR_FILENO))
    fmt::print(stderr, "decay: {} variant(s) x {} distances in {:.2f} s\n", variants.size(), distances.size(),
               meta["wall_time_s"].get<double>());
}

}  // namespace

void add_decay_command(CLI::App& app, const CommandLine& argv) {
  auto opts = std::make_shared<DecayOptions>();
  auto* cmd = app.add_subcommand("decay", "Theoretical attention-decay curves of real and imaginary RoPE attention");
  cmd->add_option("-d,--head-dim", opts->head_dim, "head dimension d (even)")->capture_default_str();
  cmd->add_option("-b,--base", opts->base, "RoPE base (rope_theta)")->capture_default_str();
  cmd->add_option("--range", opts->range, "distances START:STOP[:STEP]")->capture_default_str();
  cmd->add_option("--log", opts->log_range, "log-spaced distances START:STOP:COUNT (START > 0)");
  cmd->add_option("--variant", opts->variants,
                  "a RoPE variant as key=value pairs, repeatable: type=none|linear|dynamic|yarn|yarn_ropepp|llama3, "
                  "factor, base, d, partial, original, seq, beta_fast, beta_slow, low, high, mscale, "
                  "mscale_all_dim, attention_factor, label");
  cmd->add_option("-o,--out", opts->out, "CSV output file ('-' = stdout)")->capture_default_str();
  cmd->add_option("--json", opts->json, "JSON sidecar (default: OUT.json when --out is a file)");
  cmd->add_option("--plot", opts->plots, "figure file (.png, .svg, .pdf), repeatable");
  cmd->add_flag("--bound", opts->bound, "report the first distance where the real / imaginary sums turn negative");
  cmd->add_option("--bound-max", opts->bound_max, "largest distance the --bound scan checks")->capture_default_str();
  cmd->add_option("--context", opts->context, "also report the smallest base keeping c_re >= 0 below this context");
  cmd->add_flag("-q,--quiet", opts->quiet, "no progress or summary on stderr");
  cmd->callback([opts, &argv] { run_decay(*opts, argv); });
}

}  // namespace ropescope::cli
