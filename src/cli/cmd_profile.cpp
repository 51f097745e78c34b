// `ropescope profile`: attention by distance D = t - s over every query of
// non-overlapping windows of length T, for every layer and attention head:
// exact per distance below --exact-limit, log-spaced bins above; per-head mean
// attention distance, entropy and mass beyond chosen distances; real vs
// imaginary aggregates per layer and for the model. Streams query blocks, so
// memory grows with T, not T^2. Outputs PREFIX.csv (long format),
// PREFIX_prob.npy / PREFIX_score.npy [layers, heads, bins], PREFIX_bins.npy
// [bins, 2] and PREFIX_summary.json, each with a JSON sidecar.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <nlohmann/json.hpp>

#include "analysis/distance_profile.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/npy.hpp"

namespace ropescope::cli {
namespace {

struct ProfileOptions {
  ModelArgs model;
  long window = 0;
  long windows = 0;  // 0: every full window
  long exact_limit = 0;  // 0: min(1024, T)
  int bins_per_decade = 16;
  std::vector<long> bin_edges;
  std::vector<long> beyond;
  std::optional<double> noise_real, noise_imag;
  long long seed = 0;
  std::string out;
};

nlohmann::json aggregate_json(const analysis::ProfileAggregate& a, const std::vector<long>& beyond) {
  if (a.heads == 0) return nullptr;
  nlohmann::json mass;
  for (std::size_t i = 0; i < beyond.size(); ++i) mass[std::to_string(beyond[i])] = a.mass_beyond[i];
  return {{"heads", a.heads},         {"mean_distance", a.mean_distance}, {"entropy", a.entropy},
          {"mass_beyond", mass},      {"mean_prob", a.mean_prob},         {"mean_score", a.mean_score}};
}

void run_profile(const ProfileOptions& o) {
  const long T = o.window;
  if (T < 1) throw ArgumentError(fmt::format("--window must be >= 1, got {}", T));
  if (o.windows < 0) throw ArgumentError(fmt::format("--windows must be >= 1 (or 0 for all), got {}", o.windows));
  if (o.exact_limit < 0) throw ArgumentError(fmt::format("--exact-limit must be >= 1, got {}", o.exact_limit));
  if (o.bins_per_decade < 1 || o.bins_per_decade > 1000)
    throw ArgumentError(fmt::format("--bins-per-decade must be 1 .. 1000, got {}", o.bins_per_decade));
  io::check_output_prefix(o.out, "--out");
  auto options = base_forward_options(o.model);
  checked_seed(o.seed);
  if (o.noise_real) check_noise_std("--noise-real", *o.noise_real);
  if (o.noise_imag) check_noise_std("--noise-imag", *o.noise_imag);
  if (o.exact_limit > T) throw ArgumentError(fmt::format("--exact-limit {} is above the window length {}", o.exact_limit, T));
  for (long x : o.beyond)
    if (x < 1 || x >= T) throw ArgumentError(fmt::format("--beyond: distance {} is not in 1 .. T-1 = {}", x, T - 1));

  // Every output is checked and staged before the model is loaded.
  io::OutputTransaction outputs(analysis::with_sidecars({o.out + "_prob.npy", o.out + "_score.npy", o.out + "_bins.npy",
                                                         o.out + ".csv", o.out + "_summary.json"}),
                                run_inputs(o.model));
  auto backend = open_backend(o.model);
  const auto& model = backend->model();
  if (o.noise_real) options.noise = checked_query_noise("--noise-real", *o.noise_real, model::HeadKind::real, model, o.seed);
  if (o.noise_imag) options.noise = checked_query_noise("--noise-imag", *o.noise_imag, model::HeadKind::imaginary, model, o.seed);
  const auto input = load_input(o.model, model.config.vocab_size);
  const auto& tokens = input.ids;
  // The window is checked against the input before anything is sized by T.
  if (T > static_cast<long>(tokens.size()))
    throw ArgumentError(fmt::format("--window {} is longer than the token input ({} tokens)", T, tokens.size()));
  const long available = static_cast<long>(tokens.size()) / T;
  const long windows = o.windows > 0 ? std::min(o.windows, available) : available;
  const long exact_limit = o.exact_limit > 0 ? o.exact_limit : std::min(1024L, T);
  const auto bins = o.bin_edges.empty() ? analysis::DistanceBins::log_spaced(exact_limit, T - 1, o.bins_per_decade)
                                        : analysis::DistanceBins::from_edges(exact_limit, T - 1, o.bin_edges);
  std::vector<long> beyond = o.beyond;
  if (beyond.empty()) {
    for (long x : {64L, 256L, 1024L})
      if (x < T) beyond.push_back(x);
  } else {
    std::sort(beyond.begin(), beyond.end());
    beyond.erase(std::unique(beyond.begin(), beyond.end()), beyond.end());
  }
  analysis::RunRecord record("profile", *backend);

  const int layers = model.config.num_hidden_layers, heads = model.layout.attention_heads;
  analysis::ProfileObserver observer(bins, beyond, layers, heads);
  options.loss = false;  // only the attention is needed
  options.observer = &observer;
  check_forward_fits(*backend, T, options);
  analysis::Progress progress("profile", windows, o.model.quiet);
  for (long w = 0; w < windows; ++w) {
    // Each window is its own sequence, positions 0 .. T-1.
    backend->forward({std::vector<std::int32_t>(tokens.begin() + w * T, tokens.begin() + (w + 1) * T)}, options);
    progress.advance(T);
  }
  progress.finish();

  std::vector<analysis::DistanceProfile> profiles;
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) profiles.push_back(observer.result(l, h));
  auto profile = [&](int l, int h) -> const analysis::DistanceProfile& { return profiles[static_cast<std::size_t>(l) * heads + h]; };

