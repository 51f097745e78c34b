// Run records (see run_record.hpp).
#include "analysis/run_record.hpp"

#include <fmt/format.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <fstream>
#include <iterator>

#include "io/atomic_file.hpp"
#include "io/mapped_file.hpp"
#include "io/run_metadata.hpp"

namespace ropescope::analysis {

std::string config_hash(const std::filesystem::path& model_directory) {
  const std::string bytes = io::read_regular_file(model_directory / "config.json", "config");
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ULL;
  return fmt::format("{:016x}", h);
}

RunRecord::RunRecord(const std::string& command, const std::vector<std::string>& invocation,
                     const backend::Backend& backend)
    : json_(io::run_metadata(command, invocation)),
      backend_(&backend), start_(std::chrono::steady_clock::now()) {
  const auto& m = backend.model();
  json_["model"] = {{"directory", std::filesystem::absolute(m.directory).string()},
                    {"config_hash_fnv1a64", config_hash(m.directory)},
                    {"variant", model::to_string(m.layout.variant)},
                    {"variant_source", m.variant_source},
                    {"layers", m.config.num_hidden_layers},
                    {"attention_heads", m.layout.attention_heads},
                    {"head_dim", m.layout.head_dim},
                    {"rope_theta", m.config.rope.base},
                    {"rope_scaling", theory::to_string(m.config.rope.scaling.type)}};
  json_["model"]["family"] = m.config.arch.family;
  json_["model"]["architecture"] = model::to_json(m.config.arch);
  std::vector<std::string> warnings = m.warnings;
  warnings.insert(warnings.end(), backend.notices().begin(), backend.notices().end());
  json_["warnings"] = warnings;
  json_["backend"] = backend.name();
#ifdef _OPENMP
  // The CPU backend's sums split over this many threads: results differ in the last bits between counts.
  json_["threads"] = omp_get_max_threads();
#else
  json_["threads"] = 1;
#endif
  json_["precision"] = backend.precision();
}

double RunRecord::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::filesystem::path sidecar_path(const std::filesystem::path& output) { return output.string() + ".json"; }

std::vector<std::filesystem::path> with_sidecars(const std::vector<std::filesystem::path>& outputs) {
  std::vector<std::filesystem::path> all;
  for (const auto& o : outputs) {
    all.push_back(o);
    all.push_back(sidecar_path(o));
  }
  return all;
}

void RunRecord::write_sidecar(io::OutputTransaction& outputs, const std::filesystem::path& output) {
  json_["wall_time_s"] = elapsed_seconds();
  json_["kernels"] = backend_->kernel_choices();
  if (auto statistics = backend_->statistics(); !statistics.is_null()) json_["backend_statistics"] = statistics;
  outputs.write(sidecar_path(output), json_.dump(2) + "\n");
}

}  // namespace ropescope::analysis
