// The figure of each kind of analysis output (see figures.hpp). Every number
// drawn is read from the outputs; only the theory curves of `profile` are
// computed, by the same theory code as `ropescope decay`.
#include "plot/figures.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "core/error.hpp"
#include "io/npy.hpp"
#include "plot/gnuplot.hpp"
#include "plot/outputs.hpp"
#include "theory/decay.hpp"

namespace ropescope::plot {
namespace {

const std::vector<std::string> kColours = {"#1f4fd1", "#e08a00", "#d12a1f", "#2a9d3a", "#7a3fb0", "#17becf", "#8c564b", "#e377c2"};
const std::string kReal = "#1f4fd1", kImaginary = "#d12a1f";
const std::vector<std::string> kRealShades = {"#1f4fd1", "#17becf", "#2a9d3a", "#7a3fb0"};
const std::vector<std::string> kImaginaryShades = {"#d12a1f", "#e08a00", "#e377c2", "#8c564b"};

const std::vector<std::string> kDecayColumns = {"variant", "distance", "re_integral", "im_integral",
                                                "re_discrete", "im_discrete", "relative_bound"};
const std::vector<std::string> kPplColumns = {"condition", "L", "stride", "windows", "tokens_scored",
                                              "mean_nll", "ppl", "bits_per_byte", "beyond_training", "curve_ppl"};
const std::vector<std::string> kCurveColumns = {"condition", "kind", "position", "position_end", "mean_nll", "count"};
constexpr std::string_view kDecayWhat = "a decay CSV (`ropescope decay --out`)";
constexpr std::string_view kPplWhat = "a ppl CSV (`ropescope ppl --out PREFIX`: PREFIX.csv)";
constexpr std::string_view kCurveWhat = "a loss-curve CSV (`ropescope ppl --curve T --out PREFIX`: PREFIX_curve.csv)";
constexpr std::string_view kProfileWhat = "a profile summary (`ropescope profile --out PREFIX`: PREFIX_summary.json)";
constexpr std::string_view kAttnWhat = "an attn output (`ropescope attn --out DIR`: DIR or DIR/manifest.json)";

const std::string& cycle(const std::vector<std::string>& colours, std::size_t i) { return colours[i % colours.size()]; }

std::string styled(std::string spec, std::string_view style, std::string_view title) {
  return fmt::format("{} {} title {} noenhanced", spec, style, quote(title));
}

// The label of input i: --labels if given, else `fallback` (from its sidecar).
std::string label_of(const PlotRequest& r, std::size_t i, const std::string& fallback) {
  return r.labels.empty() ? fallback : r.labels[i];
}

FigureSize size_of(const PlotRequest& r, FigureSize fallback) { return r.size.width_px > 0 ? r.size : fallback; }

// Refuses a figure without a single series: the inputs hold no rows that it draws.
void require_series(const std::vector<std::string>& items, const PlotRequest& r, std::string_view what) {
  if (items.empty()) throw ArgumentError(fmt::format("{}: no rows to draw (expected {})", r.inputs[0].string(), what));
}

std::string title_or(const PlotRequest& r, std::string_view fallback) { return quote(r.title.empty() ? fallback : r.title); }

// A vertical dotted line at each training length, labelled on its left; on
// its right when it lies on the plot's left edge (leftmost_x), where a label on
// the left would be clipped or, in a multiplot, land in the panel before.
void mark_training_lengths(Figure& figure, const std::set<long>& lengths, double leftmost_x) {
  int tag = 0;
  for (long length : lengths) {
    ++tag;
    const bool on_left_edge = length <= leftmost_x;
    figure.command(fmt::format("set arrow {} from {}, graph 0 to {}, graph 1 nohead dt 3 lw 1.5 lc rgb 'gray30'\n"
                               "set label {} {} at {}, graph 0.04 {} font ',9' tc rgb 'gray30'",
                               tag, length, length, tag, quote(fmt::format("training length {}", length)), length,
                               on_left_edge ? "left offset 0.5,0" : "right offset -0.5,0"));
  }
}

long training_length_of(const nlohmann::json& sidecar) {
  return sidecar.contains("training_length") && sidecar["training_length"].is_number() ? sidecar["training_length"].get<long>() : 0;
}

// ---- decay ----------------------------------------------------------------

void draw_decay(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<DecayCurve> curves;
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    Table t = read_table(r.inputs[i], kDecayColumns, kDecayWhat);
    std::map<std::string, std::size_t> by_variant;
    const std::size_t first = curves.size();
    for (std::size_t row = 0; row < t.rows.size(); ++row) {
      const std::string& variant = t.text(row, "variant");
      auto [it, added] = by_variant.emplace(variant, curves.size());
      if (added) curves.push_back({variant, {}, {}, {}, {}, {}});
      DecayCurve& c = curves[it->second];
      c.distance.push_back(t.number(row, "distance"));
      c.re_discrete.push_back(t.number(row, "re_discrete"));
      c.im_discrete.push_back(t.number(row, "im_discrete"));
      c.re_integral.push_back(t.number(row, "re_integral"));
      c.im_integral.push_back(t.number(row, "im_integral"));
    }
    if (curves.size() == first) throw ArgumentError(fmt::format("{}: no rows (expected {})", r.inputs[i].string(), kDecayWhat));
    if (r.inputs.size() > 1 || !r.labels.empty()) {
      const std::string file_label = label_of(r, i, r.inputs[i].stem().string());
      for (std::size_t k = first; k < curves.size(); ++k)
        curves[k].label = curves.size() - first == 1 ? file_label : file_label + " " + curves[k].label;
    }
  }
  draw_decay_curves(curves, image, size_of(r, {1200, 500}), r.title);
}

// ---- ppl, noise, ablation: rows of `ropescope ppl` CSVs --------------------

struct PplRun {
  std::string label;
  long training_length = 0;
  Table table;
};

std::vector<PplRun> read_ppl_runs(const PlotRequest& r) {
  std::vector<PplRun> runs;
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    Table t = read_table(r.inputs[i], kPplColumns, kPplWhat);
    nlohmann::json sidecar = read_sidecar(r.inputs[i]);
    runs.push_back({label_of(r, i, label_from_sidecar(sidecar, r.inputs[i])), training_length_of(sidecar), std::move(t)});
  }
  return runs;
}