  const int nb = bins.size();
  std::vector<double> mean_prob, mean_score;
  std::vector<std::int64_t> bin_edges;
  std::string csv = "layer,head,kind,bin_lo,bin_hi,count,mean_prob,mean_score,score_count\n";
  nlohmann::json per_head = nlohmann::json::array();
  nlohmann::json per_layer = nlohmann::json::array();
  std::vector<const analysis::DistanceProfile*> model_real, model_imaginary;
  for (int b = 0; b < nb; ++b) bin_edges.insert(bin_edges.end(), {bins.lo(b), bins.hi(b)});
  for (int l = 0; l < layers; ++l) {
    std::vector<const analysis::DistanceProfile*> real, imaginary;
    for (int h = 0; h < heads; ++h) {
      const auto& p = profile(l, h);
      const auto head = model.layout.head(h);
      const char* kind = model::to_string(head.kind);
      (head.kind == model::HeadKind::real ? real : imaginary).push_back(&p);
      for (int b = 0; b < nb; ++b) {
        mean_prob.push_back(p.mean_prob(b));
        mean_score.push_back(p.mean_score(b));
        csv += fmt::format("{},{},{},{},{},{},{:.17g},{:.17g},{}\n", l, h, kind, bins.lo(b), bins.hi(b), p.count[b],
                           p.mean_prob(b), p.mean_score(b), p.score_count[b]);
      }
      nlohmann::json mass;
      for (std::size_t i = 0; i < beyond.size(); ++i) mass[std::to_string(beyond[i])] = p.mass_beyond(i);
      per_head.push_back({{"layer", l}, {"head", h}, {"kind", kind}, {"query_head", head.query_head},
                          {"kv_head", head.kv_head}, {"queries", p.queries}, {"mean_distance", p.mean_distance()},
                          {"entropy", p.entropy()}, {"mass_beyond", mass}});
    }
    per_layer.push_back({{"layer", l},
                         {"real", aggregate_json(analysis::aggregate(real), beyond)},
                         {"imaginary", aggregate_json(analysis::aggregate(imaginary), beyond)}});
    model_real.insert(model_real.end(), real.begin(), real.end());
    model_imaginary.insert(model_imaginary.end(), imaginary.begin(), imaginary.end());
  }

