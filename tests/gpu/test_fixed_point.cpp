// The fixed-point format of the GPU distance sums (kernels/ops/fixed_point.hpp),
// on the host, where the same to_fixed and negate run as on the device: an
// addend rounds to the nearest multiple of 2^-F (ties to even); 128-bit adds
// are exact whatever their order, and so are sums taken limb by limb in
// 32 bits (the fused forward's warp sums); a total converts to the nearest double
// (checked against long double arithmetic where that is exact, and on values
// built bit by bit); the addend limits keep every total in range; the overflow
// text names the kernel and the quantity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/ops/fixed_point.hpp"

namespace {

using namespace ropescope::kernels;

bool equal(Fixed128 a, Fixed128 b) { return a.lo == b.lo && a.hi == b.hi; }

TEST(FixedPoint, SmallValuesAreExactIntegers) {
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(0.0), Fixed128{0, 0}));
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(1.0), Fixed128{1ull << 50, 0}));
  EXPECT_TRUE(equal(to_fixed<kStatsFraction>(1.0), Fixed128{0, 1}));
  EXPECT_TRUE(equal(to_fixed<kProbFraction>(1.0), Fixed128{0, 1ll << 36}));
  // -1 in F = 64: the 128-bit integer -2^64.
  EXPECT_TRUE(equal(to_fixed<kStatsFraction>(-1.0), Fixed128{0, -1}));
  // -2^-50 in F = 50: the integer -1, all ones.
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(-std::ldexp(1.0, -50)), Fixed128{~0ull, -1}));
}

TEST(FixedPoint, AddendsRoundToNearestTiesToEven) {
  const double unit = std::ldexp(1.0, -kScoreFraction);
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(0.5 * unit), Fixed128{0, 0}));    // tie: to even 0
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(1.5 * unit), Fixed128{2, 0}));    // tie: to even 2
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(1.25 * unit), Fixed128{1, 0}));
  EXPECT_TRUE(equal(to_fixed<kScoreFraction>(-1.5 * unit), negate(Fixed128{2, 0})));
  EXPECT_EQ(to_double(to_fixed<kScoreFraction>(0.3), kScoreFraction),
            std::ldexp(std::nearbyint(std::ldexp(0.3, 50)), -50));
}

TEST(FixedPoint, TotalsAreExactAndIndependentOfOrder) {
  // 4000 fp32 addends of mixed sign and size (scores) added in two orders,
  // against the exact sum in long double of the rounded addends (each is an
  // integer below 2^64 in units of 2^-50 here, so long double adds them exactly).
  std::mt19937 rng(16);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<double> addends;
  for (int i = 0; i < 4000; ++i) addends.push_back(static_cast<double>(normal(rng) * std::exp2(normal(rng) * 6.f)));
  Fixed128 forward{0, 0}, backward{0, 0};
  long double exact = 0;
  for (double v : addends) {
    forward = add(forward, to_fixed<kScoreFraction>(v));
    exact += std::nearbyint(std::ldexp(static_cast<long double>(v), kScoreFraction));
  }
  std::shuffle(addends.begin(), addends.end(), rng);
  for (double v : addends) backward = add(backward, to_fixed<kScoreFraction>(v));
  EXPECT_TRUE(equal(forward, backward));
  EXPECT_EQ(to_double(forward, kScoreFraction), static_cast<double>(std::ldexp(exact, -kScoreFraction)));
  // Adding x and then -x restores any start, carries included.
  const Fixed128 start{~0ull - 5, -1}, x = to_fixed<kProbFraction>(0.75);
  EXPECT_TRUE(equal(add(add(start, x), negate(x)), start));
}

TEST(FixedPoint, LimbSumsAddExactly) {
  // The fused forward's warp sums (32 lanes, 16-bit limbs summed in 32 bits)
  // against 128-bit adds, on addends of both signs and on raw bit patterns.
  std::mt19937_64 rng(30);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto sum_of = [](const std::vector<Fixed128>& values) {
    unsigned __int128 total = 0;
    for (int k = 0; k < 8; ++k) {
      unsigned limb_sum = 0;
      for (const Fixed128& v : values) limb_sum += limb16(v, k);
      add_limb_sum(total, limb_sum, k);
    }
    return to_fixed128(total);
  };
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<Fixed128> values;
    Fixed128 expected{0, 0};
    for (int lane = 0; lane < 32; ++lane) {
      const Fixed128 v = trial % 2 == 0 ? to_fixed<kScoreFraction>(normal(rng) * std::exp2(normal(rng) * 20.0))
                                        : Fixed128{rng(), static_cast<long long>(rng())};
      values.push_back(v);
      expected = add(expected, v);
    }
    ASSERT_TRUE(equal(sum_of(values), expected)) << "trial " << trial;
  }
  // The bound: 65537 values with every limb 0xFFFF (-1) fill a limb sum to 2^32 - 1 exactly.
  const std::vector<Fixed128> ones(65537, Fixed128{~0ull, -1});
  EXPECT_TRUE(equal(sum_of(ones), negate(Fixed128{65537, 0})));
}