// The conditions of `runs` in order of appearance, restricted to `wanted` when given
// (each wanted condition must appear in some run).
std::vector<std::string> conditions_of(const std::vector<PplRun>& runs, const std::vector<std::string>& wanted,
                                       std::string_view column = "condition") {
  std::vector<std::string> found;
  for (const auto& run : runs)
    for (std::size_t row = 0; row < run.table.rows.size(); ++row) {
      const std::string& c = run.table.text(row, column);
      if (std::find(found.begin(), found.end(), c) == found.end()) found.push_back(c);
    }
  if (wanted.empty()) return found;
  for (const auto& w : wanted)
    if (std::find(found.begin(), found.end(), w) == found.end()) {
      std::string list;
      for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
      throw ArgumentError(fmt::format("--conditions: '{}' is in none of the inputs (they hold: {})", w, list));
    }
  return wanted;
}

void draw_ppl(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<PplRun> runs = read_ppl_runs(r);
  std::vector<std::string> conditions = conditions_of(runs, r.conditions);
  std::set<long> training;
  bool has_bpb = false;
  double shortest = std::numeric_limits<double>::infinity(), longest = 0;
  for (const auto& run : runs) {
    if (run.training_length > 0) training.insert(run.training_length);
    for (std::size_t row = 0; row < run.table.rows.size(); ++row) {
      has_bpb |= !std::isnan(run.table.number(row, "bits_per_byte"));
      shortest = std::min(shortest, run.table.number(row, "L"));
      longest = std::max(longest, run.table.number(row, "L"));
    }
  }
  // A training length outside the drawn lengths would land at a wrong place in the second panel.
  std::erase_if(training, [&](long t) { return t < shortest || t > longest; });
  Figure figure(image, size_of(r, {has_bpb ? 1300 : 750, 500}));
  figure.command(fmt::format("set multiplot layout 1,{} title {} noenhanced\nset grid\nset key top left opaque font ',9'\n"
                             "set logscale x 2\nset xlabel 'context length L (tokens)'",
                             has_bpb ? 2 : 1, title_or(r, "Perplexity vs context length")));
  mark_training_lengths(figure, training, shortest);
  for (int panel = 0; panel < (has_bpb ? 2 : 1); ++panel) {
    const char* column = panel == 0 ? "ppl" : "bits_per_byte";
    figure.command(panel == 0 ? "set ylabel 'perplexity'\nset logscale y" : "set ylabel 'bits per byte'\nunset logscale y");
    std::vector<std::string> items;
    for (std::size_t k = 0; k < runs.size(); ++k)
      for (std::size_t c = 0; c < conditions.size(); ++c) {
        std::vector<std::pair<double, double>> pts;
        for (std::size_t row = 0; row < runs[k].table.rows.size(); ++row)
          if (runs[k].table.text(row, "condition") == conditions[c])
            pts.emplace_back(runs[k].table.number(row, "L"), runs[k].table.number(row, column));
        if (pts.empty()) continue;
        std::sort(pts.begin(), pts.end());
        std::vector<double> x, y;
        for (auto [a, b] : pts) x.push_back(a), y.push_back(b);
        std::string label = conditions.size() == 1 && conditions[0] == "clean" ? runs[k].label : runs[k].label + " " + conditions[c];
        items.push_back(styled(figure.points(x, y),
                               fmt::format("with linespoints lw 2 pt 7 ps 0.7 dt {} lc rgb '{}'", c + 1, cycle(kColours, k)), label));
      }
    require_series(items, r, kPplWhat);
    figure.plot(items);
  }
  figure.command("unset multiplot");
  figure.finish();
}

