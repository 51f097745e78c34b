// Figures through gnuplot. A Figure spawns the gnuplot executable itself with
// its stdin on a pipe and its stderr in a file, and drives it through
// gnuplot-iostream's `Gnuplot` constructed on that pipe (FILE*): commands as
// text, arrays inline with its binary senders (no temporary data files). The
// terminal comes from the output's extension (.png, .svg, .pdf). Gnuplot
// draws into the staging file of an io::AtomicOutput, which the caller's
// transaction publishes with the run's other outputs; gnuplot's exit status and
// messages are checked and reported, and an interrupted run terminates it.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/atomic_file.hpp"

namespace gnuplotio {
class Gnuplot;
}

namespace ropescope::plot {

struct FigureSize {
  int width_px = 1200;  // png/svg; pdf uses the same aspect at 100 px per inch
  int height_px = 500;
};

// Checks that `output` has a supported extension; throws ArgumentError naming it otherwise.
void check_plot_path(const std::filesystem::path& output);

class Figure {
 public:
  // Starts gnuplot drawing into the staging file of `output` (its target's
  // extension picks the terminal). Throws Error when gnuplot cannot be
  // started, ArgumentError for an unsupported extension.
  Figure(io::AtomicOutput& output, FigureSize size);
  // Without finish(): stops gnuplot (the staged image is its owner's to remove).
  ~Figure();
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

  // Sends gnuplot commands (a newline is added).
  void command(std::string_view commands);
  // A plot item reading the points (x[i], y[i]) inline, as binary float64
  // records; points where x or y is NaN are left out. Returns the item's
  // data specification ("'-' binary ..."), to be followed by its style.
  std::string points(const std::vector<double>& x, const std::vector<double>& y);
  // A plot item reading a rows x cols image (row-major) inline, as binary
  // float32; pixel (c, r) is drawn at x = x0 + c, y = y0 + r.
  std::string image(const std::vector<float>& values, std::size_t rows, std::size_t cols, double x0, double y0);
  // Sends "plot ITEM, ITEM, ..." and then the inline data of the items.
  void plot(const std::vector<std::string>& items);
  // Ends gnuplot and checks its exit status and the image it drew.
  void finish();

 private:
  void stop();
  int reap();  // waits for gnuplot to exit; its wait status

  std::filesystem::path output_, image_;
  io::AtomicOutput messages_;  // gnuplot's stderr
  pid_t pid_ = -1;
  std::unique_ptr<io::InterruptCleanupChild> child_;
  std::unique_ptr<gnuplotio::Gnuplot> gnuplot_;
  std::vector<std::function<void(gnuplotio::Gnuplot&)>> pending_;
  bool finished_ = false;
};

// A gnuplot string literal (single-quoted, quotes doubled).
std::string quote(std::string_view text);

}  // namespace ropescope::plot