  nlohmann::json bins_json = {{"exact_limit", exact_limit}, {"max_distance", T - 1}, {"count", nb},
                              {"edges", "bin b covers distances bin_lo .. bin_hi inclusive (PREFIX_bins.npy rows)"}};
  if (o.bin_edges.empty()) bins_json["bins_per_decade"] = o.bins_per_decade;
  else bins_json["upper_edges"] = o.bin_edges;
  const nlohmann::json definitions = {
      {"distance", "D = t - s for query position t and key position s within a window (t >= s)"},
      {"mean_prob", "sum of p(t,s) over all (t,s) with D in the bin / count of such pairs"},
      {"mean_score", "sum of the pre-softmax score (times the layer's scale, softcapped where the model does, after "
                     "noise if any) over the visible pairs with D in the bin / score_count (pairs a sliding window "
                     "masks have no score; null where a bin has none)"},
      {"mean_distance", "mean over queries of sum_s p(t,s) (t - s)"},
      {"entropy", "mean over queries of -sum_s p(t,s) ln p(t,s) (nats)"},
      {"mass_beyond", "for each X: mean over queries of sum_{t-s >= X} p(t,s)"},
      {"aggregates", "real / imaginary: plain mean over the heads of that kind of the per-head curves and statistics"}};
  const nlohmann::json run = {{"window", T},           {"windows", windows},           {"available_windows", available},
                              {"tokens", tokens.size()}, {"queries_per_head", windows * T}, {"bins", bins_json},
                              {"beyond", beyond},
                              {"noise", options.noise ? nlohmann::json{{"component", model::to_string(options.noise->component)},
                                                                       {"std", options.noise->std},
                                                                       {"seed", options.noise->seed}}
                                                      : nlohmann::json(nullptr)}};
  nlohmann::json summary = run;
  summary["definitions"] = definitions;
  summary["heads"] = per_head;
  summary["layers"] = per_layer;
  summary["model"] = {{"real", aggregate_json(analysis::aggregate(model_real), beyond)},
                      {"imaginary", aggregate_json(analysis::aggregate(model_imaginary), beyond)}};
  record.fields()["tokens"] = input.description;
  record.fields()["profile"] = run;
  record.fields()["definitions"] = definitions;

  const std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(layers), static_cast<std::uint64_t>(heads),
                                         static_cast<std::uint64_t>(nb)};
  auto output = [&](const std::string& suffix, auto&& write) {
    const std::filesystem::path path = o.out + suffix;
    write(outputs.output(path));
    record.write_sidecar(outputs, path);
  };
  output("_prob.npy", [&](auto& out) { io::write_npy<double>(out, mean_prob, shape); });
  output("_score.npy", [&](auto& out) { io::write_npy<double>(out, mean_score, shape); });
  output("_bins.npy", [&](auto& out) { io::write_npy<std::int64_t>(out, bin_edges, {static_cast<std::uint64_t>(nb), 2}); });
  output(".csv", [&](auto& out) { out.write(csv); });
  output("_summary.json", [&](auto& out) { out.write(summary.dump(2) + "\n"); });
  outputs.commit();
}

}  // namespace

void add_profile_command(CLI::App& app) {
  auto o = std::make_shared<ProfileOptions>();
  auto* cmd = app.add_subcommand("profile", "Attention probability and score by distance, exact over all queries");
  add_model_options(cmd, o->model);
  cmd->add_option("-w,--window", o->window, "window length T (non-overlapping windows over the tokens)")->required();
  cmd->add_option("--windows", o->windows, "at most this many windows (default: every full window)");
  cmd->add_option("--exact-limit", o->exact_limit, "distances below this get one bin each (default: min(1024, T))");
  cmd->add_option("--bins-per-decade", o->bins_per_decade, "log-spaced bins per decade above the exact limit")
      ->capture_default_str();
  cmd->add_option("--bin-edges", o->bin_edges, "explicit lower edges of the bins above the exact limit, comma-separated")
      ->delimiter(',');
  cmd->add_option("--beyond", o->beyond, "distances X for the mass beyond X, comma-separated (default: 64,256,1024 below T)")
      ->delimiter(',');
  auto* real = cmd->add_option("--noise-real", o->noise_real, "Gaussian noise std on the real query component");
  auto* imag = cmd->add_option("--noise-imag", o->noise_imag, "Gaussian noise std on the imaginary query component");
  real->excludes(imag);
  imag->excludes(real);
  cmd->add_option("--seed", o->seed, "noise seed")->capture_default_str();
  cmd->add_option("-o,--out", o->out, "output prefix: PREFIX.csv, PREFIX_summary.json, PREFIX_{prob,score,bins}.npy")
      ->required();
  cmd->callback([o] { run_profile(*o); });
}

}  // namespace ropescope::cli
