// Figures through gnuplot: a script (with its data inline) is run by the
// gnuplot executable, the terminal chosen from the output's extension (.png,
// .svg, .pdf). The figure is written to a temporary file and renamed when
// gnuplot exits 0, so a failed plot leaves nothing behind; gnuplot's exit
// status and its messages are checked and reported.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ropescope::plot {

struct FigureSize {
  int width_px = 1200;   // png/svg; pdf uses the same aspect at 100 px per inch
  int height_px = 500;
};

// Checks that `output` has a supported extension; throws ArgumentError naming it otherwise.
void check_plot_path(const std::filesystem::path& output);

// Renders `body` (gnuplot commands after `set terminal/output`) to `output`.
// Throws Error with gnuplot's own message when it fails or is not installed.
void render(const std::string& body, const std::filesystem::path& output, FigureSize size = {});

// A gnuplot inline data block named `name` (e.g. "$D0"), one row per line.
std::string data_block(std::string_view name, const std::vector<std::vector<double>>& rows);

// A gnuplot string literal (single-quoted, quotes doubled).
std::string quote(std::string_view text);

}  // namespace ropescope::plot