// The noise std of a condition "noise_real_std=S" / "noise_imag_std=S" of `kind`, 0 for "clean", NaN otherwise.
double noise_std(const std::string& condition, const std::string& kind) {
  if (condition == "clean") return 0;
  const std::string prefix = "noise_" + kind + "_std=";
  if (condition.rfind(prefix, 0) != 0) return std::nan("");
  try {
    return std::stod(condition.substr(prefix.size()));
  } catch (const std::exception&) {
    return std::nan("");  // not a noise condition this figure reads
  }
}

void draw_noise(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<PplRun> runs = read_ppl_runs(r);
  struct Line {
    std::string label, style;
    std::vector<double> x, y;
  };
  std::vector<Line> lines;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const Table& t = runs[k].table;
    std::set<long> lengths;
    bool noisy = false;
    for (std::size_t row = 0; row < t.rows.size(); ++row) {
      lengths.insert(static_cast<long>(t.number(row, "L")));
      noisy |= t.text(row, "condition").rfind("noise_", 0) == 0;
    }
    if (!noisy)
      throw ArgumentError(fmt::format("{}: no noise conditions (expected a ppl CSV of `ropescope ppl --noise-real/--noise-imag`)",
                                      r.inputs[k].string()));
    std::size_t length_index = 0;
    for (long length : lengths) {
      for (std::string kind : {"real", "imag"}) {
        std::vector<std::pair<double, double>> pts;
        for (std::size_t row = 0; row < t.rows.size(); ++row) {
          double s = noise_std(t.text(row, "condition"), kind);
          if (!std::isnan(s) && static_cast<long>(t.number(row, "L")) == length) pts.emplace_back(s, t.number(row, "ppl"));
        }
        if (pts.size() < 2) continue;  // only the clean point: this component was not perturbed
        std::sort(pts.begin(), pts.end());
        Line line{fmt::format("{}{}, L = {}", runs.size() > 1 ? runs[k].label + ": " : "",
                              kind == "real" ? "noise on real queries" : "noise on imaginary queries", length),
                  fmt::format("with linespoints lw 2 pt {} ps 0.8 dt {} lc rgb '{}'", 7 + k, length_index + 1,
                              kind == "real" ? cycle(kRealShades, k) : cycle(kImaginaryShades, k)),
                  {}, {}};
        for (auto [a, b] : pts) line.x.push_back(a), line.y.push_back(b);
        lines.push_back(std::move(line));
      }
      ++length_index;
    }
  }
  Figure figure(image, size_of(r, {900, 550}));
  figure.command(fmt::format("set title {} noenhanced\nset grid\nset key top left opaque font ',9'\nset logscale y\n"
                             "set xlabel 'noise std'\nset ylabel 'perplexity'",
                             title_or(r, "Gaussian noise on the real vs imaginary query component")));
  std::vector<std::string> items;
  for (const auto& line : lines) items.push_back(styled(figure.points(line.x, line.y), line.style, line.label));
  require_series(items, r, "noise conditions at two or more std values");
  figure.plot(items);
  figure.finish();
}

