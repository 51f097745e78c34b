// The result classes of ropescope._core (reports.hpp): arrays as numpy views
// of the report's own buffers (no copy; each view keeps its report alive), the
// documents as JSON text, the CSV / text forms, and save(), which writes the
// same files and sidecars as `ropescope profile`, `ropescope ppl` and
// `ropescope attn` (sidecars record the Python call as the invocation).
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <filesystem>

#include "analysis/run_record.hpp"
#include "io/atomic_file.hpp"
#include "reports.hpp"

namespace ropescope::python {

namespace {

std::vector<io::RunInput> model_inputs(const ModelHandle& model) {
  return {{std::filesystem::path(model.directory) / "config.json", "model config"}};
}

void save_profile(const ProfileResult& r, const std::string& prefix, const std::vector<std::string>& invocation) {
  io::check_output_prefix(prefix, "prefix");
  io::OutputTransaction outputs(analysis::with_sidecars(analysis::ProfileReport::output_files(prefix)),
                                model_inputs(r.model));
  analysis::RunRecord record("profile", invocation, *r.model.backend);
  record.fields()["tokens"] = r.tokens;
  r.report.write(outputs, prefix, record);
  outputs.commit();
}

void save_perplexity(const PerplexityResult& r, const std::string& prefix, const std::vector<std::string>& invocation) {
  io::check_output_prefix(prefix, "prefix");
  io::OutputTransaction outputs(
      analysis::with_sidecars(analysis::PerplexityReport::output_files(prefix, r.report.curve_length > 0)),
      model_inputs(r.model));
  analysis::RunRecord record("ppl", invocation, *r.model.backend);
  record.fields()["tokens"] = r.tokens;
  r.report.write(outputs, prefix, record);
  outputs.commit();
}

// DIR/attn_probs.npy (+ attn_scores.npy, virtual_imaginary.npy), a sidecar each, DIR/manifest.json.
void save_maps(const MapsResult& r, const std::string& directory, const std::vector<std::string>& invocation) {
  const std::filesystem::path dir = directory;
  if (!std::filesystem::is_directory(dir))
    throw ArgumentError("directory", "'" + directory + "' is not a directory (create it first)");
  io::OutputTransaction outputs(analysis::AttentionMaps::output_targets(dir, r.maps.request), model_inputs(r.model));
  analysis::RunRecord record("attn", invocation, *r.model.backend);
  record.fields()["tokens"] = r.tokens;
  r.maps.write(outputs, dir, record);
  outputs.commit();
}

// A [maps, rows, columns] view of one of the maps' arrays; None when the run did not keep it.
nb::object map_array(MapsResult& r, std::vector<float>& data) {
  if (data.empty()) return nb::none();
  const auto shape = r.maps.shape();
  return nb::cast(view_array(data.data(), {shape[0], shape[1], shape[2]}), nb::rv_policy::reference_internal,
                  nb::find(&r));
}

}  // namespace

void bind_reports(nb::module_& m) {
  // [layers, heads, bins]
  auto profile_shape = [](const ProfileResult& r) {
    return std::vector<std::size_t>{std::size_t(r.report.layers), std::size_t(r.report.heads),
                                    std::size_t(r.report.bins.size())};
  };
  nb::class_<ProfileResult>(m, "ProfileResult")
      .def_prop_ro("mean_prob", [=](ProfileResult& r) { return view_array(r.mean_prob.data(), profile_shape(r)); },
                   nb::rv_policy::reference_internal)
      .def_prop_ro("mean_score", [=](ProfileResult& r) { return view_array(r.mean_score.data(), profile_shape(r)); },
                   nb::rv_policy::reference_internal)
      .def_prop_ro("bin_edges", [](ProfileResult& r) {
            return view_array(r.bin_edges.data(), {std::size_t(r.report.bins.size()), 2});
          }, nb::rv_policy::reference_internal)
      .def_prop_ro("layers", [](const ProfileResult& r) { return r.report.layers; })
      .def_prop_ro("heads", [](const ProfileResult& r) { return r.report.heads; })
      .def("summary_json", [](const ProfileResult& r) { return r.report.summary().dump(); })
      .def("csv", [](const ProfileResult& r) { return r.report.csv(); })
      .def("save", &save_profile, nb::arg("prefix"), nb::arg("invocation"));

  nb::class_<PerplexityResult>(m, "PerplexityResult")
      .def_prop_ro("conditions", [](const PerplexityResult& r) {
        std::vector<std::string> names;
        for (const auto& c : r.report.conditions) names.push_back(c.name);
        return names;
      })
      .def_prop_ro("curve", [](PerplexityResult& r) -> nb::object {
            if (r.curve.empty()) return nb::none();
            const std::size_t conditions = r.report.conditions.size();
            return nb::cast(view_array(r.curve.data(), {conditions, r.curve.size() / conditions}),
                            nb::rv_policy::reference_internal, nb::find(&r));
          })
      .def("sidecar_json", [](const PerplexityResult& r) { return r.report.sidecar_fields().dump(); })
      .def("csv", [](const PerplexityResult& r) { return r.report.csv(); })
      .def("table", [](const PerplexityResult& r) { return r.report.table(); })
      .def("curve_csv", [](const PerplexityResult& r) { return r.report.curve_csv(); })
      .def("save", &save_perplexity, nb::arg("prefix"), nb::arg("invocation"));

  nb::class_<MapsResult>(m, "MapsResult")
      .def_prop_ro("probabilities", [](MapsResult& r) { return map_array(r, r.maps.probabilities); })
      .def_prop_ro("scores", [](MapsResult& r) { return map_array(r, r.maps.scores); })
      .def_prop_ro("virtual_imaginary", [](MapsResult& r) { return map_array(r, r.maps.virtual_imaginary); })
      .def("manifest_json", [](const MapsResult& r) { return r.maps.manifest().dump(); })
      .def("save", &save_maps, nb::arg("directory"), nb::arg("invocation"));
}

}  // namespace ropescope::python
