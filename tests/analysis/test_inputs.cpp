// Token inputs of the model analyses (io/tokens, io/npy): .npy arrays of every
// accepted integer dtype, raw little-endian integers, raw bytes; the first
// out-of-vocabulary id named by position; malformed .npy files named in the error.
#include <gtest/gtest.h>

#include <fstream>

#include "../common/run_command.hpp"
#include "core/error.hpp"
#include "io/npy.hpp"
#include "io/tokens.hpp"

namespace {

using ropescope::ArgumentError;
using ropescope::FormatError;
using ropescope::io::load_tokens;
using ropescope::io::TokenFormat;
using ropescope::io::TokenInput;
using ropescope::testing::TempDir;

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Little-endian bytes of `values`, each `size` bytes wide.
std::string little_endian(const std::vector<long long>& values, int size) {
  std::string s;
  for (long long v : values)
    for (int b = 0; b < size; ++b) s += static_cast<char>((static_cast<unsigned long long>(v) >> (8 * b)) & 0xff);
  return s;
}

// A version-1.0 .npy file with the given header fields and data bytes.
std::string npy_file(const std::string& descr, const std::string& shape, const std::string& data,
                     const std::string& fortran = "False") {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': (" + shape + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string s = "\x93NUMPY";
  s += '\x01';
  s += '\x00';
  s += static_cast<char>(header.size() & 0xff);
  s += static_cast<char>(header.size() >> 8);
  return s + header + data;
}

std::vector<std::int32_t> load(const std::filesystem::path& path, TokenFormat format, const std::string& dtype = "uint32",
                               int vocab = 256) {
  TokenInput input;
  input.path = path;
  input.format = format;
  input.raw_dtype = dtype;
  return load_tokens(input, vocab);
}

// The message of the exception `f` throws as E (fails the test if none).
template <class E, class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception of the expected type";
  return {};
}

const std::vector<long long> kIds = {0, 1, 255, 7, 128, 42};

TEST(TokenInputs, NpyOfEveryIntegerDtype) {
  TempDir dir;
  const std::vector<std::pair<std::string, int>> dtypes = {{"<i4", 4}, {"<i8", 8}, {"<u2", 2}, {"<u4", 4}, {"|u1", 1}};
  for (const auto& [descr, size] : dtypes) {
    std::string name = "t";  // built step by step: GCC 12 warns (-Wrestrict) on "t" + std::string&& here
    name += std::to_string(size) + descr.substr(1) + ".npy";
    auto path = dir / name;
    write_bytes(path, npy_file(descr, "6,", little_endian(kIds, size)));
    auto tokens = load(path, TokenFormat::npy);
    EXPECT_EQ(std::vector<long long>(tokens.begin(), tokens.end()), kIds) << descr;
    auto info = ropescope::io::read_npy_integers(path);
    EXPECT_EQ(info.dtype, descr);
    EXPECT_EQ(info.shape, std::vector<std::uint64_t>{6});
  }
}

TEST(TokenInputs, NpyBatchOfOneIsOneSequence) {
  TempDir dir;
  auto path = dir / "batch.npy";
  write_bytes(path, npy_file("<i4", "1, 6", little_endian({10, 11, 12, 20, 21, 22}, 4)));
  EXPECT_EQ(load(path, TokenFormat::npy), (std::vector<std::int32_t>{10, 11, 12, 20, 21, 22}));
  // Two sequences are refused, not flattened (tests/io/test_tokens.cpp has the other shapes).
  write_bytes(path, npy_file("<i4", "2, 3", little_endian({10, 11, 12, 20, 21, 22}, 4)));
  EXPECT_NE(error_of<FormatError>([&] { load(path, TokenFormat::npy); }).find("shape (2, 3)"), std::string::npos);
}

TEST(TokenInputs, NpyWrittenByWriteNpyRoundTrips) {
  TempDir dir;
  const std::vector<std::int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  ropescope::io::write_npy<std::int64_t>(dir / "w.npy", ids, {1, 8});
  auto tokens = load(dir / "w.npy", TokenFormat::npy);
  EXPECT_EQ(std::vector<std::int64_t>(tokens.begin(), tokens.end()), ids);
}

TEST(TokenInputs, RawIntegersOfEveryDtype) {
  TempDir dir;
  const std::vector<std::pair<std::string, int>> dtypes = {{"uint16", 2}, {"uint32", 4}, {"int32", 4}, {"int64", 8}};
  for (const auto& [dtype, size] : dtypes) {
    auto path = dir / ("raw." + dtype);
    write_bytes(path, little_endian(kIds, size));
    auto tokens = load(path, TokenFormat::raw, dtype);
    EXPECT_EQ(std::vector<long long>(tokens.begin(), tokens.end()), kIds) << dtype;
  }
  // Ids above 2^16 and 2^31 survive uint32 reading and are checked against a large vocabulary.
  auto big = dir / "big.u32";
  write_bytes(big, little_endian({70000, 5}, 4));
  EXPECT_EQ(load(big, TokenFormat::raw, "uint32", 100000), (std::vector<std::int32_t>{70000, 5}));
}

