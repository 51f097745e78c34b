// NumPy .npy arrays (little-endian, C order): writing analysis outputs that
// np.load reads (format 1.0), and reading integer arrays (formats 1.0 to 3.0)
// such as token files, from a file or from bytes in memory.
#pragma once

#include <cstddef>
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
// <i4, <i8, <u2, <u4 (and |u1), C order, a header that is exactly the dict
// numpy writes ('descr', 'fortran_order', 'shape'), and data exactly as long
// as the shape needs. Throws FormatError naming the file and what was expected
// for anything else (Fortran order, floats, big-endian, a truncated file...);
// sizes are checked against the input before anything is allocated.
struct NpyIntegers {
  std::vector<std::uint64_t> shape;
  std::vector<std::int64_t> values;
  std::string dtype;  // as in the header, e.g. "<u2"
};
NpyIntegers parse_npy_integers(std::span<const std::byte> file, const std::string& source);
// parse_npy_integers of the file at `path` (mapped, not copied); a path that is
// not a regular file is refused as io::require_regular_file does.
NpyIntegers read_npy_integers(const std::filesystem::path& path);

// "(6,)" or "(1, 6)": a shape as numpy prints it, for messages.
std::string npy_shape_string(const std::vector<std::uint64_t>& shape);

}  // namespace ropescope::io
