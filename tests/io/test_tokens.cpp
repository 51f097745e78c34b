// Token inputs (io::parse_tokens, io::load_tokens) beyond the basic readings of
// tests/analysis/test_inputs.cpp: only shape (N,) or (1, N) is accepted from a
// .npy file, a .npy file read as bytes is refused, and empty or truncated files
// are refused with messages naming the file, its size or shape and what is accepted.
#include <gtest/gtest.h>

#include <span>
#include <string>

#include "core/error.hpp"
#include "io/npy.hpp"
#include "io/tokens.hpp"
#include "temp_dir.hpp"

using namespace ropescope;
using namespace ropescope::io;

namespace {

std::vector<std::int32_t> load(const std::filesystem::path& path, TokenFormat format, const std::string& dtype = "uint32") {
  return load_tokens({path, format, dtype}, 256);
}

template <class E, class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "other exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

}  // namespace

TEST(Tokens, NpyShapeNOrABatchOfOne) {
  test::TempDir dir;
  const std::vector<std::int32_t> ids = {1, 2, 3, 4, 5, 6};
  write_npy<std::int32_t>(dir / "n.npy", ids, {6});
  write_npy<std::int32_t>(dir / "batch.npy", ids, {1, 6});
  EXPECT_EQ(load(dir / "n.npy", TokenFormat::npy), ids);
  EXPECT_EQ(load(dir / "batch.npy", TokenFormat::npy), ids);
  // Two sequences, a 3-D array, a column, a scalar: refused, never flattened.
  const std::vector<std::pair<std::vector<std::uint64_t>, std::string>> refused = {
      {{2, 3}, "(2, 3)"}, {{1, 2, 3}, "(1, 2, 3)"}, {{6, 1}, "(6, 1)"}};
  for (const auto& [shape, printed] : refused) {
    const auto path = dir / "shape.npy";
    write_npy<std::int32_t>(path, ids, shape);
    const auto message = error_of<FormatError>([&] { load(path, TokenFormat::npy); });
    EXPECT_EQ(message, "token file '" + path.string() + "': a .npy array of shape " + printed +
                           "; expected shape (N,) or (1, N), one sequence");
  }
  write_npy<std::int32_t>(dir / "scalar.npy", std::span(ids).first(1), {});
  EXPECT_NE(error_of<FormatError>([&] { load(dir / "scalar.npy", TokenFormat::npy); }).find("shape ()"), std::string::npos);
}

TEST(Tokens, BytesOfANpyFileAreRefused) {
  test::TempDir dir;
  const std::vector<std::int32_t> ids = {1, 2};
  write_npy<std::int32_t>(dir / "t.npy", ids, {2});
  const auto message = error_of<ArgumentError>([&] { load(dir / "t.npy", TokenFormat::bytes); });
  EXPECT_EQ(message, "token file '" + (dir / "t.npy").string() +
                         "' is a .npy file (it starts with \\x93NUMPY), not raw bytes: use --format npy or drop --bytes");
  // Text that merely contains the magic later on is fine.
  test::write_file(dir / "t.txt", "x\x93NUMPY");
  EXPECT_EQ(load(dir / "t.txt", TokenFormat::bytes).size(), 7u);
}

TEST(Tokens, EmptyAndTruncatedFilesNameFileSizeAndDtype) {
  test::TempDir dir;
  test::write_file(dir / "empty", "");
  for (auto format : {TokenFormat::npy, TokenFormat::raw, TokenFormat::bytes})
    EXPECT_EQ(error_of<FormatError>([&] { load(dir / "empty", format); }),
              "token file '" + (dir / "empty").string() + "' is empty (0 bytes)");
  test::write_file(dir / "short", "\x01\x02");
  EXPECT_EQ(error_of<FormatError>([&] { load(dir / "short", TokenFormat::raw, "uint32"); }),
            "token file '" + (dir / "short").string() + "': 2 bytes is not a whole number of uint32 values (4 bytes each)");
  test::write_file(dir / "odd", std::string(10, '\0'));
  EXPECT_EQ(error_of<FormatError>([&] { load(dir / "odd", TokenFormat::raw, "int64"); }),
            "token file '" + (dir / "odd").string() + "': 10 bytes is not a whole number of int64 values (8 bytes each)");
  EXPECT_EQ(load(dir / "odd", TokenFormat::raw, "uint16").size(), 5u);
  // An unknown dtype is named before the file is looked at, even an empty one.
  EXPECT_NE(error_of<ArgumentError>([&] { load(dir / "empty", TokenFormat::raw, "float32"); }).find("dtype: 'float32' is not one of"),
            std::string::npos);
}

TEST(Tokens, ParseTokensWorksOnBytesInMemory) {
  const std::string raw("\x05\0\x07\0", 4);
  const auto bytes = std::as_bytes(std::span(raw.data(), raw.size()));
  EXPECT_EQ(parse_tokens(bytes, "mem", TokenFormat::raw, "uint16", 8), (std::vector<std::int32_t>{5, 7}));
  EXPECT_EQ(parse_tokens(bytes, "mem", TokenFormat::bytes, "uint32", 8), (std::vector<std::int32_t>{5, 0, 7, 0}));
  EXPECT_NE(error_of<ArgumentError>([&] { parse_tokens(bytes, "mem", TokenFormat::raw, "uint16", 7); })
                .find("token id 7 at position 1"),
            std::string::npos);
}