void draw_ablation(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<PplRun> runs = read_ppl_runs(r);
  std::vector<std::string> conditions = r.conditions;
  if (conditions.empty()) {
    for (const auto& c : conditions_of(runs, {}))
      if (c == "clean" || c.rfind("ablate_", 0) == 0) conditions.push_back(c);
  } else {
    conditions_of(runs, conditions);
  }
  for (std::size_t k = 0; k < runs.size(); ++k) {
    bool ablated = false;
    for (std::size_t row = 0; row < runs[k].table.rows.size(); ++row) ablated |= runs[k].table.text(row, "condition").rfind("ablate_", 0) == 0;
    if (!ablated)
      throw ArgumentError(fmt::format("{}: no ablate_* conditions (expected a ppl CSV of `ropescope ppl --ablate`)", r.inputs[k].string()));
  }
  std::set<long> lengths;
  long training = 0;
  for (const auto& run : runs) {
    for (std::size_t row = 0; row < run.table.rows.size(); ++row) lengths.insert(static_cast<long>(run.table.number(row, "L")));
    training = std::max(training, run.training_length);
  }
  struct Bars {
    std::string label;
    std::vector<double> x, y;
  };
  std::vector<Bars> series;
  for (const auto& run : runs)
    for (const auto& c : conditions) series.push_back({run.label + " " + c, {}, {}});
  const double width = 0.8 / static_cast<double>(series.size());
  std::string xtics;
  std::size_t group = 0;
  for (long length : lengths) {
    xtics += fmt::format("{}{} {}", xtics.empty() ? "" : ", ",
                         quote(training > 0 && length > training ? fmt::format("L = {} (> training {})", length, training)
                                                                 : fmt::format("L = {}", length)),
                         group);
    std::size_t s = 0;
    for (const auto& run : runs)
      for (const auto& c : conditions) {
        for (std::size_t row = 0; row < run.table.rows.size(); ++row)
          if (run.table.text(row, "condition") == c && static_cast<long>(run.table.number(row, "L")) == length) {
            series[s].x.push_back(static_cast<double>(group) - 0.4 + width * (static_cast<double>(s) + 0.5));
            series[s].y.push_back(run.table.number(row, "ppl"));
          }
        ++s;
      }
    ++group;
  }
  Figure figure(image, size_of(r, {1000, 550}));
  figure.command(fmt::format("set title {} noenhanced\nset grid ytics\nset key top left opaque font ',9'\nset logscale y\n"
                             "set ylabel 'perplexity'\nset xtics ({})\nset xrange [-0.6:{}]\nset yrange [1:*]\n"
                             "set boxwidth {}\nset style fill solid 1.0 border lc rgb 'gray20'",
                             title_or(r, "Perplexity with real or imaginary heads ablated"), xtics,
                             static_cast<double>(lengths.size()) - 0.4, width * 0.95));
  std::vector<std::string> items;
  for (std::size_t s = 0; s < series.size(); ++s)
    items.push_back(styled(figure.points(series[s].x, series[s].y), fmt::format("with boxes lc rgb '{}'", cycle(kColours, s)),
                           series[s].label));
  figure.plot(items);
  figure.finish();
}

// ---- curve ------------------------------------------------------------------

void draw_curve(const PlotRequest& r, io::AtomicOutput& image) {
  struct Run {
    std::string label;
    Table table;
  };
  std::vector<Run> runs;
  std::set<long> training;
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    Table t = read_table(r.inputs[i], kCurveColumns, kCurveWhat);
    nlohmann::json sidecar = read_sidecar(r.inputs[i]);
    if (long l = training_length_of(sidecar); l > 0) training.insert(l);
    runs.push_back({label_of(r, i, label_from_sidecar(sidecar, r.inputs[i])), std::move(t)});
  }
  std::vector<std::string> found;
  for (const auto& run : runs)
    for (std::size_t row = 0; row < run.table.rows.size(); ++row)
      if (std::find(found.begin(), found.end(), run.table.text(row, "condition")) == found.end())
        found.push_back(run.table.text(row, "condition"));
  std::vector<std::string> conditions = r.conditions.empty() ? found : r.conditions;
  for (const auto& c : conditions)
    if (std::find(found.begin(), found.end(), c) == found.end())
      throw ArgumentError(fmt::format("--conditions: '{}' is in none of the inputs", c));
  Figure figure(image, size_of(r, {900, 550}));
  figure.command(fmt::format("set title {} noenhanced\nset grid\nset key top left opaque font ',9'\nset logscale x 2\n"
                             "set xlabel 'target position in the window (log bins)'\nset ylabel 'mean NLL (nats per token)'",
                             title_or(r, "Loss by position in the window")));
  mark_training_lengths(figure, training, 1);  // positions start at 1
  std::vector<std::string> items;
  for (std::size_t k = 0; k < runs.size(); ++k)
    for (std::size_t c = 0; c < conditions.size(); ++c) {
      std::vector<double> x, y;
      const Table& t = runs[k].table;
      for (std::size_t row = 0; row < t.rows.size(); ++row)
        if (t.text(row, "kind") == "log_bin" && t.text(row, "condition") == conditions[c]) {
          x.push_back(std::sqrt(t.number(row, "position") * t.number(row, "position_end")));
          y.push_back(t.number(row, "mean_nll"));
        }
      if (x.empty()) continue;
      std::string label = conditions.size() == 1 && conditions[0] == "clean" ? runs[k].label : runs[k].label + " " + conditions[c];
      items.push_back(styled(figure.points(x, y),
                             fmt::format("with linespoints lw 2 pt 7 ps 0.6 dt {} lc rgb '{}'", c + 1, cycle(kColours, k)), label));
    }
  require_series(items, r, kCurveWhat);
  figure.plot(items);
  figure.finish();
}

// ---- profile, meandist: `ropescope profile` summaries ------------------------

struct ProfileRun {
  std::filesystem::path path;
  std::string label;
  nlohmann::json summary, sidecar;
  std::vector<double> distance;  // bin midpoints
};

std::vector<double> numbers(const nlohmann::json& array) {
  std::vector<double> out;
  for (const auto& v : array) out.push_back(v.is_number() ? v.get<double>() : std::nan(""));
  return out;
}