TEST(TokenInputs, RawBytesAreOneTokenEach) {
  TempDir dir;
  auto path = dir / "text.bin";
  write_bytes(path, std::string("a\0\xff\n", 4));
  EXPECT_EQ(load(path, TokenFormat::bytes), (std::vector<std::int32_t>{'a', 0, 255, '\n'}));
}

TEST(TokenInputs, OutOfVocabularyNamesTheFirstPosition) {
  TempDir dir;
  auto npy = dir / "oov.npy";
  write_bytes(npy, npy_file("<i4", "7,", little_endian({1, 2, 3, 4, 5, 300, 999}, 4)));
  auto message = error_of<ArgumentError>([&] { load(npy, TokenFormat::npy); });
  EXPECT_NE(message.find("position 5"), std::string::npos) << message;
  EXPECT_NE(message.find("300"), std::string::npos) << message;
  EXPECT_NE(message.find(npy.string()), std::string::npos) << message;

  auto negative = dir / "neg.i32";
  write_bytes(negative, little_endian({1, 2, -1, 4}, 4));
  message = error_of<ArgumentError>([&] { load(negative, TokenFormat::raw, "int32"); });
  EXPECT_NE(message.find("position 2"), std::string::npos) << message;
  // Bytes are in range for vocab 256, but not for a smaller one.
  auto bytes = dir / "b.bin";
  write_bytes(bytes, "ab\xf0");
  message = error_of<ArgumentError>([&] { load(bytes, TokenFormat::bytes, "uint32", 200); });
  EXPECT_NE(message.find("position 2"), std::string::npos) << message;
}

TEST(TokenInputs, BadNpyFilesAreNamedInTheError) {
  TempDir dir;
  struct Case {
    std::string name, contents, why;
  };
  const std::vector<Case> cases = {
      {"float.npy", npy_file("<f4", "2,", std::string(8, '\0')), "dtype '<f4'"},
      {"double.npy", npy_file("<f8", "1,", std::string(8, '\0')), "dtype '<f8'"},
      {"bigendian.npy", npy_file(">i4", "1,", std::string(4, '\0')), "dtype '>i4'"},
      {"fortran.npy", npy_file("<i4", "2, 2", std::string(16, '\0'), "True"), "Fortran order"},
      {"truncated.npy", npy_file("<i4", "4,", std::string(12, '\0')), "shorter"},
      {"long.npy", npy_file("<i4", "2,", std::string(12, '\0')), "longer"},
      {"huge.npy", npy_file("<i8", "4000000000000000,", std::string(8, '\0')), "shorter"},
      {"overflow.npy", npy_file("<i8", "4000000000, 4000000000, 4000000000", ""), "overflows"},
      {"header.npy", npy_file("<i4", "4,", "").substr(0, 30), "truncated header"},
      {"magic.npy", "PK\x03\x04 not numpy at all", "magic"},
  };
  for (const auto& c : cases) {
    auto path = dir / c.name;
    write_bytes(path, c.contents);
    auto message = error_of<FormatError>([&] { load(path, TokenFormat::npy); });
    EXPECT_NE(message.find(path.string()), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find(c.why), std::string::npos) << c.name << ": " << message;
  }
}

TEST(TokenInputs, OtherErrors) {
  TempDir dir;
  auto missing = dir / "missing.npy";
  auto message = error_of<ArgumentError>([&] { load(missing, TokenFormat::npy); });
  EXPECT_NE(message.find(missing.string()), std::string::npos) << message;
  EXPECT_THROW(load(dir.path, TokenFormat::bytes), ArgumentError);  // a directory

  auto empty = dir / "empty.npy";
  write_bytes(empty, npy_file("<i4", "0,", ""));
  message = error_of<ArgumentError>([&] { load(empty, TokenFormat::npy); });
  EXPECT_NE(message.find("no tokens"), std::string::npos) << message;

  auto odd = dir / "odd.u32";
  write_bytes(odd, std::string(6, '\1'));
  message = error_of<FormatError>([&] { load(odd, TokenFormat::raw, "uint32"); });
  EXPECT_NE(message.find(odd.string()), std::string::npos) << message;
  message = error_of<ArgumentError>([&] { load(odd, TokenFormat::raw, "float32"); });
  EXPECT_NE(message.find("dtype: 'float32' is not one of"), std::string::npos) << message;

  EXPECT_EQ(ropescope::io::parse_token_format("raw"), TokenFormat::raw);
  EXPECT_EQ(ropescope::io::parse_token_format("bytes"), TokenFormat::bytes);
  EXPECT_EQ(ropescope::io::parse_token_format("npy"), TokenFormat::npy);
  EXPECT_THROW(ropescope::io::parse_token_format("text"), ArgumentError);
}

}  // namespace
