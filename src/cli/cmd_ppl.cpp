// `ropescope ppl`: perplexity across context lengths (ROPEPP.md section 5).
// Strided sliding-window perplexity at each --lengths L, an optional
// per-position loss curve (--curve T), bits per byte for byte-level input, and
// a sweep of conditions against the clean model: query noise on the real or
// imaginary component, ablation of real or imaginary heads, and inference-time
// RoPE overrides (--scaling) for extrapolation beyond the training length.
#include <fmt/format.h>

#include <algorithm>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "analysis/perplexity.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/rope_spec_args.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/csv.hpp"
#include "io/npy.hpp"

namespace ropescope::cli {
namespace {

constexpr const char* kPerplexityDefinition =
    "Strided sliding-window perplexity at window length L and stride S (default L/2): windows of exactly L tokens "
    "start at 0, S, 2S, ... while they fit, plus one window [N-L, N) for the tail when (N-L) is not a multiple of S. "
    "The first window scores all its L-1 targets; each later window scores only the targets after the previous "
    "window's end (its last S tokens, fewer for the tail window), never its own first token. For S < L every token "
    "except the first is scored exactly once (tokens_scored = N-1). mean_nll = (sum of -ln p(token | preceding tokens "
    "in its window) over the scored tokens) / tokens_scored, in nats; ppl = exp(mean_nll); bits_per_byte = "
    "mean_nll / ln 2 for byte-level input (one token per byte), and for --text the sum of -ln p over the scored "
    "tokens / ln 2 / the text bytes those tokens stand for (the tokenizer's bytes per token, which partition the text).";
constexpr const char* kCurveDefinition =
    "Per-position loss curve at length T: non-overlapping windows [kT, (k+1)T), k < min(--max-windows, N/T), one "
    "forward pass each; mean_nll at target position p (1..T-1) is the mean over windows of -ln p(token p | tokens "
    "0..p-1 of the window). Log bins [1,2), [2,4), [4,8), ... (cut at T) average every (window, position) pair in the "
    "bin. curve_ppl at L = exp(mean of the curve over positions 1..L-1).";

struct PplOptions {
  ModelArgs model;
  std::vector<long> lengths;
  long stride = 0;  // when not given: L/2 for each L
  CLI::Option* stride_option = nullptr;
  long curve = 0;   // 0: no curve
  long max_windows = 0;
  std::vector<double> noise_imag, noise_real;
  long long seed = 0;
  std::vector<std::string> ablate;
  std::vector<std::string> scaling;
  std::string out;
};

struct Condition {
  std::string name;
  nlohmann::json description;
  backend::ForwardOptions options;
};

// A --scaling SPEC: comma-separated key=value pairs (the keys of `decay --variant`)
// applied on top of the model's own RoPE spec. When a scaling type is given and
// the model has none, `original` defaults to the model's max_position_embeddings.
Condition parse_scaling(const std::string& text, const model::ModelConfig& config, const backend::ForwardOptions& base) {
  theory::RopeSpec spec = config.rope;
  auto& sc = spec.scaling;
  if (sc.type == theory::ScalingType::none) sc.original_max_position = config.max_position_embeddings;
  const std::string label = apply_rope_spec_text(text, "--scaling", spec, false).label;
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

// An --ablate value: the condition's name and the heads it zeroes.
std::pair<std::string, backend::HeadAblation> parse_ablation(const std::string& a) {
  backend::HeadAblation ablation;
  ablation.all_real = a == "real" || a == "all";
  ablation.all_imaginary = a == "imaginary" || a == "imag" || a == "all";
  if (a == "real") return {"ablate_real", ablation};
  if (ablation.all_imaginary) return {a == "all" ? "ablate_all" : "ablate_imag", ablation};
  throw ArgumentError(fmt::format("--ablate '{}' is not one of real, imaginary, all", a));
}

std::vector<Condition> build_conditions(const PplOptions& o, const model::Model& model,
                                        const backend::ForwardOptions& base) {
  std::vector<Condition> conditions{{"clean", {{"kind", "clean"}}, base}};
  const bool rope = model.layout.variant == model::Variant::rope;
  auto add_noise = [&](const std::vector<double>& stds, model::HeadKind kind, const char* flag, const char* tag) {
    for (double s : stds) {
      Condition c{fmt::format("noise_{}_std={:g}", tag, s),
                  {{"kind", "query_noise"}, {"component", tag}, {"std", s}, {"seed", o.seed}}, base};
      c.options.noise = checked_query_noise(flag, s, kind, model, o.seed);
      conditions.push_back(c);
    }
  };
  add_noise(o.noise_imag, model::HeadKind::imaginary, "--noise-imag", "imag");
  add_noise(o.noise_real, model::HeadKind::real, "--noise-real", "real");
  for (const auto& a : o.ablate) {
    Condition c{"", nullptr, base};
    std::tie(c.name, c.options.ablation) = parse_ablation(a);
    if (c.options.ablation.all_imaginary && !c.options.ablation.all_real && rope)
      throw ArgumentError("--ablate imaginary: the model is vanilla RoPE and has no imaginary heads");
    c.description = {{"kind", "head_ablation"}, {"all_real", c.options.ablation.all_real},
                     {"all_imaginary", c.options.ablation.all_imaginary}};
    conditions.push_back(c);
  }
  for (const auto& s : o.scaling) conditions.push_back(parse_scaling(s, model.config, base));
  std::set<std::string> names;
  for (auto& c : conditions) {
    if (!names.insert(c.name).second) throw ArgumentError(fmt::format("condition '{}' is given twice", c.name));
    c.description["name"] = c.name;
  }
  return conditions;
}

void run_ppl(const PplOptions& o) {
  // Every option taking a list takes one value per occurrence (so a following
  // MODEL is never swallowed). Everything that can be refused is checked before the first forward pass.
  if (o.lengths.empty()) throw ArgumentError("--lengths: give at least one window length");
  for (long L : o.lengths)
    if (L < 2) throw ArgumentError(fmt::format("--lengths: window length must be >= 2, got {}", L));
  const bool stride_given = o.stride_option->count() > 0;
  if (stride_given && o.stride < 1) throw ArgumentError(fmt::format("--stride must be >= 1, got {}", o.stride));
  for (long L : o.lengths)
    if (stride_given && o.stride > L) throw ArgumentError(fmt::format("--stride {} is longer than the window length {}", o.stride, L));
  if (o.curve != 0 && o.curve < 2) throw ArgumentError(fmt::format("--curve must be >= 2, got {}", o.curve));
  if (o.max_windows < 0) throw ArgumentError(fmt::format("--max-windows must be >= 0, got {}", o.max_windows));
  if (o.max_windows != 0 && o.curve == 0) throw ArgumentError("--max-windows limits the --curve windows: give --curve T too");
  for (std::size_t i = 0; i < o.lengths.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (o.lengths[i] == o.lengths[j]) throw ArgumentError(fmt::format("--lengths: {} is given twice", o.lengths[i]));
  for (double s : o.noise_imag) check_noise_std("--noise-imag", s);
  for (double s : o.noise_real) check_noise_std("--noise-real", s);
  checked_seed(o.seed);
  for (const auto& a : o.ablate) parse_ablation(a);
  io::check_output_prefix(o.out, "--out");
  std::vector<std::filesystem::path> targets{o.out + ".csv"};
  if (o.curve > 0) targets.insert(targets.end(), {o.out + "_curve.csv", o.out + "_curve.npy"});
  // Every output is checked and staged before the model is loaded.
  io::OutputTransaction outputs(analysis::with_sidecars(targets), run_inputs(o.model));
  const backend::ForwardOptions base = base_forward_options(o.model);

  auto backend = open_backend(o.model);
  const auto& model = backend->model();
  const auto conditions = build_conditions(o, model, base);
  const auto input = load_input(o.model, model.config.vocab_size);
  const auto& tokens = input.ids;
  const long N = static_cast<long>(tokens.size());
  const bool byte_level = input.byte_level;
  const long training = model.config.max_position_embeddings;

  std::vector<long> strides;
  long total_windows = 0;
  for (long L : o.lengths) {
    if (L > N) throw ArgumentError(fmt::format("--lengths: window length {} is longer than the token file ({} tokens)", L, N));
    strides.push_back(stride_given ? o.stride : std::max(1L, L / 2));
    total_windows += static_cast<long>(analysis::sliding_windows(N, L, strides.back()).size());
  }
  long curve_windows = 0;
  if (o.curve > 0) {
    if (o.curve > N) throw ArgumentError(fmt::format("--curve {} is longer than the token file ({} tokens)", o.curve, N));
    curve_windows = analysis::curve_window_count(N, o.curve, o.max_windows);
  }
  total_windows = (total_windows + curve_windows) * static_cast<long>(conditions.size());

  for (const auto& c : conditions)
    check_forward_fits(*backend, std::max(*std::max_element(o.lengths.begin(), o.lengths.end()), o.curve), c.options);
  analysis::RunRecord record("ppl", *backend);
  analysis::Progress progress("ppl", total_windows, o.model.quiet);
  std::vector<std::vector<analysis::SlidingWindowResult>> results(conditions.size());
  std::vector<analysis::PositionCurve> curves;
  for (std::size_t c = 0; c < conditions.size(); ++c) {
    for (std::size_t i = 0; i < o.lengths.size(); ++i)
      results[c].push_back(analysis::sliding_window_perplexity(*backend, tokens, o.lengths[i], strides[i],
                                                               conditions[c].options, byte_level, &progress,
                                                               input.bytes));
    if (o.curve > 0)
      curves.push_back(analysis::position_loss_curve(*backend, tokens, o.curve, o.max_windows, conditions[c].options,
                                                     &progress));
  }
  progress.finish();

  // Outputs are built in memory and written only after every condition has run.
  std::string csv = "condition,L,stride,windows,tokens_scored,mean_nll,ppl,bits_per_byte,beyond_training,curve_ppl\n";
  std::string table = fmt::format("{:<28} {:>7} {:>6} {:>8} {:>9} {:>10} {:>12} {:>9} {:>10}\n", "condition", "L",
                                  "stride", "windows", "tokens", "mean_nll", "ppl", "bpb", "curve_ppl");
  for (std::size_t c = 0; c < conditions.size(); ++c)
    for (const auto& r : results[c]) {
      const bool beyond = r.L > training;
      const bool has_curve = o.curve > 0 && r.L <= o.curve;
      const double curve_ppl = has_curve ? curves[c].ppl_at_context(r.L) : 0.0;
      csv += fmt::format("{},{},{},{},{},{:.17g},{:.17g},{},{},{}\n", io::csv_quote(conditions[c].name), r.L, r.stride,
                         r.windows, r.tokens_scored, r.mean_nll, r.ppl,
                         r.bits_per_byte ? fmt::format("{:.17g}", *r.bits_per_byte) : "", beyond ? "true" : "false",
                         has_curve ? fmt::format("{:.17g}", curve_ppl) : "");
      table += fmt::format("{:<28} {:>7} {:>6} {:>8} {:>9} {:>10.5f} {:>12.5g} {:>9} {:>10}\n", conditions[c].name,
                           fmt::format("{}{}", r.L, beyond ? "*" : ""), r.stride, r.windows, r.tokens_scored,
                           r.mean_nll, r.ppl, r.bits_per_byte ? fmt::format("{:.4f}", *r.bits_per_byte) : "-",
                           has_curve ? fmt::format("{:.5g}", curve_ppl) : "-");
    }

  nlohmann::json condition_list = nlohmann::json::array();
  for (const auto& c : conditions) condition_list.push_back(c.description);
  auto& f = record.fields();
  f["perplexity_definition"] = kPerplexityDefinition;
  f["tokens"] = input.description;
  f["training_length"] = training;
  f["lengths"] = o.lengths;
  f["strides"] = strides;
  f["conditions"] = condition_list;
  f["seed"] = o.seed;
  f["columns"] = {{"condition", "condition name (clean, noise_imag_std=X, noise_real_std=X, ablate_real, ablate_imag, "
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
  auto write = [&](const std::string& path, auto&& write_file) {
    write_file(outputs.output(path));
    record.write_sidecar(outputs, path);
  };
  write(o.out + ".csv", [&](auto& out) { out.write(csv); });

  if (o.curve > 0) {
    const long T = o.curve;
    std::string curve_csv = "condition,kind,position,position_end,mean_nll,count\n";
    std::vector<double> matrix;
    for (std::size_t c = 0; c < conditions.size(); ++c) {
      const auto& curve = curves[c];
      const std::string name = io::csv_quote(conditions[c].name);
      for (long p = 1; p < T; ++p)
        curve_csv += fmt::format("{},position,{},{},{:.17g},{}\n", name, p, p + 1, curve.mean_nll[p - 1], curve.windows);
      for (const auto& b : curve.bins)
        curve_csv += fmt::format("{},log_bin,{},{},{:.17g},{}\n", name, b.begin, b.end, b.mean_nll, b.count);
      matrix.insert(matrix.end(), curve.mean_nll.begin(), curve.mean_nll.end());
    }
    f.erase("columns");
    f["curve_definition"] = kCurveDefinition;
    f["curve"] = {{"T", T}, {"windows", curve_windows}, {"max_windows", o.max_windows}, {"beyond_training", T > training}};
    f["curve_columns"] = {{"condition", "condition name"},
                          {"kind", "position (one target position) or log_bin"},
                          {"position", "first target position of the row"},
                          {"position_end", "one past the last target position of the row"},
                          {"mean_nll", "mean -ln p over windows (and positions of a bin), nats"},
                          {"count", "number of (window, position) losses averaged"}};
    f["npy"] = fmt::format("float64 [conditions = {}, T-1 = {}]: element [c, p-1] is the mean NLL of condition c "
                           "(in the order of 'conditions') at target position p",
                           conditions.size(), T - 1);
    write(o.out + "_curve.csv", [&](auto& out) { out.write(curve_csv); });
    write(o.out + "_curve.npy", [&](auto& out) {
      io::write_npy<double>(out, matrix, {conditions.size(), static_cast<std::uint64_t>(T - 1)});
    });
  }
  outputs.commit();
  fmt::print("{}", table);
  fmt::print("{} tokens{}; training length {} (* = beyond); ppl = exp(sum NLL of scored tokens / tokens scored)\n", N,
             byte_level ? " (bytes)" : input.bytes.empty() ? "" : " (tokenized text; bpb over the scored tokens' bytes)",
             training);
}

}  // namespace

void add_ppl_command(CLI::App& app) {
  auto o = std::make_shared<PplOptions>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity across context lengths: sliding windows, per-position loss, "
                                        "noise / ablation / RoPE-scaling sweeps");
  add_model_options(cmd, o->model);
  cmd->add_option("--lengths", o->lengths, "window lengths L, comma-separated (e.g. 128,256,512)")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
  o->stride_option = cmd->add_option("--stride", o->stride, "stride S for every L (default: L/2 for each L)");
  cmd->add_option("--curve", o->curve, "also compute the per-position loss curve over windows of length T");
  cmd->add_option("--max-windows", o->max_windows, "at most this many curve windows (0: all that fit)")
      ->capture_default_str();
  cmd->add_option("--noise-imag", o->noise_imag, "Gaussian noise std values on the imaginary query component")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--noise-real", o->noise_real, "Gaussian noise std values on the real query component")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--seed", o->seed, "noise seed")->capture_default_str();
  cmd->add_option("--ablate", o->ablate, "ablate all real, imaginary or all heads (repeatable: one condition each)")
      ->allow_extra_args(false);
  cmd->add_option("--scaling", o->scaling,
                  "RoPE override as key=value pairs on the model's spec, repeatable (one condition each): "
                  "type=none|linear|dynamic|yarn|yarn_ropepp|llama3, factor, base, original, partial, beta_fast, "
                  "beta_slow, low, high, mscale, mscale_all_dim, attention_factor, truncate, label")
      ->allow_extra_args(false);
  cmd->add_option("-o,--out", o->out, "output prefix: PREFIX.csv, PREFIX_curve.csv, PREFIX_curve.npy (+ .json sidecars)")
      ->required();
  cmd->callback([o] { run_ppl(*o); });
}

}  // namespace ropescope::cli
