// `ropescope ppl`: perplexity across context lengths (ROPEPP.md section 5).
// Strided sliding-window perplexity at each --lengths L, an optional
// per-position loss curve (--curve T), bits per byte for byte-level input, and
// a sweep of conditions against the clean model: query noise on the real or
// imaginary component, ablation of real or imaginary heads, and inference-time
// RoPE overrides (--scaling) for extrapolation beyond the training length.
#include <fmt/format.h>

#include <optional>

#include "analysis/perplexity_report.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/terminal_progress.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::cli {
namespace {

struct PplOptions {
  ModelArgs model;
  analysis::PerplexityRequest request;
  std::string out;
};

void run_ppl(const PplOptions& o, const CommandLine& argv) {
  analysis::PerplexityRequest request = o.request;
  request.angles = base_forward_options(o.model).angles;
  // Everything that can be refused is checked before the model is loaded.
  analysis::check_perplexity_request(request);
  io::check_output_prefix(o.out, "--out");
  // Every output is checked and staged before the model is loaded (by process 0 of a group over processes).
  const bool writes = writes_outputs(o.model);
  std::optional<io::OutputTransaction> outputs;
  if (writes)
    outputs.emplace(analysis::with_sidecars(analysis::PerplexityReport::output_files(o.out, request.curve > 0)),
                    run_inputs(o.model));
  auto backend = open_backend(o.model);
  const auto input = load_input(o.model, backend->model().config.vocab_size);
  analysis::RunRecord record("ppl", argv, *backend);
  const auto report = [&] {
    TerminalProgress progress("ppl", o.model.quiet || !writes);
    return analysis::perplexity(*backend, {input.ids, input.byte_level, input.bytes}, request, progress.callback());
  }();
  // Outputs are written only after every condition has run.
  if (!writes) return;
  record.fields()["tokens"] = input.description;
  report.write(*outputs, o.out, record);
  outputs->commit();
  fmt::print("{}", report.table());
}

}  // namespace

void add_ppl_command(CLI::App& app, const CommandLine& argv) {
  auto o = std::make_shared<PplOptions>();
  auto* cmd = app.add_subcommand("ppl", "Perplexity across context lengths: sliding windows, per-position loss, "
                                        "noise / ablation / RoPE-scaling sweeps");
  add_model_options(cmd, o->model);
  cmd->add_option("--lengths", o->request.lengths, "window lengths L, comma-separated (e.g. 128,256,512)")
      ->required()
      ->delimiter(',')
      ->allow_extra_args(false);
  add_devices_option(cmd, o->model);
  auto* stride = cmd->add_option("--stride", o->request.stride, "stride S for every L (default: L/2 for each L)");
  cmd->add_option("--stride-fraction", o->request.stride_fraction,
                  "instead of --stride: S = max(1, floor(F L)) for each L, 0 < F <= 1 (1: non-overlapping windows)")
      ->excludes(stride);
  cmd->add_option("--curve", o->request.curve, "also compute the per-position loss curve over windows of length T");
  cmd->add_option("--max-windows", o->request.max_windows, "at most this many curve windows (0: all that fit)")
      ->capture_default_str();
  cmd->add_option("--noise-imag", o->request.noise_imag, "Gaussian noise std values on the imaginary query component")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--noise-real", o->request.noise_real, "Gaussian noise std values on the real query component")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--seed", o->request.seed, "noise seed")->capture_default_str();
  cmd->add_option("--ablate", o->request.ablate, "ablate all real, imaginary or all heads (repeatable: one condition each)")
      ->allow_extra_args(false);
  cmd->add_option("--scaling", o->request.scaling,
                  "RoPE override as key=value pairs on the model's spec, repeatable (one condition each): "
                  "type=none|linear|dynamic|yarn|yarn_ropepp|llama3, factor, base, original, partial, beta_fast, "
                  "beta_slow, low, high, mscale, mscale_all_dim, attention_factor, truncate, label")
      ->allow_extra_args(false);
  cmd->add_option("-o,--out", o->out, "output prefix: PREFIX.csv, PREFIX_curve.csv, PREFIX_curve.npy (+ .json sidecars)")
      ->required();
  cmd->callback([o, &argv] { run_ppl(*o, argv); });
}

}  // namespace ropescope::cli
