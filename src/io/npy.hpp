// NumPy .npy arrays (format 1.0, little-endian, C order): writing analysis
// outputs that np.load reads, and reading token files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ropescope::io {

// Writes `data` as an array of `shape` atomically (temporary file + rename).
// T is float, double, std::int32_t or std::int64_t.
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
