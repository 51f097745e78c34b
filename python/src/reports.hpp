// The results Model's analyses return to Python: each keeps the library's
// report (its arrays shown to numpy without copies) and the model it ran on,
// so that save() writes exactly the files of the matching CLI command.
#pragma once

#include <string>
#include <vector>

#include "analysis/attention_maps.hpp"
#include "analysis/perplexity_report.hpp"
#include "analysis/profile_report.hpp"
#include "bindings.hpp"

namespace ropescope::python {

struct ProfileResult {
  ModelHandle model;
  analysis::ProfileReport report;
  std::vector<double> mean_prob, mean_score;  // [layers, heads, bins]
  std::vector<std::int64_t> bin_edges;        // [bins, 2]
  nlohmann::json tokens;                      // the input, as sidecars record it
};

struct PerplexityResult {
  ModelHandle model;
  analysis::PerplexityReport report;
  std::vector<double> curve;  // [conditions, curve_length - 1]
  nlohmann::json tokens;
};

struct MapsResult {
  ModelHandle model;
  analysis::AttentionMaps maps;
  nlohmann::json tokens;
};

}  // namespace ropescope::python
