// ropescope._core: the C++ library as a Python extension (nanobind). The public
// API is python/ropescope/__init__.py, which wraps these functions and classes.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"

#include "core/build_info.hpp"
#include "engine/engine.hpp"

NB_MODULE(_core, m) {
  namespace nb = nanobind;
  namespace py = ropescope::python;
  m.doc() = "ropescope's C++ library (RoPE / RoPE++ analyses); use the ropescope package, not this module";
  py::bind_errors(m);
  py::bind_theory(m);
  py::bind_model(m);
  py::bind_reports(m);
  py::bind_plot(m);
  m.def("available_devices", &ropescope::engine::available_devices,
        "The devices a Model can use here: 'cpu', then 'cuda' when built in and a device is present.");
  m.attr("__version__") = ropescope::tool_version();
  m.attr("git_commit") = ropescope::git_commit();
  m.def("describe_cuda_backend", &ropescope::engine::describe_cuda_backend, "One line on the CUDA backend.");
}
