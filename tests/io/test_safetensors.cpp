// The safetensors writer and reader: round trips through our own code and
// through the official Python package, streaming, misaligned data, and the
// writer's refusal of bad input.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "io/safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace ropescope;
using namespace ropescope::io;

namespace {

template <class T>
std::span<const std::byte> as_bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span(v));
}

// The tensors tools/safetensors_roundtrip.py expects.
struct Expected {
  std::vector<float> f32, f16, bf16;
  std::vector<std::uint16_t> f16_bits, bf16_bits;
  std::vector<std::uint8_t> u8 = {0, 1, 2, 3, 4};
  std::vector<float> scalar = {42.0f};
  Expected() {
    for (int i = 0; i < 15; ++i) f32.push_back(i * 0.25f - 1.0f);
    for (int i = 0; i < 24; ++i) f16.push_back((i - 12) * 0.5f), f16_bits.push_back(float_to_f16(f16.back()));
    for (int i = 0; i < 7; ++i) bf16.push_back(i * 1.5f - 3.0f), bf16_bits.push_back(float_to_bf16(bf16.back()));
  }
  std::vector<TensorData> tensors() const {
    return {{"f32", Dtype::F32, {3, 5}, as_bytes_of(f32)},
            {"f16", Dtype::F16, {2, 3, 4}, as_bytes_of(f16_bits)},
            {"bf16", Dtype::BF16, {7}, as_bytes_of(bf16_bits)},
            {"u8", Dtype::U8, {5}, as_bytes_of(u8)},
            {"scalar", Dtype::F32, {}, as_bytes_of(scalar)}};
  }
  void verify(const SafetensorsFile& file) const {
    ASSERT_EQ(file.names().size(), 5u);
    EXPECT_EQ(file.tensor("f32").to_float(), f32);
    EXPECT_EQ(file.tensor("f32").shape(), (std::vector<std::uint64_t>{3, 5}));
    EXPECT_EQ(file.tensor("f16").to_float(), f16);
    EXPECT_EQ(file.tensor("f16").dtype(), Dtype::F16);
    EXPECT_EQ(file.tensor("bf16").to_float(), bf16);
    EXPECT_EQ(file.tensor("scalar").numel(), 1u);
    EXPECT_EQ(file.tensor("scalar").at(0), 42.0f);
    const auto u8view = file.tensor("u8");
    ASSERT_EQ(u8view.bytes().size(), 5u);
    EXPECT_EQ(std::memcmp(u8view.bytes().data(), u8.data(), 5), 0);
    EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"writer", "ropescope-test"}}));
  }
};

const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"writer", "ropescope-test"}};

}  // namespace

TEST(Safetensors, WriteThenReadBack) {
  test::TempDir dir;
  const Expected e;
  write_safetensors(dir / "a.safetensors", e.tensors(), kMetadata);
  const SafetensorsFile file(dir / "a.safetensors");
  e.verify(file);
  // Header padded to 8 bytes; tensors ordered by decreasing element size, so each is aligned.
  EXPECT_EQ(file.header().header_length % 8, 0u);
  for (const auto& t : file.header().tensors) EXPECT_EQ(t.begin % dtype_size(t.dtype), 0u) << t.name;
  EXPECT_EQ(file.names().front(), "f32");
  // Only the target remains: no temporary files.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, WriterStreamsInPieces) {
  test::TempDir dir;
  std::vector<float> big(10000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i);
  SafetensorsWriter writer(dir / "s.safetensors", {{"w", Dtype::F32, {100, 100}}});
  const auto bytes = as_bytes_of(big);
  for (std::size_t at = 0; at < bytes.size(); at += 999) writer.write(bytes.subspan(at, std::min<std::size_t>(999, bytes.size() - at)));
  writer.commit();
  EXPECT_EQ(SafetensorsFile(dir / "s.safetensors").tensor("w").to_float(), big);
}

TEST(Safetensors, WriterRejectsBadInputAndLeavesNothing) {
  test::TempDir dir;
  const std::vector<float> four(4, 1.0f);
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"", Dtype::F32, {4}, as_bytes_of(four)}}), ArgumentError);
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"a", Dtype::F32, {4}, as_bytes_of(four)},
                                                         {"a", Dtype::F32, {4}, as_bytes_of(four)}}),
               ArgumentError);
  EXPECT_THROW(write_safetensors(dir / "x.safetensors", {{"a", Dtype::F32, {5}, as_bytes_of(four)}}), ArgumentError);
  {
    SafetensorsWriter short_writer(dir / "x.safetensors", {{"a", Dtype::F32, {4}}});
    short_writer.write(as_bytes_of(four).first(8));
    EXPECT_THROW(short_writer.commit(), ArgumentError);
    EXPECT_THROW(short_writer.write(as_bytes_of(four)), ArgumentError);  // 8 + 16 > 16
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 0);
}

TEST(Safetensors, ReadsMisalignedDataWithoutUndefinedBehaviour) {
  const SafetensorsFile file(test::source_dir() / "tests/data/safetensors/good/misaligned.safetensors");
  EXPECT_NE(file.header().data_offset % 4, 0u);
  EXPECT_EQ(file.tensor("b").to_float(), std::vector<float>{1.5f});
  const auto a = file.tensor("a");
  EXPECT_NE(reinterpret_cast<std::uintptr_t>(a.bytes().data()) % 4, 0u);  // really misaligned in memory
  EXPECT_EQ(a.to_float(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(a.at(1), -2.0f);
}

TEST(Safetensors, TypedAccessRefusesNonFloatDtypes) {
  const SafetensorsFile file(test::source_dir() / "tests/data/safetensors/good/zero_sized_and_scalar.safetensors");
  const auto z = file.tensor("z");
  EXPECT_EQ(z.numel(), 0u);
  try {
    (void)z.to_float();
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), file.path().string() + ": unsupported dtype I64 in tensor \"z\" (expected F32, F16, BF16 or F64)");
  }
  EXPECT_EQ(file.tensor("s").at(0), 0.25f);
  EXPECT_THROW(file.tensor("nope"), FormatError);
}

TEST(Safetensors, RoundTripWithOfficialPythonPackage) {
  if (!test::python_with_safetensors()) GTEST_SKIP() << "python3 with numpy and safetensors not found (pip install -r tests/requirements.txt)";
  test::TempDir dir;
  const Expected e;
  write_safetensors(dir / "ours.safetensors", e.tensors(), kMetadata);
  const std::string command = "python3 " + (test::source_dir() / "tests/tools/safetensors_roundtrip.py").string() + " " +
                              (dir / "ours.safetensors").string() + " " + (dir / "theirs.safetensors").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  e.verify(SafetensorsFile(dir / "theirs.safetensors"));
}
