// Decay theory for Python: ropescope.decay's curves and ropescope.bounds'
// sign-change and base-for-context reports, computed by the same library
// calls as `ropescope decay` (analysis/decay_table.hpp).
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "analysis/decay_table.hpp"

namespace ropescope::python {

namespace {

// {"labels", "distance", one [variants, distances] float64 array per curve column, "csv", "variants" (JSON text)}.
nb::dict decay(int head_dim, double base, DoubleArray distances, const std::vector<std::string>& variant_texts) {
  const std::vector<double> at(distances.data(), distances.data() + distances.shape(0));
  analysis::DecayTable table;
  {
    nb::gil_scoped_release release;
    table = analysis::decay_table(analysis::decay_variants(variant_texts, head_dim, base, "variants"), at);
  }
  const std::size_t variants = table.curves.size(), count = at.size();
  auto stacked = [&](std::vector<double> analysis::DecayCurves::*column) {
    std::vector<double> all;
    all.reserve(variants * count);
    for (const auto& c : table.curves) all.insert(all.end(), (c.*column).begin(), (c.*column).end());
    return owned_array(std::move(all), {variants, count});
  };
  nb::dict out;
  std::vector<std::string> labels;
  for (const auto& c : table.curves) labels.push_back(c.label);
  out["labels"] = labels;
  out["distance"] = owned_array(std::vector<double>(at), {count});
  out["re_integral"] = stacked(&analysis::DecayCurves::re_integral);
  out["im_integral"] = stacked(&analysis::DecayCurves::im_integral);
  out["re_discrete"] = stacked(&analysis::DecayCurves::re_discrete);
  out["im_discrete"] = stacked(&analysis::DecayCurves::im_discrete);
  out["relative_bound"] = stacked(&analysis::DecayCurves::relative_bound);
  out["csv"] = table.csv();
  out["variants"] = table.variants().dump();
  return out;
}

// {"text": the table `decay --bound` prints, "json": the sidecar's "bounds" as JSON text}.
nb::dict bounds(int head_dim, double base, const std::vector<std::string>& variant_texts, long bound_max, long context) {
  analysis::DecayBounds result;
  {
    nb::gil_scoped_release release;
    const auto variants = analysis::decay_variants(variant_texts, head_dim, base, "variants");
    result = analysis::decay_bounds(variants, bound_max, context);
  }
  nb::dict out;
  out["text"] = result.text();
  out["json"] = result.json().dump();
  return out;
}

}  // namespace

void bind_theory(nb::module_& m) {
  m.def("decay", &decay, nb::arg("head_dim"), nb::arg("base"), nb::arg("distances"), nb::arg("variants"));
  m.def("bounds", &bounds, nb::arg("head_dim"), nb::arg("base"), nb::arg("variants"), nb::arg("bound_max"),
        nb::arg("context"));
}

}  // namespace ropescope::python
