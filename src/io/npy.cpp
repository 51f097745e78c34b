// .npy writing (see npy.hpp; reading is in npy_read.cpp).
#include "io/npy.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::io {
namespace {

template <class T>
constexpr const char* npy_descr();
template <>
constexpr const char* npy_descr<float>() { return "<f4"; }
template <>
constexpr const char* npy_descr<double>() { return "<f8"; }
template <>
constexpr const char* npy_descr<std::int32_t>() { return "<i4"; }
template <>
constexpr const char* npy_descr<std::int64_t>() { return "<i8"; }
template <>
constexpr const char* npy_descr<std::uint32_t>() { return "<u4"; }

}  // namespace

template <class T>
void write_npy(AtomicOutput& out, std::span<const T> data, const std::vector<std::uint64_t>& shape) {
  std::uint64_t count = 1;
  std::string dims;
  for (auto d : shape) {
    count *= d;
    dims += fmt::format("{}, ", d);
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(3,)" for one dim, "(2, 3)" otherwise
  if (count != data.size())
    throw Error(fmt::format("writing '{}': {} values do not fill shape ({})", out.target().string(), data.size(), dims));
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", npy_descr<T>(), dims);
  // magic (6) + version (2) + header length (2) + header + '\n', padded to a multiple of 64
  const std::size_t total = ((10 + header.size() + 1 + 63) / 64) * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string preamble = "\x93NUMPY";
  preamble += '\x01';
  preamble += '\x00';
  const std::uint16_t length = static_cast<std::uint16_t>(header.size());
  preamble += static_cast<char>(length & 0xff);
  preamble += static_cast<char>(length >> 8);
  out.write(preamble + header);
  out.write(data.data(), data.size() * sizeof(T));
}

template <class T>
void write_npy(const std::filesystem::path& path, std::span<const T> data, const std::vector<std::uint64_t>& shape) {
  OutputTransaction transaction({path});
  write_npy<T>(transaction.output(path), data, shape);
  transaction.commit();
}

template void write_npy<float>(AtomicOutput&, std::span<const float>, const std::vector<std::uint64_t>&);
template void write_npy<double>(AtomicOutput&, std::span<const double>, const std::vector<std::uint64_t>&);
template void write_npy<std::int32_t>(AtomicOutput&, std::span<const std::int32_t>, const std::vector<std::uint64_t>&);
template void write_npy<std::int64_t>(AtomicOutput&, std::span<const std::int64_t>, const std::vector<std::uint64_t>&);
template void write_npy<std::uint32_t>(AtomicOutput&, std::span<const std::uint32_t>, const std::vector<std::uint64_t>&);
template void write_npy<float>(const std::filesystem::path&, std::span<const float>, const std::vector<std::uint64_t>&);
template void write_npy<double>(const std::filesystem::path&, std::span<const double>, const std::vector<std::uint64_t>&);
template void write_npy<std::int32_t>(const std::filesystem::path&, std::span<const std::int32_t>,
                                      const std::vector<std::uint64_t>&);
template void write_npy<std::int64_t>(const std::filesystem::path&, std::span<const std::int64_t>,
                                      const std::vector<std::uint64_t>&);
template void write_npy<std::uint32_t>(const std::filesystem::path&, std::span<const std::uint32_t>,
                                       const std::vector<std::uint64_t>&);

}  // namespace ropescope::io