TEST(FixedPoint, TotalsRoundOnceToNearestDouble) {
  // 2^64 + 1 (F = 0 units scaled by 2^-F): one bit past double's 53, below half an ulp: rounds down.
  EXPECT_EQ(to_double(Fixed128{1, 1}, kStatsFraction), 1.0);
  // 1 + 2^-53 exactly (a tie) goes to even (1); 1 + 2^-53 + 2^-100 (F = 100) is above the tie: rounds up.
  const Fixed128 one{0, 1ll << 36};
  const Fixed128 tie = add(one, Fixed128{1ull << 47, 0});
  EXPECT_EQ(to_double(tie, kProbFraction), 1.0);
  EXPECT_EQ(to_double(add(tie, Fixed128{1, 0}), kProbFraction), 1.0 + std::ldexp(1.0, -52));
  EXPECT_EQ(to_double(negate(add(tie, Fixed128{1, 0})), kProbFraction), -(1.0 + std::ldexp(1.0, -52)));
  // The smallest unit and small negatives (no cancellation between the words).
  EXPECT_EQ(to_double(Fixed128{1, 0}, kProbFraction), std::ldexp(1.0, -100));
  EXPECT_EQ(to_double(Fixed128{~0ull, -1}, kProbFraction), -std::ldexp(1.0, -100));
  // Random 128-bit values against long double (64-bit mantissa: exact for values of at most 64 significant bits).
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    const int shift = static_cast<int>(rng() % 64);
    const unsigned long long m = rng();
    // m 2^shift as a 128-bit integer.
    const Fixed128 x{shift == 0 ? m : m << shift, static_cast<long long>(shift == 0 ? 0 : m >> (64 - shift))};
    if (x.hi < 0) continue;
    const long double value = std::ldexp(static_cast<long double>(m), shift - kScoreFraction);
    EXPECT_EQ(to_double(x, kScoreFraction), static_cast<double>(value)) << i;
    EXPECT_EQ(to_double(negate(x), kScoreFraction), -static_cast<double>(value)) << i;
  }
}

TEST(FixedPoint, LimitsKeepEveryTotalInRange) {
  // score: at most T (T + 1) / 2 addends below the limit: under 2^77.
  for (int T : {1, 2, 1000, 741454, 741455, 1 << 20, 1 << 22}) {
    const SumsLimits l = sums_limits(T);
    const double pairs = 0.5 * T * (T + 1.0);
    EXPECT_LE(pairs * l.score, std::ldexp(1.0, 127 - kScoreFraction)) << T;
    EXPECT_GT(2 * pairs * l.score, std::ldexp(1.0, 127 - kScoreFraction)) << T << ": the limit could be twice as large";
    EXPECT_LE(static_cast<double>(T) * l.stats, std::ldexp(1.0, 127 - kStatsFraction)) << T;
    // A 16-row warp's p (t - s) is at most 16 T: inside the stats limit up to 2^26 positions.
    if (T <= (1 << 26)) {
      EXPECT_LT(16.0 * T, l.stats) << T;
    }
  }
  EXPECT_EQ(sums_limits(741454).score, std::ldexp(1.0, 39));
  EXPECT_EQ(sums_limits(1 << 20).score, std::ldexp(1.0, 37));
  // The largest addends still convert: |v| 2^F below 2^127.
  const SumsLimits l1 = sums_limits(1);
  EXPECT_LE(std::ldexp(l1.score, kScoreFraction), std::ldexp(1.0, 127));
  EXPECT_LE(std::ldexp(l1.stats, kStatsFraction), std::ldexp(1.0, 127));
  EXPECT_LT(std::ldexp(l1.prob, kProbFraction), std::ldexp(1.0, 127));
  const double below = std::nextafter(l1.score, 0.0);
  EXPECT_EQ(to_double(to_fixed<kScoreFraction>(below), kScoreFraction), below);
  EXPECT_EQ(to_double(to_fixed<kScoreFraction>(-below), kScoreFraction), -below);
}

TEST(FixedPoint, OverflowTextNamesKernelAndQuantity) {
  EXPECT_EQ(describe_overflow(0, 100), "");
  const std::string score = describe_overflow(overflow_bit(SumsSite::simple, SumsQuantity::score), 1000);
  EXPECT_NE(score.find("attention_distance_sums_simple_bf16: a score-sum addend"), std::string::npos) << score;
  EXPECT_NE(score.find("2^58"), std::string::npos) << score;  // 77 - ceil(log2(1000 * 1001 / 2))
  const std::string both = describe_overflow(overflow_bit(SumsSite::fused_epilogue, SumsQuantity::prob) |
                                                 overflow_bit(SumsSite::band, SumsQuantity::stats),
                                             1000);
  EXPECT_NE(both.find("attention_forward_wgmma_bf16's fused distance sums: a probability sum"), std::string::npos)
      << both;
  EXPECT_NE(both.find("band pass): a p (t - s) or entropy addend"), std::string::npos) << both;
}

}  // namespace
