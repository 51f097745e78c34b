// The distance-profile analysis as one call (ROPEPP.md, real vs imaginary
// attention by distance): checks a ProfileRequest, runs the model over
// non-overlapping windows through a ProfileObserver, and returns a
// ProfileReport holding the per-head sums and everything derived from them:
// [layers, heads, bins] arrays, per-head statistics, real / imaginary
// aggregates per layer and over the model, and the file forms of `ropescope
// profile` (long CSV, npy arrays, summary JSON) that every front end writes
// alike. Errors name the request's fields (window, exact_limit, ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analysis/distance_profile.hpp"
#include "analysis/progress.hpp"
#include "analysis/run_record.hpp"
#include "backend/backend.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::analysis {

struct ProfileRequest {
  long window = 0;                 // T: non-overlapping windows [kT, (k+1)T), each its own sequence
  long windows = 0;                // at most this many (0: every full window)
  long exact_limit = 0;            // distances below it get one bin each (0: min(1024, T))
  int bins_per_decade = 16;        // log-spaced bins above the exact limit (1 .. 1000)
  std::vector<long> bin_edges;     // or explicit lower edges of the bins above it
  std::vector<long> beyond;        // thresholds X of "mass beyond X" (empty: 64, 256, 1024 below T)
  std::optional<double> noise_real, noise_imag;  // query-noise std on one component (not both)
  long long seed = 0;              // noise seed, 0 .. 2^63-1
  model::AnglePrecision angles = model::AnglePrecision::exact;
};

// What can be checked without the model or the input (ArgumentError naming the field).
void check_profile_request(const ProfileRequest& request);

// One attention head's results: which head it is and its sums (statistics derived on demand).
struct HeadProfile {
  int layer = 0;
  model::AttentionHead head;
  DistanceProfile sums;
};

struct ProfileReport {
  long window = 0, windows = 0, available_windows = 0, tokens = 0;
  DistanceBins bins;
  std::optional<int> bins_per_decade;  // the bins' rule: log-spaced, or
  std::vector<long> upper_edges;       // explicit edges
  std::vector<long> beyond;
  std::optional<backend::QueryNoise> noise;
  int layers = 0, heads = 0;
  std::vector<HeadProfile> profiles;  // [layer * heads + head]

  const HeadProfile& at(int layer, int head) const { return profiles[static_cast<std::size_t>(layer) * heads + head]; }
  // Arrays in layer-major, head, bin order: [layers, heads, bins] (row-major).
  std::vector<double> mean_prob() const;
  std::vector<double> mean_score() const;  // NaN where a bin has no visible pair
  std::vector<std::int64_t> bin_edges() const;  // [bins, 2]: lo, hi inclusive
  // Plain means over the heads of one kind, in one layer or (layer < 0) the whole model.
  ProfileAggregate aggregate(model::HeadKind kind, int layer = -1) const;

  // The file forms: the long CSV (one row per layer, head and bin), the
  // summary document (run, definitions, per-head statistics, aggregates) and
  // the run description recorded in sidecars.
  std::string csv() const;
  nlohmann::json summary() const;
  nlohmann::json run() const;
  static const nlohmann::json& definitions();

  // PREFIX_prob.npy, PREFIX_score.npy, PREFIX_bins.npy, PREFIX.csv, PREFIX_summary.json.
  static std::vector<std::filesystem::path> output_files(const std::string& prefix);
  // Stages every output and its sidecar (from `record`) in `outputs` (which
  // must have declared them: with_sidecars(output_files(prefix))); the caller commits.
  void write(io::OutputTransaction& outputs, const std::string& prefix, RunRecord& record) const;
 private:
  // One per-bin statistic of every head, [layers, heads, bins].
  std::vector<double> per_bin(double (DistanceProfile::*statistic)(int) const) const;
};

// Runs the profile over `tokens`: checks the request against the model and
// the input (the window no longer than the input, noise on a component the
// model has), checks the longest forward fits the backend's memory, then one
// forward per window. `progress` is called after each window.
ProfileReport profile_distances(backend::Backend& backend, std::span<const std::int32_t> tokens,
                                const ProfileRequest& request, const ProgressCallback& progress = {});

}  // namespace ropescope::analysis
