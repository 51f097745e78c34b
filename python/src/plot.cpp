// ropescope.plot over _core.plot: the figures of `ropescope plot` (gnuplot),
// drawn from saved analysis outputs by the same library call (plot::draw).
#include <fmt/format.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "core/error.hpp"
#include "plot/figures.hpp"

namespace ropescope::python {

namespace {

void draw(const std::string& kind, const std::vector<std::string>& inputs, const std::string& output,
          const std::string& title, const std::vector<std::string>& labels, const std::vector<std::string>& conditions,
          std::pair<int, int> size) {
  const auto [width, height] = size;
  const bool given = width != 0 || height != 0;
  if (given && (width < 100 || height < 100 || width > 20000 || height > 20000))
    throw ArgumentError("size", fmt::format("expected (width, height) in pixels, each 100 to 20000, got ({}, {})",
                                            width, height));
  plot::PlotRequest request{kind, {inputs.begin(), inputs.end()}, output, title, labels, conditions, {width, height}};
  nb::gil_scoped_release release;
  plot::draw(request);
}

std::vector<std::pair<std::string, std::string>> kinds() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& k : plot::plot_kinds()) out.emplace_back(k.name, k.input);
  return out;
}

}  // namespace

void bind_plot(nb::module_& m) {
  m.def("plot", &draw, nb::arg("kind"), nb::arg("inputs"), nb::arg("output"), nb::arg("title"), nb::arg("labels"),
        nb::arg("conditions"), nb::arg("size"));
  m.def("plot_kinds", &kinds);
}

}  // namespace ropescope::python
