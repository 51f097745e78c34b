// The perplexity analysis as one call (ROPEPP.md section 5): checks a
// PerplexityRequest, builds its conditions (the clean model, query noise on
// the real or imaginary component, ablation of real / imaginary heads,
// inference-time RoPE overrides), runs strided sliding-window perplexity at
// every length and the optional per-position loss curve under each, and
// returns a PerplexityReport with the results and the file forms of `ropescope
// ppl` (CSV table, curve CSV and npy, sidecar fields) that every front end
// writes alike. Errors name the request's fields (lengths, stride, ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "analysis/perplexity.hpp"
#include "analysis/progress.hpp"
#include "analysis/run_record.hpp"
#include "backend/backend.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::analysis {

struct PerplexityRequest {
  std::vector<long> lengths;          // window lengths L (each >= 2, no repeats)
  std::optional<long> stride;         // one stride for every L (default: L/2 for each)
  long curve = 0;                     // per-position loss curve over windows of this length (0: none)
  long max_windows = 0;               // at most this many curve windows (0: all that fit)
  std::vector<double> noise_imag;     // one condition per std: noise on the imaginary query component
  std::vector<double> noise_real;     // ... on the real component
  long long seed = 0;                 // noise seed
  std::vector<std::string> ablate;    // one condition each: real, imaginary (imag), all
  std::vector<std::string> scaling;   // one condition each: a RoPE override, key=value pairs (theory/rope_spec_text.hpp)
  model::AnglePrecision angles = model::AnglePrecision::exact;
  std::optional<double> stride_fraction;  // instead of stride: S = max(1, floor(F L)) for each L, 0 < F <= 1
};

// What can be checked without the model or the input (ArgumentError naming the field).
void check_perplexity_request(const PerplexityRequest& request);

// The token input: ids, and what the perplexity needs to know about them for bits per byte.
struct PerplexityInput {
  std::span<const std::int32_t> ids;
  bool byte_level = false;                    // one token per byte
  std::span<const std::uint32_t> token_bytes; // tokenized text: the bytes each token stands for (else empty)
};

struct Condition {
  std::string name;              // clean, noise_imag_std=0.1, ablate_real, a scaling label, ...
  nlohmann::json description;    // kind and parameters
  backend::ForwardOptions options;
};

struct PerplexityReport {
  std::vector<Condition> conditions;
  std::vector<long> lengths, strides;
  long tokens = 0;
  bool byte_level = false, text_bytes = false;
  long training_length = 0;  // max_position_embeddings
  long long seed = 0;
  std::vector<std::vector<SlidingWindowResult>> results;  // [condition][length]
  long curve_length = 0, curve_windows = 0, max_windows = 0;  // curve_length 0: no curve
  std::vector<PositionCurve> curves;                           // [condition] when curve_length > 0

  // The CSV table (one row per condition and length), the aligned text table
  // the CLI prints, the curve's CSV and [conditions, T-1] matrix; the fields
  // every sidecar records, the table's column descriptions (PREFIX.csv's
  // sidecar) and the curve's fields (the curve files' sidecars).
  std::string csv() const;
  std::string table() const;
  std::string curve_csv() const;
  std::vector<double> curve_matrix() const;
  nlohmann::json sidecar_fields() const;
  static nlohmann::json table_columns();
  nlohmann::json curve_fields() const;

  // PREFIX.csv, and with a curve PREFIX_curve.csv and PREFIX_curve.npy.
  static std::vector<std::filesystem::path> output_files(const std::string& prefix, bool curve);
  // Stages every output and its sidecar (from `record`) in `outputs`; the caller commits.
  void write(io::OutputTransaction& outputs, const std::string& prefix, RunRecord& record) const;
};

// Builds the conditions of `request` for `model` (ArgumentError naming the
// field of a bad noise, ablation or scaling value, or a repeated name).
std::vector<Condition> perplexity_conditions(const PerplexityRequest& request, const model::Model& model);

// Runs every condition at every length (and the curve), after checking the
// request against the model and the input and the longest forward against the
// backend's memory. `progress` is called after each window.
PerplexityReport perplexity(backend::Backend& backend, const PerplexityInput& input, const PerplexityRequest& request,
                            const ProgressCallback& progress = {});

// The sliding-window and curve definitions, as recorded in sidecars.
extern const char* const kPerplexityDefinition;
extern const char* const kCurveDefinition;

}  // namespace ropescope::analysis
