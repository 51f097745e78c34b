// .npy reading and writing (see npy.hpp).
#include "io/npy.hpp"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <regex>

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

NpyIntegers read_npy_integers(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot open token file '{}'", path.string()));
  auto fail = [&](const std::string& why) { return FormatError(fmt::format("{}: not a usable .npy token array: {}", path.string(), why)); };
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw fail("missing the \\x93NUMPY magic");
  std::uint32_t header_length = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw fail("truncated header");
    header_length = b[0] | (b[1] << 8);
  } else if (magic[6] == 2 || magic[6] == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw fail("truncated header");
    header_length = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
  } else {
    throw fail(fmt::format("unknown format version {}", int(magic[6])));
  }
  if (header_length > (1u << 20)) throw fail("header longer than 1 MiB");
  std::string header(header_length, '\0');
  if (!in.read(header.data(), header_length)) throw fail("truncated header");
  std::smatch m;
  NpyIntegers result;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([^']*)'"))) throw fail("no 'descr' in the header");
  result.dtype = m[1];
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True"))) throw fail("Fortran order; expected C order");
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) throw fail("no 'shape' in the header");
  std::string dims = m[1];
  std::uint64_t count = 1;
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    result.shape.push_back(std::stoull(it->str()));
    if (__builtin_mul_overflow(count, result.shape.back(), &count)) throw fail(fmt::format("shape ({}) overflows", dims));
  }
  std::size_t size = 0;
  if (result.dtype == "<i4") size = 4;
  else if (result.dtype == "<i8") size = 8;
  else if (result.dtype == "<u2") size = 2;
  else if (result.dtype == "<u4") size = 4;
  else if (result.dtype == "|u1") size = 1;
  else throw fail(fmt::format("dtype '{}'; expected an integer array: int32, int64, uint16, uint32 (or uint8)", result.dtype));
  // Compare the data size with the file before allocating: a corrupt shape must
  // not turn into a huge allocation.
  const std::uint64_t available = std::filesystem::file_size(path) - static_cast<std::uint64_t>(in.tellg());
  std::uint64_t needed = 0;
  if (__builtin_mul_overflow(count, size, &needed) || needed > available)
    throw fail(fmt::format("data shorter than shape ({}) needs", dims));
  if (needed < available) throw fail(fmt::format("data longer than shape ({}) needs", dims));
  std::vector<unsigned char> bytes(needed);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    throw fail(fmt::format("data shorter than shape ({}) needs", dims));
  result.values.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    const unsigned char* p = bytes.data() + i * size;
    std::uint64_t u = 0;
    for (std::size_t b = 0; b < size; ++b) u |= std::uint64_t(p[b]) << (8 * b);
    if (result.dtype == "<i4") result.values[i] = static_cast<std::int32_t>(u);
    else result.values[i] = static_cast<std::int64_t>(u);
  }
  return result;
}

}  // namespace ropescope::io
