// The perplexity analysis and its report (see perplexity_report.hpp).
#include "analysis/perplexity_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>

#include "analysis/query_noise.hpp"
#include "core/error.hpp"
#include "io/csv.hpp"
#include "io/npy.hpp"
#include "theory/rope_spec_text.hpp"

namespace ropescope::analysis {

const char* const kPerplexityDefinition =
    "Strided sliding-window perplexity at window length L and stride S (default L/2; with a stride fraction F, "
    "floor(F L)): windows of exactly L tokens start at 0, S, 2S, ... while they fit, plus one window [N-L, N) for the tail when (N-L) is not a multiple of S. "
    "The first window scores all its L-1 targets; each later window scores only the targets after the previous "
    "window's end (its last S tokens, fewer for the tail window), never its own first token. For S < L every token "
    "except the first is scored exactly once (tokens_scored = N-1). mean_nll = (sum of -ln p(token | preceding tokens "
    "in its window) over the scored tokens) / tokens_scored, in nats; ppl = exp(mean_nll); bits_per_byte = "
    "mean_nll / ln 2 for byte-level input (one token per byte), and for --text the sum of -ln p over the scored "
    "tokens / ln 2 / the text bytes those tokens stand for (the tokenizer's bytes per token, which partition the text).";
const char* const kCurveDefinition =
    "Per-position loss curve at length T: non-overlapping windows [kT, (k+1)T), k < min(--max-windows, N/T), one "
    "forward pass each; mean_nll at target position p (1..T-1) is the mean over windows of -ln p(token p | tokens "
    "0..p-1 of the window). Log bins [1,2), [2,4), [4,8), ... (cut at T) average every (window, position) pair in the "
    "bin. curve_ppl at L = exp(mean of the curve over positions 1..L-1).";

namespace {

// A scaling value: comma-separated key=value pairs (the keys of `decay
// --variant`) applied on top of the model's own RoPE spec. When a scaling type
// is given and the model has none, `original` defaults to the model's
// max_position_embeddings.
Condition parse_scaling(const std::string& text, const model::ModelConfig& config, const backend::ForwardOptions& base) {
  theory::RopeSpec spec = config.rope;
  auto& sc = spec.scaling;
  if (sc.type == theory::ScalingType::none) sc.original_max_position = config.max_position_embeddings;
  const std::string label = theory::apply_rope_spec_text(text, "scaling", spec, false).label;
  Condition c{label.empty() ? text : label, nullptr, base};
  c.options.rope_override = spec;
  c.description = {{"kind", "rope_override"},
                   {"spec", text},
                   {"base", spec.base},
                   {"partial_rotary_factor", spec.partial_rotary_factor},
                   {"scaling_type", theory::to_string(sc.type)},
                   {"factor", sc.factor},
                   {"original_max_position", sc.original_max_position}};
  return c;
}

// An ablate value: the condition's name and the heads it zeroes.
std::pair<std::string, backend::HeadAblation> parse_ablation(const std::string& a) {
  backend::HeadAblation ablation;
  ablation.all_real = a == "real" || a == "all";
  ablation.all_imaginary = a == "imaginary" || a == "imag" || a == "all";
  if (a == "real") return {"ablate_real", ablation};
  if (ablation.all_imaginary) return {a == "all" ? "ablate_all" : "ablate_imag", ablation};
  throw ArgumentError("ablate", fmt::format("'{}' is not one of real, imaginary, all", a));
}

}  // namespace

void check_perplexity_request(const PerplexityRequest& r) {
  if (r.lengths.empty()) throw ArgumentError("lengths", "give at least one window length");
  for (long L : r.lengths)
    if (L < 2) throw ArgumentError("lengths", fmt::format("window length must be >= 2, got {}", L));
  for (std::size_t i = 0; i < r.lengths.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (r.lengths[i] == r.lengths[j]) throw ArgumentError("lengths", fmt::format("{} is given twice", r.lengths[i]));
  if (r.stride) {
    if (*r.stride < 1) throw ArgumentError("stride", fmt::format("must be >= 1, got {}", *r.stride));
    for (long L : r.lengths)
      if (*r.stride > L) throw ArgumentError("stride", fmt::format("{} is longer than the window length {}", *r.stride, L));
  }
  if (r.stride_fraction) {
    if (r.stride) throw ArgumentError("stride_fraction", "give a stride or a stride fraction, not both");
    if (!(*r.stride_fraction > 0.0 && *r.stride_fraction <= 1.0))
      throw ArgumentError("stride_fraction", fmt::format("must be in (0, 1], got {}", *r.stride_fraction));
  }
  if (r.curve != 0 && r.curve < 2) throw ArgumentError("curve", fmt::format("must be >= 2, got {}", r.curve));
  if (r.max_windows < 0) throw ArgumentError("max_windows", fmt::format("must be >= 0, got {}", r.max_windows));
  if (r.max_windows != 0 && r.curve == 0)
    throw ArgumentError("max_windows", "limits the curve windows: give a curve length too");
  for (double s : r.noise_imag) check_noise_std("noise_imag", s);
  for (double s : r.noise_real) check_noise_std("noise_real", s);
  checked_seed(r.seed);
  for (const auto& a : r.ablate) parse_ablation(a);
}

std::vector<Condition> perplexity_conditions(const PerplexityRequest& r, const model::Model& model) {
  backend::ForwardOptions base;
  base.angles = r.angles;
  std::vector<Condition> conditions{{"clean", {{"kind", "clean"}}, base}};
  const bool rope = model.layout.variant == model::Variant::rope;
  auto add_noise = [&](const std::vector<double>& stds, model::HeadKind kind, const char* parameter, const char* tag) {
    for (double s : stds) {
      Condition c{fmt::format("noise_{}_std={:g}", tag, s),
                  {{"kind", "query_noise"}, {"component", tag}, {"std", s}, {"seed", r.seed}}, base};
      c.options.noise = checked_query_noise(parameter, s, kind, model, r.seed);
      conditions.push_back(c);
    }
  };
  add_noise(r.noise_imag, model::HeadKind::imaginary, "noise_imag", "imag");
  add_noise(r.noise_real, model::HeadKind::real, "noise_real", "real");
  for (const auto& a : r.ablate) {
    Condition c{"", nullptr, base};
    std::tie(c.name, c.options.ablation) = parse_ablation(a);
    if (c.options.ablation.all_imaginary && !c.options.ablation.all_real && rope)
      throw ArgumentError("ablate", "imaginary: the model is vanilla RoPE and has no imaginary heads");
    c.description = {{"kind", "head_ablation"},
                     {"all_real", c.options.ablation.all_real},
                     {"all_imaginary", c.options.ablation.all_imaginary}};
    conditions.push_back(c);
  }
  for (const auto& s : r.scaling) conditions.push_back(parse_scaling(s, model.config, base));
  std::set<std::string> names;
  for (auto& c : conditions) {
    if (!names.insert(c.name).second) throw ArgumentError(fmt::format("condition '{}' is given twice", c.name));
    c.description["name"] = c.name;
  }
  return conditions;
}

PerplexityReport perplexity(backend::Backend& backend, const PerplexityInput& input, const PerplexityRequest& r,
                            const ProgressCallback& progress) {
  check_perplexity_request(r);
  const auto& model = backend.model();
  PerplexityReport report;
  report.conditions = perplexity_conditions(r, model);
  report.lengths = r.lengths;
  report.tokens = static_cast<long>(input.ids.size());
  report.byte_level = input.byte_level;
  report.text_bytes = !input.token_bytes.empty();
  report.training_length = model.config.max_position_embeddings;
  report.seed = r.seed;
  report.curve_length = r.curve;
  report.max_windows = r.max_windows;
  const long N = report.tokens;

  long total_windows = 0;
  for (long L : r.lengths) {
    if (L > N) throw ArgumentError("lengths", fmt::format("window length {} is longer than the token input ({} tokens)", L, N));
    report.strides.push_back(r.stride            ? *r.stride
                             : r.stride_fraction ? std::max(1L, static_cast<long>(std::floor(*r.stride_fraction * L)))
                                                 : std::max(1L, L / 2));
    total_windows += static_cast<long>(sliding_windows(N, L, report.strides.back()).size());
  }
  if (r.curve > 0) {
    if (r.curve > N) throw ArgumentError("curve", fmt::format("{} is longer than the token input ({} tokens)", r.curve, N));
    report.curve_windows = curve_window_count(N, r.curve, r.max_windows);
  }
  total_windows = (total_windows + report.curve_windows) * static_cast<long>(report.conditions.size());
  const long longest = std::max(*std::max_element(r.lengths.begin(), r.lengths.end()), r.curve);
  for (const auto& c : report.conditions) backend.check_memory(longest, c.options);

  ProgressCounter counter(total_windows, progress);
  report.results.resize(report.conditions.size());
  for (std::size_t c = 0; c < report.conditions.size(); ++c) {
    for (std::size_t i = 0; i < r.lengths.size(); ++i)
      report.results[c].push_back(sliding_window_perplexity(backend, input.ids, r.lengths[i], report.strides[i],
                                                            report.conditions[c].options, input.byte_level, &counter,
                                                            input.token_bytes));
    if (r.curve > 0)
      report.curves.push_back(
          position_loss_curve(backend, input.ids, r.curve, r.max_windows, report.conditions[c].options, &counter));
  }
  return report;
}

std::string PerplexityReport::csv() const {
  std::string csv = "condition,L,stride,windows,tokens_scored,mean_nll,ppl,bits_per_byte,beyond_training,curve_ppl\n";
  for (std::size_t c = 0; c < conditions.size(); ++c)
    for (const auto& r : results[c]) {
      const bool has_curve = curve_length > 0 && r.L <= curve_length;
      csv += fmt::format("{},{},{},{},{},{:.17g},{:.17g},{},{},{}\n", io::csv_quote(conditions[c].name), r.L, r.stride,
                         r.windows, r.tokens_scored, r.mean_nll, r.ppl,
                         r.bits_per_byte ? fmt::format("{:.17g}", *r.bits_per_byte) : "",
                         r.L > training_length ? "true" : "false",
                         has_curve ? fmt::format("{:.17g}", curves[c].ppl_at_context(r.L)) : "");
    }
  return csv;
}

std::string PerplexityReport::table() const {
  std::string table = fmt::format("{:<28} {:>7} {:>6} {:>8} {:>9} {:>10} {:>12} {:>9} {:>10}\n", "condition", "L",
                                  "stride", "windows", "tokens", "mean_nll", "ppl", "bpb", "curve_ppl");
  for (std::size_t c = 0; c < conditions.size(); ++c)
    for (const auto& r : results[c]) {
      const bool beyond = r.L > training_length;
      const bool has_curve = curve_length > 0 && r.L <= curve_length;
      table += fmt::format("{:<28} {:>7} {:>6} {:>8} {:>9} {:>10.5f} {:>12.5g} {:>9} {:>10}\n", conditions[c].name,
                           fmt::format("{}{}", r.L, beyond ? "*" : ""), r.stride, r.windows, r.tokens_scored,
                           r.mean_nll, r.ppl, r.bits_per_byte ? fmt::format("{:.4f}", *r.bits_per_byte) : "-",
                           has_curve ? fmt::format("{:.5g}", curves[c].ppl_at_context(r.L)) : "-");
    }
  table += fmt::format("{} tokens{}; training length {} (* = beyond); ppl = exp(sum NLL of scored tokens / tokens scored)\n",
                       tokens, byte_level ? " (bytes)" : text_bytes ? " (tokenized text; bpb over the scored tokens' bytes)" : "",
                       training_length);
  return table;
}

std::string PerplexityReport::curve_csv() const {
  std::string csv = "condition,kind,position,position_end,mean_nll,count\n";
  for (std::size_t c = 0; c < curves.size(); ++c) {
    const auto& curve = curves[c];
    const std::string name = io::csv_quote(conditions[c].name);
    for (long p = 1; p < curve_length; ++p)
      csv += fmt::format("{},position,{},{},{:.17g},{}\n", name, p, p + 1, curve.mean_nll[p - 1], curve.windows);
    for (const auto& b : curve.bins)
      csv += fmt::format("{},log_bin,{},{},{:.17g},{}\n", name, b.begin, b.end, b.mean_nll, b.count);
  }
  return csv;
}

std::vector<double> PerplexityReport::curve_matrix() const {
  std::vector<double> matrix;
  for (const auto& curve : curves) matrix.insert(matrix.end(), curve.mean_nll.begin(), curve.mean_nll.end());
  return matrix;
}

nlohmann::json PerplexityReport::sidecar_fields() const {
  nlohmann::json condition_list = nlohmann::json::array();
  for (const auto& c : conditions) condition_list.push_back(c.description);
  nlohmann::json f = {{"perplexity_definition", kPerplexityDefinition},
                      {"training_length", training_length},
                      {"lengths", lengths},
                      {"strides", strides},
                      {"conditions", condition_list},
                      {"seed", seed}};
  return f;
}

nlohmann::json PerplexityReport::table_columns() {
  return  {{"condition", "condition name (clean, noise_imag_std=X, noise_real_std=X, ablate_real, ablate_imag, "
                                  "ablate_all, or a --scaling spec / its label)"},
                    {"L", "window length"},
                    {"stride", "stride S"},
                    {"windows", "windows evaluated"},
                    {"tokens_scored", "tokens whose loss is counted"},
                    {"mean_nll", "mean -ln p over scored tokens (nats)"},
                    {"ppl", "exp(mean_nll)"},
                    {"bits_per_byte", "bits per byte of text: byte-level input or --text (else empty)"},
                    {"beyond_training", "L > max_position_embeddings of the model"},
                    {"curve_ppl", "exp(mean curve NLL over positions 1..L-1), with --curve T >= L (else empty)"}};
}

nlohmann::json PerplexityReport::curve_fields() const {
  nlohmann::json f;
  f["curve_definition"] = kCurveDefinition;
  f["curve"] = {{"T", curve_length},
                {"windows", curve_windows},
                {"max_windows", max_windows},
                {"beyond_training", curve_length > training_length}};
  f["curve_columns"] = {{"condition", "condition name"},
                        {"kind", "position (one target position) or log_bin"},
                        {"position", "first target position of the row"},
                        {"position_end", "one past the last target position of the row"},
                        {"mean_nll", "mean -ln p over windows (and positions of a bin), nats"},
                        {"count", "number of (window, position) losses averaged"}};
  f["npy"] = fmt::format("float64 [conditions = {}, T-1 = {}]: element [c, p-1] is the mean NLL of condition c "
                         "(in the order of 'conditions') at target position p",
                         conditions.size(), curve_length - 1);
  return f;
}

std::vector<std::filesystem::path> PerplexityReport::output_files(const std::string& prefix, bool curve) {
  std::vector<std::filesystem::path> files{prefix + ".csv"};
  if (curve) files.insert(files.end(), {prefix + "_curve.csv", prefix + "_curve.npy"});
  return files;
}

void PerplexityReport::write(io::OutputTransaction& outputs, const std::string& prefix, RunRecord& record) const {
  record.fields().update(sidecar_fields());
  record.fields()["columns"] = table_columns();
  auto output = [&](const std::string& path, auto&& write_file) {
    write_file(outputs.output(path));
    record.write_sidecar(outputs, path);
  };
  output(prefix + ".csv", [&](auto& out) { out.write(csv()); });
  if (curve_length == 0) return;
  // The curve files' sidecars describe the curve's columns instead of the table's.
  record.fields().erase("columns");
  record.fields().update(curve_fields());
  output(prefix + "_curve.csv", [&](auto& out) { out.write(curve_csv()); });
  output(prefix + "_curve.npy", [&](auto& out) {
    io::write_npy<double>(out, curve_matrix(), {curves.size(), static_cast<std::uint64_t>(curve_length - 1)});
  });
}

}  // namespace ropescope::analysis
