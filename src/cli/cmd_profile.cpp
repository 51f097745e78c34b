// `ropescope profile`: attention by distance D = t - s over every query of
// non-overlapping windows of length T, for every layer and attention head:
// exact per distance below --exact-limit, log-spaced bins above; per-head mean
// attention distance, entropy and mass beyond chosen distances; real vs
// imaginary aggregates per layer and for the model. Streams query blocks, so
// memory grows with T, not T^2. Outputs PREFIX.csv (long format),
// PREFIX_prob.npy / PREFIX_score.npy [layers, heads, bins], PREFIX_bins.npy
// [bins, 2] and PREFIX_summary.json, each with a JSON sidecar.
#include <optional>

#include "analysis/profile_report.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/terminal_progress.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::cli {
namespace {

struct ProfileOptions {
  ModelArgs model;
  analysis::ProfileRequest request;
  std::string out;
};

void run_profile(const ProfileOptions& o, const CommandLine& argv) {
  analysis::ProfileRequest request = o.request;
  request.angles = base_forward_options(o.model).angles;
  analysis::check_profile_request(request);
  io::check_output_prefix(o.out, "--out");
  // Every output is checked and staged before the model is loaded (by process 0 of a group over processes).
  const bool writes = writes_outputs(o.model);
  std::optional<io::OutputTransaction> outputs;
  if (writes) outputs.emplace(analysis::with_sidecars(analysis::ProfileReport::output_files(o.out)), run_inputs(o.model));
  auto backend = open_backend(o.model);
  const auto input = load_input(o.model, backend->model().config.vocab_size);
  analysis::RunRecord record("profile", argv, *backend);
  const auto report = [&] {
    TerminalProgress progress("profile", o.model.quiet || !writes);
    return analysis::profile_distances(*backend, input.ids, request, progress.callback());
  }();
  if (!writes) return;
  record.fields()["tokens"] = input.description;
  report.write(*outputs, o.out, record);
  outputs->commit();
}

}  // namespace

void add_profile_command(CLI::App& app, const CommandLine& argv) {
  auto o = std::make_shared<ProfileOptions>();
  auto* cmd = app.add_subcommand("profile", "Attention probability and score by distance, exact over all queries");
  add_model_options(cmd, o->model);
  add_devices_option(cmd, o->model);
  cmd->add_option("-w,--window", o->request.window, "window length T (non-overlapping windows over the tokens)")->required();
  cmd->add_option("--windows", o->request.windows, "at most this many windows (default: every full window)");
  cmd->add_option("--exact-limit", o->request.exact_limit, "distances below this get one bin each (default: min(1024, T))");
  cmd->add_option("--bins-per-decade", o->request.bins_per_decade, "log-spaced bins per decade above the exact limit")
      ->capture_default_str();
  cmd->add_option("--bin-edges", o->request.bin_edges, "explicit lower edges of the bins above the exact limit, comma-separated")
      ->delimiter(',');
  cmd->add_option("--beyond", o->request.beyond, "distances X for the mass beyond X, comma-separated (default: 64,256,1024 below T)")
      ->delimiter(',');
  auto* real = cmd->add_option("--noise-real", o->request.noise_real, "Gaussian noise std on the real query component");
  auto* imag = cmd->add_option("--noise-imag", o->request.noise_imag, "Gaussian noise std on the imaginary query component");
  real->excludes(imag);
  imag->excludes(real);
  cmd->add_option("--seed", o->request.seed, "noise seed")->capture_default_str();
  cmd->add_option("-o,--out", o->out, "output prefix: PREFIX.csv, PREFIX_summary.json, PREFIX_{prob,score,bins}.npy")
      ->required();
  cmd->callback([o, &argv] { run_profile(*o, argv); });
}

}  // namespace ropescope::cli
