// NumPy .npy arrays (format 1.0, little-endian, C order): writing analysis
// outputs that np.load reads, and reading token files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ropescope::io {

class AtomicOutput;

// Writes `data` as an array of `shape` to a staged output (atomic_file.hpp).
// T is float, double, std::int32_t, std::int64_t or std::uint32_t.
template <class T>
void write_npy(AtomicOutput& out, std::span<const T> data, const std::vector<std::uint64_t>& shape);

// The same, to `path` on its own (temporary file + rename).
template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, const std::vector<std::uint64_t>& shape);

// A whole .npy file's integer contents, converted to int64. Accepts dtypes
// <i4, <i8, <u2, <u4 (and |u1), C order. Throws FormatError naming the file and
// what was expected for anything else (Fortran order, floats, big-endian...).
struct NpyIntegers {
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> values;
  std::string dtype;  // as in the header, e.g. "<u2"
};
NpyIntegers read_npy_integers(const std::filesystem::path& path);

}  // namespace ropescope::io
