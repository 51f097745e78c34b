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
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/csv.hpp"
#include "io/run_metadata.hpp"
#include "theory/rope_spec_text.hpp"
#include "plot/figures.hpp"
#include "plot/gnuplot.hpp"
#include "theory/decay.hpp"

namespace ropescope::cli {
namespace {

using theory::RopeSpec;
using theory::ScalingType;
using theory::apply_rope_spec_text;
using theory::parse_integer;
using theory::parse_number;
using theory::RopeSpecText;
using theory::split;

// Sizes refused up front: each is far beyond any use and would take minutes or
// more (the scans and the base search test every integer distance).
constexpr long kMaxBoundScan = 100'000'000;
constexpr long kMaxContext = 10'000'000;

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

struct Variant {
  std::string label;
  RopeSpec spec;
  long sequence_length = 0;  // for dynamic NTK
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

// A --variant: comma-separated key=value pairs on top of --head-dim / --base.
Variant parse_variant(const std::string& text, const DecayOptions& o) {
  Variant v;
  v.spec.head_dim = o.head_dim;
  v.spec.base = o.base;
  const RopeSpecText given = apply_rope_spec_text(text, "variant", v.spec, true);
  // llama3's original length defaults to HF's Llama 3.1 value when not given.
  if (v.spec.scaling.type == ScalingType::llama3 && !given.original_given) v.spec.scaling.original_max_position = 8192;
  v.label = given.label;
  v.sequence_length = given.sequence_length;
  const auto& sc = v.spec.scaling;
  if (v.label.empty()) {
    v.label = sc.type == ScalingType::none ? "RoPE" : to_string(sc.type);
    if (sc.type != ScalingType::none) v.label += fmt::format(" s={:g}", sc.factor);
    if (v.spec.head_dim != o.head_dim) v.label += fmt::format(" d={}", v.spec.head_dim);
    if (v.spec.base != o.base) v.label += fmt::format(" base={:g}", v.spec.base);
    if (v.spec.partial_rotary_factor != 1.0) v.label += fmt::format(" partial={:g}", v.spec.partial_rotary_factor);
    if (sc.type == ScalingType::dynamic) v.label += fmt::format(" T={}", v.sequence_length);
  }
  return v;
}

nlohmann::json describe(const Variant& v, const theory::DecayModel& model) {
  const auto& sc = v.spec.scaling;
  nlohmann::json pieces = nlohmann::json::array();
  for (const auto& p : model.profile().pieces())
    pieces.push_back({{"x0", p.x0}, {"x1", p.x1}, {"form", p.exponential ? "exponential (Si/Ci)" : "ramp (quadrature)"},
                      {"scale", p.exponential ? nlohmann::json(p.scale) : nlohmann::json(nullptr)}});
  double m = model.frequencies().magnitude;
  return {{"label", v.label},
          {"head_dim", v.spec.head_dim},
          {"rotary_dim", v.spec.rotary_dim()},
          {"partial_rotary_factor", v.spec.partial_rotary_factor},
          {"base", v.spec.base},
          {"effective_base", model.profile().effective_base()},
          {"scaling",
           {{"type", to_string(sc.type)}, {"factor", sc.factor}, {"original_max_position", sc.original_max_position},
            {"beta_fast", sc.beta_fast}, {"beta_slow", sc.beta_slow}, {"low_freq_factor", sc.low_freq_factor},
            {"high_freq_factor", sc.high_freq_factor}, {"sequence_length", v.sequence_length}}},
          {"magnitude", m},
          {"score_scale", m * m},
          {"profile_pieces", pieces},
          {"theta", model.frequencies().theta}};
}

void run_decay(const DecayOptions& o, const CommandLine& argv) {
  auto started = std::chrono::steady_clock::now();
  if (o.head_dim < 2 || o.head_dim % 2 || o.head_dim > RopeSpec::kMaxHeadDim)
    throw ArgumentError(fmt::format("--head-dim must be even, 2 .. {}, got {}", RopeSpec::kMaxHeadDim, o.head_dim));
  if (!(o.base > 1.0)) throw ArgumentError(fmt::format("--base must be > 1, got {:g}", o.base));
  if (!o.log_range.empty() && o.range != "0:256:1") throw ArgumentError("--range and --log are mutually exclusive");
  for (const auto& p : o.plots) plot::check_plot_path(p);
  bool log_spaced = false;
  std::vector<double> distances = parse_distances(o, log_spaced);
  std::vector<Variant> variants;
  for (const auto& text : o.variants) variants.push_back(parse_variant(text, o));
  if (variants.empty()) variants.push_back(parse_variant("label=RoPE", o));
  if (o.bound_max < 1) throw ArgumentError(fmt::format("--bound-max must be >= 1, got {}", o.bound_max));
  if (o.bound_max > kMaxBoundScan)
    throw ArgumentError(fmt::format("--bound-max {} is above {:g}: the scan checks every integer distance", o.bound_max,
                                    double(kMaxBoundScan)));
  if (o.context != 0 && (o.context < 2 || o.context > kMaxContext))
    throw ArgumentError(fmt::format("--context must be 2 .. {:g} (each base tried checks every distance below it), got {}",
                                    double(kMaxContext), o.context));

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
  meta["columns"] = {{"variant", "label of the RoPE variant"},
                     {"distance", "relative distance D = t - s"},
                     {"re_integral", "[Ci(D)-Ci(D/B)]/ln B and its generalisation: real expected score, d -> infinity"},
                     {"im_integral", "[Si(D)-Si(D/B)]/ln B and its generalisation: imaginary expected score"},
                     {"re_discrete", "(2/d) sum_n cos(theta_n D)"},
                     {"im_discrete", "(2/d) sum_n sin(theta_n D)"},
                     {"relative_bound", "RoFormer relative upper bound (1/(d/2)) sum_j |S_j|"}};
  meta["note"] = "curves are per unit cos/sin magnitude; multiply by score_scale (m^2) for YaRN's magnitude";
  meta["distances"] = log_spaced ? nlohmann::json{{"log", o.log_range}, {"count", distances.size()}}
                                 : nlohmann::json{{"range", o.range}, {"count", distances.size()}};

  std::string csv = "variant,distance,re_integral,im_integral,re_discrete,im_discrete,relative_bound\n";
  std::vector<plot::DecayCurve> curves(variants.size());
  nlohmann::json described = nlohmann::json::array();
  for (std::size_t i = 0; i < variants.size(); ++i) {
    theory::DecayModel model(variants[i].spec, variants[i].sequence_length);
    described.push_back(describe(variants[i], model));
    curves[i].label = variants[i].label;
    for (double D : distances) {
      auto in = model.integral(D);
      auto di = model.discrete(D);
      double bound = model.relative_bound(D);
      csv += fmt::format("{},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}\n", io::csv_quote(variants[i].label), D, in.re, in.im,
                         di.re, di.im, bound);
      curves[i].distance.push_back(D);
      curves[i].re_integral.push_back(in.re);
      curves[i].im_integral.push_back(in.im);
      curves[i].re_discrete.push_back(di.re);
      curves[i].im_discrete.push_back(di.im);
    }
  }
  meta["variants"] = described;

  const bool report = o.bound || o.context > 0;
  if (report) {
    std::string text = fmt::format("{:<32} {:>22} {:>22} {:>12}\n", "variant", "first D: c_re < 0", "first D: c_im < 0",
                                   "searched to");
    nlohmann::json bounds = nlohmann::json::array();
    for (const auto& v : variants) {
      auto fn = theory::first_negative_distance(v.spec, o.bound_max, v.sequence_length);
      auto show = [](const std::optional<long>& d) { return d ? std::to_string(*d) : std::string("none"); };
      text += fmt::format("{:<32} {:>22} {:>22} {:>12}\n", v.label, show(fn.re), show(fn.im), fn.searched_to);
      nlohmann::json entry = {{"variant", v.label}, {"first_negative_re", fn.re ? nlohmann::json(*fn.re) : nullptr},
                              {"first_negative_im", fn.im ? nlohmann::json(*fn.im) : nullptr},
                              {"searched_to", fn.searched_to}};
      if (o.context > 0) {
        auto b = theory::smallest_base_for_context(v.spec, o.context);
        text += fmt::format(
            "  base keeping c_re >= 0 for all D < {}: threshold {:.6g} by bisection (fails at {:.6g}); lowest "
            "passing base on a 0.1% grid down to {:.6g}: {:.6g}\n",
            o.context, b.base, b.failing_base, b.grid_floor, b.lowest_passing_on_grid);
        entry["context"] = o.context;
        entry["smallest_base"] = b.base;
        entry["failing_base"] = b.failing_base;
        entry["lowest_passing_base_on_grid"] = b.lowest_passing_on_grid;
        entry["grid_floor"] = b.grid_floor;
      }
      bounds.push_back(entry);
    }
    meta["bounds"] = bounds;
    meta["bounds_method"] = "scan of every integer D with exact confirmation of each sign change; base threshold by "
                            "bisection over log(base) (relative 1e-4), then every base on a 0.1% geometric grid down to "
                            "0.8x the threshold is tested, since passing is not monotone in the base";
    fmt::print("{}", text);
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