// Profile runs share distance axes (one window, the same layers); mean-distance panels need not.
std::vector<ProfileRun> read_profile_runs(const PlotRequest& r, bool shared_axes) {
  std::vector<ProfileRun> runs;
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    const auto& path = r.inputs[i];
    if (path.extension() != ".json")
      throw ArgumentError(fmt::format("{}: not {}", path.string(), kProfileWhat));
    nlohmann::json summary = read_json(path, kProfileWhat);
    if (!summary.is_object() || !summary.contains("layers") || !summary.contains("heads") || !summary.contains("window") ||
        !summary.contains("bins"))
      throw ArgumentError(fmt::format("{}: not {}", path.string(), kProfileWhat));
    ProfileRun run{path, "", summary, read_sidecar(path), {}};
    run.label = label_of(r, i, label_from_sidecar(run.sidecar, path));
    if (shared_axes) {
      const std::string name = path.filename().string(), suffix = "_summary.json";
      if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
        throw ArgumentError(fmt::format("{}: expected a name PREFIX_summary.json, beside PREFIX_bins.npy", path.string()));
      std::filesystem::path bins_path = path.parent_path() / (name.substr(0, name.size() - suffix.size()) + "_bins.npy");
      if (!std::filesystem::exists(bins_path))
        throw ArgumentError(fmt::format("{}: missing (expected the distance bins of {})", bins_path.string(), path.string()));
      io::NpyIntegers bins = io::read_npy_integers(bins_path);
      if (bins.shape.size() != 2 || bins.shape[1] != 2)
        throw FormatError(fmt::format("{}: expected bins of shape (count, 2)", bins_path.string()));
      for (std::size_t b = 0; b < bins.shape[0]; ++b)
        run.distance.push_back(0.5 * static_cast<double>(bins.values[2 * b] + bins.values[2 * b + 1]));
    }
    if (shared_axes && !runs.empty() && summary["window"] != runs[0].summary["window"])
      throw ArgumentError(fmt::format("{}: window {} differs from {}'s window {}; runs on one figure must share the window",
                                      path.string(), summary["window"].dump(), runs[0].path.string(),
                                      runs[0].summary["window"].dump()));
    if (shared_axes && !runs.empty() && summary["layers"].size() != runs[0].summary["layers"].size())
      throw ArgumentError(fmt::format("{}: {} layers, {} has {}; runs on one profile figure must have the same layers",
                                      path.string(), summary["layers"].size(), runs[0].path.string(),
                                      runs[0].summary["layers"].size()));
    runs.push_back(std::move(run));
  }
  return runs;
}

