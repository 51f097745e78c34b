// The .npy integer reader over bytes in memory (io::parse_npy_integers): every
// accepted dtype and format version, numpy's header spellings, and each
// malformed header or size refused with a FormatError naming the source —
// sizes checked against the input before any allocation.
#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <string>

#include "core/error.hpp"
#include "io/npy.hpp"
#include "temp_dir.hpp"

using namespace ropescope;
using namespace ropescope::io;

namespace {

// A .npy file of format `version` with header dict `dict` (padded as numpy pads it) and data bytes.
std::string npy(const std::string& dict, const std::string& data, int version = 1) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  header.append(63 - (prefix + header.size()) % 64, ' ');
  header += '\n';
  std::string s = "\x93NUMPY";
  s += static_cast<char>(version);
  s += '\0';
  for (std::size_t b = 0; b < prefix - 8; ++b) s += static_cast<char>((header.size() >> (8 * b)) & 0xff);
  return s + header + data;
}

std::string dict(const std::string& descr, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

NpyIntegers parse(const std::string& file) {
  return parse_npy_integers(std::as_bytes(std::span(file.data(), file.size())), "mem.npy");
}

// The FormatError message of parsing `file` (fails the test if it parses).
std::string error_of(const std::string& file) {
  try {
    parse(file);
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << file;
  return {};
}

}  // namespace

TEST(Npy, ReadsEveryIntegerDtypeAndVersion) {
  const auto a = parse(npy(dict("<i4", "(2,)"), std::string("\xff\xff\xff\xff\x05\0\0\0", 8)));
  EXPECT_EQ(a.values, (std::vector<std::int64_t>{-1, 5}));
  EXPECT_EQ(a.shape, std::vector<std::uint64_t>{2});
  EXPECT_EQ(a.dtype, "<i4");
  EXPECT_EQ(parse(npy(dict("<u4", "(1,)"), "\xff\xff\xff\xff")).values, std::vector<std::int64_t>{4294967295});
  EXPECT_EQ(parse(npy(dict("<u2", "(1, 2)"), "\x01\x01\xff\xff")).values, (std::vector<std::int64_t>{257, 65535}));
  EXPECT_EQ(parse(npy(dict("|u1", "(3,)"), "abc")).values, (std::vector<std::int64_t>{'a', 'b', 'c'}));
  EXPECT_EQ(parse(npy(dict("<i8", "(1,)"), std::string(7, '\0') + "\x80")).values,
            std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min()});
  for (int version : {2, 3}) EXPECT_EQ(parse(npy(dict("|u1", "(1,)"), "z", version)).values, std::vector<std::int64_t>{'z'});
  // numpy's other spellings: double quotes, no trailing comma after the last item, a scalar, an empty array.
  EXPECT_EQ(parse(npy("{\"descr\": \"|u1\", \"shape\": (2, 1), \"fortran_order\": False}", "xy")).shape,
            (std::vector<std::uint64_t>{2, 1}));
  EXPECT_EQ(parse(npy(dict("|u1", "()"), "q")).values, std::vector<std::int64_t>{'q'});
  EXPECT_TRUE(parse(npy(dict("<i4", "(0,)"), "")).values.empty());
}

TEST(Npy, MalformedFilesAreRefusedNamingTheSource) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "missing the \\x93NUMPY magic"},
      {"\x93NUMPY", "missing the \\x93NUMPY magic"},
      {std::string("\x93NUMPY\x04\0\0\0", 10), "unknown format version 4"},
      {std::string("\x93NUMPY\x01\0\xff", 9), "truncated header"},
      {npy(dict("<i4", "(1,)"), "").substr(0, 40), "truncated header"},
      {std::string("\x93NUMPY\x02\0\xff\xff\xff\xff", 12), "truncated header"},
      {npy(dict("<i4", "(2,)"), std::string(4, '\0')), "data shorter than shape (2,) needs (4 bytes of <i4)"},
      {npy(dict("<i4", "(1,)"), std::string(8, '\0')), "data longer than shape (1,) needs (8 bytes of <i4)"},
      {npy(dict("<i8", "(4000000000000000000,)"), ""), "data shorter"},
      {npy(dict("<i8", "(4294967296, 4294967296)"), ""), "shape (4294967296, 4294967296) overflows"},
      {npy(dict("<i8", "(99999999999999999999,)"), ""), "overflows 64 bits"},
      {npy(dict("<f4", "(1,)"), std::string(4, '\0')), "dtype '<f4'"},
      {npy(dict(">i4", "(1,)"), std::string(4, '\0')), "dtype '>i4'"},
      {npy("{'descr': '<i4', 'fortran_order': True, 'shape': (1,), }", std::string(4, '\0')), "Fortran order"},
      {npy("{'descr': '<i4', 'shape': (1,), }", std::string(4, '\0')), "no 'fortran_order'"},
      {npy("{'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')), "no 'descr'"},
      {npy("{'descr': '<i4', 'fortran_order': False, }", std::string(4, '\0')), "no 'shape'"},
      {npy(dict("<i4", "(1)"), std::string(4, '\0')), "a one-dimensional shape is written (N,)"},
      {npy(dict("<i4", "(-1,)"), std::string(4, '\0')), "expected a dimension"},
      {npy(dict("<i4", "(1,)") + "x", std::string(4, '\0')), "unexpected text after the header"},
      {npy("{'descr': '<i4', 'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')),
       "repeated key 'descr'"},
      {npy("{'descr': '<i4', 'fortran_order': Nope, 'shape': (1,), }", std::string(4, '\0')), "expected True or False"},
      {npy("{'descr': '<i4, 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')), "malformed header"},
  };
  for (const auto& [file, why] : cases) {
    const std::string message = error_of(file);
    EXPECT_EQ(message.rfind("mem.npy: not a usable .npy integer array: ", 0), 0u) << message;
    EXPECT_NE(message.find(why), std::string::npos) << why << " | " << message;
  }
}

TEST(Npy, ReadFromAFileMatchesWriteNpy) {
  test::TempDir dir;
  const std::vector<std::int64_t> ids = {3, 1, 4, 1, 5, 9};
  write_npy<std::int64_t>(dir / "w.npy", ids, {2, 3});
  const auto a = read_npy_integers(dir / "w.npy");
  EXPECT_EQ(a.values, ids);
  EXPECT_EQ(a.shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(npy_shape_string(a.shape), "(2, 3)");
  EXPECT_EQ(npy_shape_string({7}), "(7,)");
  EXPECT_EQ(npy_shape_string({}), "()");
}
