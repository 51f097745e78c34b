// `ropescope plot KIND INPUT... --out FIG`: the figure of analysis outputs
// (plot/figures.hpp); several runs of one kind compare on one figure.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "core/error.hpp"
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
  auto size = std::make_shared<std::string>();
  cmd->add_option("--size", *size, "figure size in pixels, WIDTHxHEIGHT (pdf: 100 px per inch; default: one per kind)");
  cmd->callback([request, size] {
    if (!size->empty()) {
      int used = 0;
      if (std::sscanf(size->c_str(), "%dx%d%n", &request->size.width_px, &request->size.height_px, &used) != 2 ||
          used != static_cast<int>(size->size()) || request->size.width_px < 100 || request->size.height_px < 100 ||
          request->size.width_px > 20000 || request->size.height_px > 20000)
        throw ArgumentError(fmt::format("--size '{}': expected WIDTHxHEIGHT in pixels, each 100 to 20000", *size));
    }
    plot::draw(*request);
  });
}

}  // namespace ropescope::cli