void draw_profile(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<ProfileRun> runs = read_profile_runs(r, true);
  const std::size_t layers = runs[0].summary["layers"].size();
  const long window = runs[0].summary["window"].get<long>();
  // Theory c_re, c_im (exact discrete sums) for each distinct (head dim, base) of unscaled RoPE.
  struct Theory {
    int head_dim;
    double base;
    std::vector<double> distance, re, im;
  };
  std::vector<Theory> theories;
  for (const auto& run : runs) {
    const auto& model = run.sidecar.value("model", nlohmann::json::object());
    if (!model.contains("head_dim") || !model.contains("rope_theta") || model.value("rope_scaling", "") != "none") continue;
    Theory t{model["head_dim"].get<int>(), model["rope_theta"].get<double>(), {}, {}, {}};
    if (std::any_of(theories.begin(), theories.end(), [&](const Theory& o) { return o.head_dim == t.head_dim && o.base == t.base; }))
      continue;
    theory::RopeSpec spec;
    spec.head_dim = t.head_dim;
    spec.base = t.base;
    theory::DecayModel decay(spec);
    for (double d = 1; d < static_cast<double>(window); d *= 1.05) {
      auto s = decay.discrete(std::floor(d));
      t.distance.push_back(std::floor(d));
      t.re.push_back(s.re);
      t.im.push_back(s.im);
    }
    theories.push_back(std::move(t));
  }
  Figure figure(image, size_of(r, {static_cast<int>(360 * layers + 120), 760}));
  figure.command(fmt::format("set multiplot layout 2,{} title {} noenhanced\nset grid\nset key top right noopaque font ',8'\n"
                             "set logscale x\nset xrange [1:{}]\nset xlabel 'distance D = t - s'",
                             layers,
                             title_or(r, fmt::format("Attention by distance, real vs imaginary heads (window {})", window)),
                             window));
  for (int row = 0; row < 2; ++row) {
    const bool prob = row == 0;
    for (std::size_t layer = 0; layer < layers; ++layer) {
      figure.command(fmt::format("set title 'Layer {}: mean {}'", layer, prob ? "probability" : "score"));
      if (prob)
        figure.command("set logscale y\nset format y '10^{%T}'\nset ylabel 'mean probability'\nunset y2tics\nunset y2label\nset ytics mirror");
      else
        figure.command(fmt::format("unset logscale y\nset format y '% g'\nset ylabel 'mean score'\nset ytics nomirror\n{}",
                                   theories.empty() ? "unset y2tics\nunset y2label" : "set y2tics\nset y2label 'theory c(D)'\nset y2range [-0.3:1]"));
      std::vector<std::string> items;
      for (std::size_t k = 0; k < runs.size(); ++k) {
        const auto& entry = runs[k].summary["layers"][layer];
        for (bool real : {true, false}) {
          const char* kind = real ? "real" : "imaginary";
          if (!entry.contains(kind)) continue;
          std::vector<double> y = numbers(entry[kind][prob ? "mean_prob" : "mean_score"]);
          if (y.size() != runs[k].distance.size())
            throw FormatError(fmt::format("{}: layer {} {} has {} bins; its bins file has {}", runs[k].path.string(), layer, kind,
                                          y.size(), runs[k].distance.size()));
          std::vector<double> x = runs[k].distance;
          for (auto& d : x)
            if (d <= 0) d = std::nan("");  // D = 0 is off a log axis
          items.push_back(styled(figure.points(x, y),
                                 fmt::format("with lines lw 2 dt {} lc rgb '{}'", k + 1,
                                             real ? cycle(kRealShades, k) : cycle(kImaginaryShades, k)),
                                 runs.size() > 1 ? fmt::format("{} {}", runs[k].label, kind) : fmt::format("{} heads", kind)));
        }
      }
      if (!prob)
        for (const auto& t : theories) {
          std::string suffix = theories.size() > 1 ? fmt::format(" (d {}, base {:g})", t.head_dim, t.base) : "";
          items.push_back(styled(figure.points(t.distance, t.re), "axes x1y2 with lines lw 1 dt 3 lc rgb 'gray20'",
                                 "c_re theory" + suffix));
          items.push_back(styled(figure.points(t.distance, t.im), "axes x1y2 with lines lw 1 dt 4 lc rgb 'gray50'",
                                 "c_im theory" + suffix));
        }
      figure.plot(items);
    }
  }
  figure.command("unset multiplot");
  figure.finish();
}

void draw_meandist(const PlotRequest& r, io::AtomicOutput& image) {
  std::vector<ProfileRun> runs = read_profile_runs(r, false);
  double top = 0;
  for (const auto& run : runs)
    for (const auto& head : run.summary["heads"]) top = std::max(top, head.value("mean_distance", 0.0));
  Figure figure(image, size_of(r, {static_cast<int>(520 * runs.size() + 80), 460}));
  figure.command(fmt::format("set multiplot layout 1,{} title {} noenhanced\nset grid ytics\nset key top left opaque font ',9'\n"
                             "set style fill solid 1.0 noborder\nset boxwidth 0.8\nset yrange [0:{}]\n"
                             "set ylabel 'mean attention distance (tokens)'\nset xlabel 'head, grouped by layer'",
                             runs.size(), title_or(r, "Mean attention distance per head"), top * 1.15));
  for (const auto& run : runs) {
    std::size_t heads_per_layer = 0;
    for (const auto& head : run.summary["heads"]) heads_per_layer = std::max<std::size_t>(heads_per_layer, head["head"].get<std::size_t>() + 1);
    std::vector<double> xr, yr, xi, yi;
    std::string xtics;
    std::set<std::size_t> layers;
    for (const auto& head : run.summary["heads"]) {
      const std::size_t layer = head["layer"].get<std::size_t>(), h = head["head"].get<std::size_t>();
      const double x = static_cast<double>(layer * (heads_per_layer + 1) + h);
      (head["kind"] == "imaginary" ? xi : xr).push_back(x);
      (head["kind"] == "imaginary" ? yi : yr).push_back(head["mean_distance"].get<double>());
      layers.insert(layer);
    }
    for (std::size_t layer : layers)
      xtics += fmt::format("{}'layer {}' {}", xtics.empty() ? "" : ", ", layer,
                           static_cast<double>(layer * (heads_per_layer + 1)) + 0.5 * static_cast<double>(heads_per_layer - 1));
    figure.command(fmt::format("set title {} noenhanced\nset xtics ({})\nset xrange [-1:{}]", quote(fmt::format("{} (window {})", run.label, run.summary["window"].dump())),
                               xtics, layers.size() * (heads_per_layer + 1) - 1));
    figure.plot({styled(figure.points(xr, yr), fmt::format("with boxes lc rgb '{}'", kReal), "real heads"),
                 styled(figure.points(xi, yi), fmt::format("with boxes lc rgb '{}'", kImaginary), "imaginary heads")});
  }
  figure.command("unset multiplot");
  figure.finish();
}

