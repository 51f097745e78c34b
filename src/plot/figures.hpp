// `ropescope plot`: one figure per kind of analysis output, drawn from the
// outputs alone (CSV, npy, summary JSON and their sidecars), several runs on
// one figure where the kind compares runs.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "plot/gnuplot.hpp"

namespace ropescope::plot {

struct PlotRequest {
  std::string kind;                           // one of plot_kinds()
  std::vector<std::filesystem::path> inputs;  // the outputs to draw, one per run
  std::filesystem::path output;               // .png, .svg or .pdf
  std::string title;                          // empty: a title from the kind
  std::vector<std::string> labels;            // one per input; empty: from the sidecars
  std::vector<std::string> conditions;        // ppl/curve/ablation: conditions to draw; empty: all
  FigureSize size{0, 0};                      // pixels; 0: a size that suits the kind and its inputs
};

// The kinds, each with what it reads, for usage messages.
struct PlotKind {
  std::string name, input;
};
const std::vector<PlotKind>& plot_kinds();

// Theoretical decay curves of one variant, as `ropescope decay` computes them.
struct DecayCurve {
  std::string label;
  std::vector<double> distance, re_discrete, im_discrete, re_integral, im_integral;
};
// The Figure-1-style figure of `curves` (real and imaginary panels; discrete
// sums thin, integral forms bold); log-spaced distances on a log axis. Used
// by `plot decay` and `decay --plot`; drawn into `image`, staged in the caller's transaction.
void draw_decay_curves(const std::vector<DecayCurve>& curves, io::AtomicOutput& image, FigureSize size,
                       const std::string& title);

// Draws the figure. ArgumentError for a bad request (unknown kind, an input of
// the wrong kind or missing, runs that cannot share axes); Error when gnuplot
// fails. The figure replaces `output` only when complete; nothing changes there on failure.
void draw(const PlotRequest& request);

}  // namespace ropescope::plot
