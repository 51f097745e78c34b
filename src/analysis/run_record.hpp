// What every analysis run records: the JSON sidecar beside each output (tool
// version, git commit, model directory and a hash of its config.json, variant,
// the invocation, backend, precision, the kernels the backend chose, wall time).
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
  // `invocation`: how the run was asked for, as the front end knows it (the
  // CLI's argv; Python's call and keywords), recorded as "argv".
  RunRecord(const std::string& command, const std::vector<std::string>& invocation, const backend::Backend& backend);
  nlohmann::json& fields() { return json_; }  // add command-specific fields
  // The sidecar of `output`, with the wall time so far, to its staged `<output>.json`
  // (declared in `outputs`; see sidecar_path).
  void write_sidecar(io::OutputTransaction& outputs, const std::filesystem::path& output);
  double elapsed_seconds() const;

 private:
  nlohmann::json json_;
  const backend::Backend* backend_;  // its kernel choices, read when a sidecar is written (after the forwards)
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ropescope::analysis
