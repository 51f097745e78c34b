// `ropescope plot KIND INPUT... --out FIG`: the figure of analysis outputs
// (plot/figures.hpp); several runs of one kind compare on one figure.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>

#include "cli/commands.hpp"
#include "plot/figures.hpp"

namespace ropescope::cli {

void add_plot_command(CLI::App& app) {
  auto request = std::make_shared<plot::PlotRequest>();
  std::string kinds;
  for (const auto& k : plot::plot_kinds()) kinds += fmt::format("\n  {:9} {}", k.name, k.input);
  auto* cmd = app.add_subcommand("plot", "draw the figure of analysis outputs (PNG, SVG or PDF); kinds:" + kinds);
  cmd->add_option("kind", request->kind, "decay, profile, meandist, ppl, curve, attn, noise or ablation")->required();
  cmd->add_option("inputs", request->inputs, "analysis outputs, one per run")->required();
  cmd->add_option("-o,--out", request->output, "figure file (.png, .svg or .pdf)")->required();
  cmd->add_option("--title", request->title, "figure title (default: one for the kind)");
  cmd->add_option("--labels", request->labels, "one label per input (default: model names from the sidecars)")->delimiter(',');
  cmd->add_option("--conditions", request->conditions, "ppl, curve, ablation: conditions to draw (default: all)")->delimiter(',');
  cmd->callback([request] { plot::draw(*request); });
}

}  // namespace ropescope::cli
