// Shared pieces of the ropescope._core extension: the registration function of
// each topic (errors, theory, model, reports, plot), numpy arrays over C++ buffers
// without copies, JSON handed to Python as text, and progress callbacks that
// reach Python (tqdm, Ctrl-C) from a computation running without the GIL.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "analysis/progress.hpp"
#include "backend/backend.hpp"

namespace ropescope::python {

namespace nb = nanobind;

// Token ids as _core takes them: 1-D, C-contiguous int32 on the CPU (the
// Python layer converts and checks every other form first).
using TokenArray = nb::ndarray<const std::int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using DoubleArray = nb::ndarray<const double, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

void bind_errors(nb::module_& m);
void bind_theory(nb::module_& m);
void bind_model(nb::module_& m);
void bind_reports(nb::module_& m);
void bind_plot(nb::module_& m);

// A numpy array that takes over `data` (no copy): the vector moves into a
// heap object that a capsule owns and frees with the array.
template <class T>
nb::ndarray<nb::numpy, T> owned_array(std::vector<T>&& data, std::vector<std::size_t> shape) {
  auto* owner = new std::vector<T>(std::move(data));
  nb::capsule capsule(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(owner->data(), shape.size(), shape.data(), capsule);
}

// A numpy view of a buffer that lives in a bound object; returned with
// rv_policy::reference_internal, so the array keeps that object alive.
template <class T>
nb::ndarray<nb::numpy, T> view_array(T* data, std::vector<std::size_t> shape) {
  return nb::ndarray<nb::numpy, T>(data, shape.size(), shape.data(), nb::handle());
}

// A progress callback for the analyses, called while the GIL is released: it
// takes the GIL, stops the run on a pending signal (Ctrl-C: KeyboardInterrupt
// leaves the analysis as nb::python_error) and calls `callback(windows_done,
// windows_total, tokens_done)` unless it is None. `callback` must outlive the run.
analysis::ProgressCallback progress_callback(nb::handle callback);

// The model's vocabulary, the backend and what a report's save() needs to
// write the CLI's sidecars: shared by a Model and every report it returns.
struct ModelHandle {
  std::shared_ptr<backend::Backend> backend;
  std::string directory;
};

}  // namespace ropescope::python