// ---- attn ----------------------------------------------------------------------

// Tick labels "('text' position, ...)" for positions first .. first+count-1
// from the manifest's token_text (written by `attn --text`), or "" when it has
// none. Control characters show as U+00B7 so a newline token stays one label.
std::string token_ticks(const nlohmann::json& manifest, long first, std::size_t count) {
  if (!manifest.contains("token_text")) return "";
  const auto& t = manifest["token_text"];
  if (!t.contains("first_position") || !t.contains("text") || !t["text"].is_array()) return "";
  const long base = t["first_position"].get<long>();
  std::vector<std::string> items;
  for (std::size_t i = 0; i < count; ++i) {
    const long at = first + static_cast<long>(i) - base;
    if (at < 0 || at >= static_cast<long>(t["text"].size()) || !t["text"][at].is_string()) return "";
    std::string label;
    for (char c : t["text"][at].get<std::string>()) label += static_cast<unsigned char>(c) < 0x20 ? "\xc2\xb7" : std::string(1, c);
    items.push_back(fmt::format("{} {}", quote(label), first + static_cast<long>(i)));
  }
  return "(" + fmt::format("{}", fmt::join(items, ", ")) + ")";
}

void draw_attn(const PlotRequest& r, io::AtomicOutput& image) {
  if (r.inputs.size() != 1) throw ArgumentError("plot attn: expected one attn output directory");
  std::filesystem::path manifest_path = r.inputs[0];
  if (std::filesystem::is_directory(manifest_path)) manifest_path /= "manifest.json";
  nlohmann::json manifest = read_json(manifest_path, kAttnWhat);
  if (!manifest.is_object() || !manifest.contains("maps") || !manifest.contains("arrays") ||
      !manifest["arrays"].contains("probabilities"))
    throw ArgumentError(fmt::format("{}: not {}", manifest_path.string(), kAttnWhat));
  FloatArray probs = read_npy_float32(manifest_path.parent_path() / manifest["arrays"]["probabilities"].get<std::string>());
  const auto& maps = manifest["maps"];
  if (probs.shape.size() != 3 || probs.shape[0] != maps.size())
    throw FormatError(fmt::format("{}: {} maps in the manifest, the probabilities array does not hold them as [map, row, col]",
                                  manifest_path.string(), maps.size()));
  const std::size_t rows = probs.shape[1], cols = probs.shape[2];
  std::vector<long> layers;
  std::map<long, std::size_t> per_layer;
  for (const auto& m : maps) {
    long layer = m["layer"].get<long>();
    if (std::find(layers.begin(), layers.end(), layer) == layers.end()) layers.push_back(layer);
    ++per_layer[layer];
  }
  std::size_t columns = 0;
  for (auto [layer, n] : per_layer) columns = std::max(columns, n);
  Figure figure(image, size_of(r, {static_cast<int>(290 * columns + 40), static_cast<int>(270 * layers.size() + 60)}));
  figure.command(fmt::format("set multiplot layout {},{} title {} noenhanced\n"
                             "set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')\n"
                             "set size ratio -1\nset cbrange [0:*]\nset tics out font ',8'\nset xlabel 'key position' font ',9'\n"
                             "set ylabel 'query position' font ',9'\nset title font ',10'",
                             layers.size(), columns,
                             title_or(r, "Attention probabilities: real heads beside their imaginary twins")));
  for (long layer : layers) {
    std::size_t drawn = 0;
    for (std::size_t index = 0; index < maps.size(); ++index) {
      const auto& m = maps[index];
      if (m["layer"].get<long>() != layer) continue;
      const double q0 = m["window"]["query_positions"][0].get<double>(), k0 = m["window"]["key_positions"][0].get<double>();
      std::vector<float> values(probs.values.begin() + static_cast<std::ptrdiff_t>(index * rows * cols),
                                probs.values.begin() + static_cast<std::ptrdiff_t>((index + 1) * rows * cols));
      figure.command(fmt::format("set title 'Layer {} head {} ({})'\nset xrange [{}:{}]\nset yrange [{}:{}]", layer,
                                 m["head"].get<long>(), m["kind"].get<std::string>(), k0 - 0.5, k0 + cols - 0.5,
                                 q0 + rows - 0.5, q0 - 0.5));
      // Token text on both axes when the manifest has it (up to 64 positions; beyond, numbers stay readable).
      const std::string xt = cols <= 64 ? token_ticks(manifest, static_cast<long>(k0), cols) : "";
      const std::string yt = rows <= 64 ? token_ticks(manifest, static_cast<long>(q0), rows) : "";
      if (!xt.empty()) figure.command("set xtics " + xt + " rotate by 90 right noenhanced");
      if (!yt.empty()) figure.command("set ytics " + yt + " noenhanced");
      figure.plot({figure.image(values, rows, cols, k0, q0) + " with image notitle"});
      ++drawn;
    }
    for (; drawn < columns; ++drawn) figure.command("set multiplot next");
  }
  figure.command("unset multiplot");
  figure.finish();
}

}  // namespace

