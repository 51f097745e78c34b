// F16 / BF16 <-> float conversions: exhaustive round trips, round-to-nearest-even
// ties, and agreement with the compiler's own _Float16 conversion.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "io/dtype.hpp"

using namespace ropescope::io;

TEST(Dtype, NamesAndSizes) {
  EXPECT_EQ(dtype_size(Dtype::BF16), 2u);
  EXPECT_EQ(dtype_size(Dtype::F64), 8u);
  EXPECT_EQ(dtype_size(Dtype::BOOL), 1u);
  EXPECT_EQ(to_string(Dtype::F8_E4M3), "F8_E4M3");
  EXPECT_EQ(dtype_from_name("U16"), Dtype::U16);
  EXPECT_FALSE(dtype_from_name("bf16").has_value());
  EXPECT_TRUE(is_float_dtype(Dtype::F16));
  EXPECT_FALSE(is_float_dtype(Dtype::I32));
}

TEST(Dtype, Bf16RoundTripsEveryValue) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(float_to_bf16(f), b) << b;
  }
}

TEST(Dtype, F16RoundTripsEveryValue) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = f16_to_float(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
      continue;
    }
    ASSERT_EQ(float_to_f16(f), b) << b;
  }
}

TEST(Dtype, KnownValues) {
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc000), -2.0f);
  EXPECT_EQ(f16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_TRUE(std::isinf(f16_to_float(0x7c00)));
  EXPECT_EQ(float_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);  // ties to even: inf
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);            // tie to even (0)
  EXPECT_EQ(float_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);            // 1.5 ulp: tie to even (2)
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf
}

TEST(Dtype, Bf16TiesRoundToEven) {
  // 1 + 2^-8 lies halfway between bf16 1.0 (0x3f80) and 1 + 2^-7 (0x3f81): even is 0x3f80.
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);
  // (1 + 2^-7) + 2^-8 lies halfway between 0x3f81 and 0x3f82: even is 0x3f82.
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);  // just above half
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A signalling NaN whose payload sits only in the low bits must stay NaN, not become inf.
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}

TEST(Dtype, F16MatchesCompilerConversion) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 2'000'000; ++i) {
    const float f = std::bit_cast<float>(bits(rng));
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    std::uint16_t expected;
    std::memcpy(&expected, &h, 2);
    ASSERT_EQ(float_to_f16(f), expected) << std::bit_cast<std::uint32_t>(f);
    ASSERT_EQ(f16_to_float(expected), static_cast<float>(h));
  }
}

TEST(Dtype, LoadAsFloatReadsMisalignedData) {
  alignas(8) std::byte buffer[16] = {};
  const float value = -3.25f;
  std::memcpy(buffer + 1, &value, 4);  // deliberately misaligned
  EXPECT_EQ(load_as_float(buffer + 1, Dtype::F32, 0), value);
  const std::uint16_t bf = float_to_bf16(1.5f);
  std::memcpy(buffer + 7, &bf, 2);
  EXPECT_EQ(load_as_float(buffer + 5, Dtype::BF16, 1), 1.5f);
}
