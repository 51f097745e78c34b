// The distance-profile analysis and its report (see profile_report.hpp).
#include "analysis/profile_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/query_noise.hpp"
#include "backend/observer_recording.hpp"
#include "core/error.hpp"
#include "io/npy.hpp"

namespace ropescope::analysis {

namespace {

nlohmann::json aggregate_json(const ProfileAggregate& a, const std::vector<long>& beyond) {
  if (a.heads == 0) return nullptr;
  nlohmann::json mass;
  for (std::size_t i = 0; i < beyond.size(); ++i) mass[std::to_string(beyond[i])] = a.mass_beyond[i];
  return {{"heads", a.heads},    {"mean_distance", a.mean_distance}, {"entropy", a.entropy},
          {"mass_beyond", mass}, {"mean_prob", a.mean_prob},         {"mean_score", a.mean_score}};
}

}  // namespace

void check_profile_request(const ProfileRequest& r) {
  const long T = r.window;
  if (T < 1) throw ArgumentError("window", fmt::format("must be >= 1, got {}", T));
  if (r.windows < 0) throw ArgumentError("windows", fmt::format("must be >= 1 (or 0 for all), got {}", r.windows));
  if (r.exact_limit < 0) throw ArgumentError("exact_limit", fmt::format("must be >= 1, got {}", r.exact_limit));
  if (r.bins_per_decade < 1 || r.bins_per_decade > 1000)
    throw ArgumentError("bins_per_decade", fmt::format("must be 1 .. 1000, got {}", r.bins_per_decade));
  checked_seed(r.seed);
  if (r.noise_real && r.noise_imag)
    throw ArgumentError("noise_imag", "give noise on one component, real or imaginary, not both");
  if (r.noise_real) check_noise_std("noise_real", *r.noise_real);
  if (r.noise_imag) check_noise_std("noise_imag", *r.noise_imag);
  if (r.exact_limit > T)
    throw ArgumentError("exact_limit", fmt::format("{} is above the window length {}", r.exact_limit, T));
  for (long x : r.beyond)
    if (x < 1 || x >= T) throw ArgumentError("beyond", fmt::format("distance {} is not in 1 .. T-1 = {}", x, T - 1));
}

ProfileReport profile_distances(backend::Backend& backend, std::span<const std::int32_t> tokens,
                                const ProfileRequest& request, const ProgressCallback& progress) {
  check_profile_request(request);
  const auto& model = backend.model();
  backend::ForwardOptions options;
  options.angles = request.angles;
  if (request.noise_real)
    options.noise = checked_query_noise("noise_real", *request.noise_real, model::HeadKind::real, model, request.seed);
  if (request.noise_imag)
    options.noise = checked_query_noise("noise_imag", *request.noise_imag, model::HeadKind::imaginary, model, request.seed);
  const long T = request.window;
  // The window is checked against the input before anything is sized by T.
  if (T > static_cast<long>(tokens.size()))
    throw ArgumentError("window", fmt::format("{} is longer than the token input ({} tokens)", T, tokens.size()));

  ProfileReport report;
  report.window = T;
  report.tokens = static_cast<long>(tokens.size());
  report.available_windows = report.tokens / T;
  report.windows = request.windows > 0 ? std::min(request.windows, report.available_windows) : report.available_windows;
  const long exact_limit = request.exact_limit > 0 ? request.exact_limit : std::min(1024L, T);
  if (request.bin_edges.empty()) {
    report.bins = DistanceBins::log_spaced(exact_limit, T - 1, request.bins_per_decade);
    report.bins_per_decade = request.bins_per_decade;
  } else {
    report.bins = DistanceBins::from_edges(exact_limit, T - 1, request.bin_edges);
    report.upper_edges = request.bin_edges;
  }
  report.beyond = request.beyond;
  if (report.beyond.empty()) {
    for (long x : {64L, 256L, 1024L})
      if (x < T) report.beyond.push_back(x);
  } else {
    std::sort(report.beyond.begin(), report.beyond.end());
    report.beyond.erase(std::unique(report.beyond.begin(), report.beyond.end()), report.beyond.end());
  }
  report.noise = options.noise;
  report.layers = model.config.num_hidden_layers;
  report.heads = model.layout.attention_heads;

  ProfileObserver observer(report.bins, report.beyond, report.layers, report.heads);
  options.loss = false;  // only the attention is needed
  options.observer = &observer;
  backend.check_memory(T, options);
  ProgressCounter counter(report.windows, progress);
  // Each window is its own sequence, positions 0 .. T-1: one at a time, or one per
  // device of a data-parallel backend, whose observer calls are replayed in window order.
  const long per_batch = backend.concurrent_sequences();
  backend::ObserverRecording ordered(observer);
  if (per_batch > 1) options.observer = &ordered;
  for (long first = 0; first < report.windows; first += per_batch) {
    std::vector<std::vector<std::int32_t>> batch;
    for (long w = first; w < std::min(report.windows, first + per_batch); ++w)
      batch.emplace_back(tokens.begin() + w * T, tokens.begin() + (w + 1) * T);
    backend.forward(batch, options);
    if (per_batch > 1) ordered.replay_in_sequence_order(observer);
    for (std::size_t i = 0; i < batch.size(); ++i) counter.advance(T);
  }
  for (int l = 0; l < report.layers; ++l)
    for (int h = 0; h < report.heads; ++h) report.profiles.push_back({l, model.layout.head(h), observer.result(l, h)});
  return report;
}

std::vector<double> ProfileReport::per_bin(double (DistanceProfile::*statistic)(int) const) const {
  std::vector<double> out;
  out.reserve(profiles.size() * bins.size());
  for (const auto& p : profiles)
    for (int b = 0; b < bins.size(); ++b) out.push_back((p.sums.*statistic)(b));
  return out;
}

std::vector<double> ProfileReport::mean_prob() const { return per_bin(&DistanceProfile::mean_prob); }

std::vector<double> ProfileReport::mean_score() const { return per_bin(&DistanceProfile::mean_score); }

std::vector<std::int64_t> ProfileReport::bin_edges() const {
  std::vector<std::int64_t> out;
  for (int b = 0; b < bins.size(); ++b) out.insert(out.end(), {bins.lo(b), bins.hi(b)});
  return out;
}

ProfileAggregate ProfileReport::aggregate(model::HeadKind kind, int layer) const {
  std::vector<const DistanceProfile*> chosen;
  for (const auto& p : profiles)
    if (p.head.kind == kind && (layer < 0 || p.layer == layer)) chosen.push_back(&p.sums);
  return analysis::aggregate(chosen);
}

std::string ProfileReport::csv() const {
  std::string csv = "layer,head,kind,bin_lo,bin_hi,count,mean_prob,mean_score,score_count\n";
  for (const auto& p : profiles) {
    const char* kind = model::to_string(p.head.kind);
    for (int b = 0; b < bins.size(); ++b)
      csv += fmt::format("{},{},{},{},{},{},{:.17g},{:.17g},{}\n", p.layer, p.head.index, kind, bins.lo(b), bins.hi(b),
                         p.sums.count[b], p.sums.mean_prob(b), p.sums.mean_score(b), p.sums.score_count[b]);
  }
  return csv;
}

const nlohmann::json& ProfileReport::definitions() {
  static const nlohmann::json d = {
      {"distance", "D = t - s for query position t and key position s within a window (t >= s)"},
      {"mean_prob", "sum of p(t,s) over all (t,s) with D in the bin / count of such pairs"},
      {"mean_score", "sum of the pre-softmax score (times the layer's scale, softcapped where the model does, after "
                     "noise if any) over the visible pairs with D in the bin / score_count (pairs a sliding window "
                     "masks have no score; null where a bin has none)"},
      {"mean_distance", "mean over queries of sum_s p(t,s) (t - s)"},
      {"entropy", "mean over queries of -sum_s p(t,s) ln p(t,s) (nats)"},
      {"mass_beyond", "for each X: mean over queries of sum_{t-s >= X} p(t,s)"},
      {"aggregates", "real / imaginary: plain mean over the heads of that kind of the per-head curves and statistics"}};
  return d;
}

nlohmann::json ProfileReport::run() const {
  nlohmann::json bins_json = {{"exact_limit", bins.exact_limit()}, {"max_distance", window - 1}, {"count", bins.size()},
                              {"edges", "bin b covers distances bin_lo .. bin_hi inclusive (PREFIX_bins.npy rows)"}};
  if (bins_per_decade) bins_json["bins_per_decade"] = *bins_per_decade;
  else bins_json["upper_edges"] = upper_edges;
  return {{"window", window},
          {"windows", windows},
          {"available_windows", available_windows},
          {"tokens", tokens},
          {"queries_per_head", windows * window},
          {"bins", bins_json},
          {"beyond", beyond},
          {"noise", noise ? nlohmann::json{{"component", model::to_string(noise->component)},
                                           {"std", noise->std},
                                           {"seed", noise->seed}}
                          : nlohmann::json(nullptr)}};
}

nlohmann::json ProfileReport::summary() const {
  nlohmann::json per_head = nlohmann::json::array(), per_layer = nlohmann::json::array();
  for (const auto& p : profiles) {
    nlohmann::json mass;
    for (std::size_t i = 0; i < beyond.size(); ++i) mass[std::to_string(beyond[i])] = p.sums.mass_beyond(i);
    per_head.push_back({{"layer", p.layer}, {"head", p.head.index}, {"kind", model::to_string(p.head.kind)},
                        {"query_head", p.head.query_head}, {"kv_head", p.head.kv_head}, {"queries", p.sums.queries},
                        {"mean_distance", p.sums.mean_distance()}, {"entropy", p.sums.entropy()},
                        {"mass_beyond", mass}});
  }
  for (int l = 0; l < layers; ++l)
    per_layer.push_back({{"layer", l},
                         {"real", aggregate_json(aggregate(model::HeadKind::real, l), beyond)},
                         {"imaginary", aggregate_json(aggregate(model::HeadKind::imaginary, l), beyond)}});
  nlohmann::json summary = run();
  summary["definitions"] = definitions();
  summary["heads"] = per_head;
  summary["layers"] = per_layer;
  summary["model"] = {{"real", aggregate_json(aggregate(model::HeadKind::real), beyond)},
                      {"imaginary", aggregate_json(aggregate(model::HeadKind::imaginary), beyond)}};
  return summary;
}

std::vector<std::filesystem::path> ProfileReport::output_files(const std::string& prefix) {
  return {prefix + "_prob.npy", prefix + "_score.npy", prefix + "_bins.npy", prefix + ".csv", prefix + "_summary.json"};
}

void ProfileReport::write(io::OutputTransaction& outputs, const std::string& prefix, RunRecord& record) const {
  record.fields()["profile"] = run();
  record.fields()["definitions"] = definitions();
  const std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(layers), static_cast<std::uint64_t>(heads),
                                         static_cast<std::uint64_t>(bins.size())};
  auto output = [&](const std::string& suffix, auto&& write_file) {
    const std::filesystem::path path = prefix + suffix;
    write_file(outputs.output(path));
    record.write_sidecar(outputs, path);
  };
  output("_prob.npy", [&](auto& out) { io::write_npy<double>(out, mean_prob(), shape); });
  output("_score.npy", [&](auto& out) { io::write_npy<double>(out, mean_score(), shape); });
  output("_bins.npy", [&](auto& out) {
    io::write_npy<std::int64_t>(out, bin_edges(), {static_cast<std::uint64_t>(bins.size()), 2});
  });
  output(".csv", [&](auto& out) { out.write(csv()); });
  output("_summary.json", [&](auto& out) { out.write(summary().dump(2) + "\n"); });
}

}  // namespace ropescope::analysis