void draw_decay_curves(const std::vector<DecayCurve>& curves, io::AtomicOutput& image, FigureSize size,
                       const std::string& title) {
  // Log-spaced distances (`decay --log`) are drawn on a log axis, without D = 0.
  bool log_x = false;
  for (const auto& c : curves) {
    const auto& d = c.distance;
    const std::size_t i = d.size() > 3 && d[0] == 0 ? 1 : 0;
    if (d.size() > i + 2 && d[i] > 0 && (d[i + 2] - d[i + 1]) > 1.01 * (d[i + 1] - d[i])) log_x = true;
  }
  Figure figure(image, size);
  figure.command(fmt::format("set multiplot layout 1,2{}\nset grid lc rgb '#dddddd'\nset key top right box opaque\n"
                             "set xlabel 'relative distance D'\nset autoscale xfix\n{}",
                             title.empty() ? "" : " title " + quote(title) + " noenhanced",
                             log_x ? "set logscale x\nset format x '10^{%L}'" : ""));
  const bool labelled = curves.size() > 1;
  for (bool real : {true, false}) {
    figure.command(fmt::format("set title {}\nset ylabel {}",
                               quote(real ? "Real attention (RoPE): expected score" : "Imaginary attention (RoPE++): expected score"),
                               quote(real ? "c_{re}(D)" : "c_{im}(D)")));
    std::vector<std::string> items;
    for (std::size_t k = 0; k < curves.size(); ++k) {
      const DecayCurve& c = curves[k];
      std::vector<double> distance = c.distance;
      if (log_x)
        for (auto& d : distance)
          if (d <= 0) d = std::nan("");
      const std::string& colour = cycle(kColours, k);
      items.push_back(styled(figure.points(distance, real ? c.re_discrete : c.im_discrete),
                             fmt::format("with lines lw 1 lc rgb '#80{}'", colour.substr(1)),
                             labelled ? c.label + " (discrete)" : "discrete sum"));
      items.push_back(styled(figure.points(distance, real ? c.re_integral : c.im_integral),
                             fmt::format("with lines lw 2.5 lc rgb '{}'", colour), labelled ? c.label + " (integral)" : "integral (Si/Ci)"));
    }
    figure.plot(items);
  }
  figure.command("unset multiplot");
  figure.finish();
}

const std::vector<PlotKind>& plot_kinds() {
  static const std::vector<PlotKind> kinds = {
      {"decay", std::string(kDecayWhat)},   {"profile", std::string(kProfileWhat)},
      {"meandist", std::string(kProfileWhat)}, {"ppl", std::string(kPplWhat)},
      {"curve", std::string(kCurveWhat)},   {"attn", std::string(kAttnWhat)},
      {"noise", std::string(kPplWhat) + " with --noise-real/--noise-imag conditions"},
      {"ablation", std::string(kPplWhat) + " with --ablate conditions"}};
  return kinds;
}

void draw(const PlotRequest& r) {
  check_plot_path(r.output);
  if (r.inputs.empty()) throw ArgumentError(fmt::format("plot {}: no input given", r.kind));
  if (!r.labels.empty() && r.labels.size() != r.inputs.size())
    throw ArgumentError(fmt::format("--labels: {} labels for {} inputs; expected one per input", r.labels.size(), r.inputs.size()));
  const std::map<std::string, void (*)(const PlotRequest&, io::AtomicOutput&)> kinds = {
      {"decay", draw_decay}, {"ppl", draw_ppl},         {"noise", draw_noise},       {"ablation", draw_ablation},
      {"curve", draw_curve}, {"profile", draw_profile}, {"meandist", draw_meandist}, {"attn", draw_attn}};
  if (auto it = kinds.find(r.kind); it != kinds.end()) {
    std::vector<io::RunInput> inputs;
    for (const auto& in : r.inputs) inputs.push_back({in, "plot input"});
    io::OutputTransaction outputs({r.output}, inputs);
    try {
      it->second(r, outputs.output(r.output));
      outputs.commit();
      return;
    } catch (const nlohmann::json::exception& e) {  // a summary or manifest without the fields it should have
      std::string files;
      for (const auto& in : r.inputs) files += (files.empty() ? "" : ", ") + in.string();
      throw FormatError(fmt::format("{}: unexpected content for plot {}: {}", files, r.kind, e.what()));
    }
  }
  std::string names;
  for (const auto& k : plot_kinds()) names += (names.empty() ? "" : ", ") + k.name;
  throw ArgumentError(fmt::format("plot: unknown kind '{}' (expected one of: {})", r.kind, names));
}

}  // namespace ropescope::plot
