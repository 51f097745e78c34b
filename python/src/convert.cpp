// Errors and progress across the language boundary: the library's exception
// types become Python exceptions with the same messages (ArgumentError ->
// ValueError, FormatError -> ropescope.FormatError, a RuntimeError; any other
// Error -> RuntimeError; std::bad_alloc -> MemoryError), and progress
// callbacks re-enter Python from a computation that released the GIL.
#include <new>

#include "bindings.hpp"
#include "core/error.hpp"

namespace ropescope::python {

namespace {
PyObject* format_error_type = nullptr;
}  // namespace

void bind_errors(nb::module_& m) {
  static nb::exception<FormatError> format_error(m, "FormatError", PyExc_RuntimeError);
  format_error_type = format_error.ptr();
  // Registered after nb::exception's own translator, so tried first.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const ArgumentError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const FormatError& e) {
      PyErr_SetString(format_error_type, e.what());
    } catch (const Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
    }
  });
}

analysis::ProgressCallback progress_callback(nb::handle callback) {
  return [callback](const analysis::Progress& p) {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
    if (!callback.is_none()) callback(p.windows_done, p.windows_total, p.tokens_done);
  };
}

}  // namespace ropescope::python
