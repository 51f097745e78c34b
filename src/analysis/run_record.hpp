// What every analysis run records and shows: the JSON sidecar beside each
// output (tool version, git commit, model directory and a hash of its
// config.json, variant, arguments, backend, precision, wall time), and
// progress on stderr (windows done, tokens/s, ETA) when stderr is a terminal.
#pragma once

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::analysis {

// Where the sidecar of `output` goes: `<output>.json`.
std::filesystem::path sidecar_path(const std::filesystem::path& output);

// `outputs` with the sidecar of each after it: the targets of a run's transaction.
std::vector<std::filesystem::path> with_sidecars(const std::vector<std::filesystem::path>& outputs);

// FNV-1a 64-bit hash of the model's config.json bytes, as 16 hex digits.
std::string config_hash(const std::filesystem::path& model_directory);

class RunRecord {
 public:
  RunRecord(const std::string& command, const backend::Backend& backend);
  nlohmann::json& fields() { return json_; }  // add command-specific fields
  // The sidecar of `output`, with the wall time so far, to its staged `<output>.json`
  // (declared in `outputs`; see sidecar_path).
  void write_sidecar(io::OutputTransaction& outputs, const std::filesystem::path& output);
  double elapsed_seconds() const;

 private:
  nlohmann::json json_;
  std::chrono::steady_clock::time_point start_;
};

class Progress {
 public:
  // Shows nothing when `quiet` or when stderr is not a terminal.
  Progress(std::string label, long total_windows, bool quiet);
  void advance(long tokens_in_window);  // one window done
  void finish();

 private:
  std::string label_;
  long total_, done_ = 0, tokens_ = 0;
  bool visible_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ropescope::analysis
