// Tests for Si, Ci, Cin (src/theory/sici.hpp): error in ulps against the 50-digit
// mpmath golden table tests/golden/sici_golden.csv (written by gen_sici.py), reported
// per method region and per kind of point, must stay <= 2 ulp; plus symmetry, special
// values and the domain error of Ci.
#include "theory/sici.hpp"

#include "../common/golden_csv.hpp"

#include <gtest/gtest.h>

#include <boost/multiprecision/float128.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <numbers>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using boost::multiprecision::float128;
using ropescope::theory::Ci;
using ropescope::theory::Cin;
using ropescope::theory::Si;

constexpr double kMaxUlps = 2.0;

struct Row {
  double x;
  std::string region_si_cin, region_ci, tag;
  float128 si, cin;
  bool has_ci;
  float128 ci;
};

const std::vector<Row>& golden() {
  static const std::vector<Row> rows = [] {
    std::vector<Row> r;
    for (const auto& f : ropescope::testing::read_golden_csv("tests/golden/sici_golden.csv")) {
      const std::string& ci = f.at("Ci");
      r.push_back({std::strtod(f.at("x_hex").c_str(), nullptr), f.at("region_si_cin"), f.at("region_ci"), f.at("tag"),
                   float128(f.at("Si")), float128(f.at("Cin")), !ci.empty(), ci.empty() ? float128(0) : float128(ci)});
    }
    return r;
  }();
  return rows;
}

// |computed - exact| / ulp(exact), ulp of the double format at exact (2^-1074 at least).
double ulp_error(double computed, const float128& exact) {
  if (exact == 0) return computed == 0 ? 0.0 : INFINITY;
  const long double e = static_cast<long double>(exact);
  const int ex = std::ilogb(e);
  const float128 ulp = ldexp(float128(1), std::max(ex - 52, -1074));
  return static_cast<double>(abs(float128(computed) - exact) / ulp);
}

struct Stats {
  std::size_t n = 0;
  double max = 0, sum2 = 0, worst_x = 0;
  void add(double err, double x) {
    ++n;
    sum2 += err * err;
    if (n == 1 || err > max) {
      max = err;
      worst_x = x;
    }
  }
  double rms() const { return n ? std::sqrt(sum2 / static_cast<double>(n)) : 0.0; }
};

void report(const char* name, const std::map<std::string, Stats>& by_region,
            const std::map<std::string, Stats>& by_tag, const Stats& all) {
  auto table = [&](const char* what, const std::map<std::string, Stats>& m) {
    std::cout << "\n" << name << " error in ulps by " << what << ":\n"
              << "  " << std::left << std::setw(18) << what << std::right << std::setw(7) << "points"
              << std::setw(10) << "max" << std::setw(10) << "rms" << "   worst x\n";
    for (const auto& [key, s] : m)
      std::cout << "  " << std::left << std::setw(18) << key << std::right << std::setw(7) << s.n
                << std::fixed << std::setprecision(3) << std::setw(10) << s.max << std::setw(10) << s.rms()
                << std::defaultfloat << std::setprecision(17) << "   " << s.worst_x << "\n";
  };
  table("region", by_region);
  table("tag", by_tag);
  std::cout << "  all: " << all.n << " points, max " << all.max << " ulp, rms " << all.rms()
            << " ulp (worst x = " << std::setprecision(17) << all.worst_x << ")\n";
  testing::Test::RecordProperty(std::string(name) + "_max_ulp", std::to_string(all.max));
  testing::Test::RecordProperty(std::string(name) + "_rms_ulp", std::to_string(all.rms()));
}

template <class F, class Ref>
void check_against_golden(const char* name, F func, Ref ref, bool ci_regions) {
  std::map<std::string, Stats> by_region, by_tag;
  Stats all;
  for (const Row& row : golden()) {
    const float128* exact = ref(row);
    if (!exact) continue;
    const double got = func(row.x);
    const double err = ulp_error(got, *exact);
    const std::string& region = ci_regions ? row.region_ci : row.region_si_cin;
    by_region[region].add(err, row.x);
    by_tag[row.tag].add(err, row.x);
    all.add(err, row.x);
    EXPECT_LE(err, kMaxUlps) << name << "(" << std::hexfloat << row.x << std::defaultfloat
                             << std::setprecision(17) << " = " << row.x << ") = " << got << ", exact "
                             << static_cast<long double>(*exact) << " [" << region << ", " << row.tag << "]";
  }
  report(name, by_region, by_tag, all);
  EXPECT_GT(all.n, 1000u);
}

TEST(SiCiGolden, Si) {
  check_against_golden("Si", Si, [](const Row& r) { return &r.si; }, false);
}

TEST(SiCiGolden, Ci) {
  check_against_golden("Ci", Ci, [](const Row& r) { return r.has_ci ? &r.ci : nullptr; }, true);
}

TEST(SiCiGolden, Cin) {
  check_against_golden("Cin", Cin, [](const Row& r) { return &r.cin; }, false);
}

TEST(SiCiGolden, SiciMatchesSiAndCi) {
  for (const Row& row : golden()) {
    if (!(row.x > 0)) continue;
    const auto both = ropescope::theory::sici(row.x);
    EXPECT_EQ(both.si, Si(row.x)) << row.x;
    EXPECT_EQ(both.ci, Ci(row.x)) << row.x;
  }
}

TEST(SiCi, CiDomainErrorNamesFunctionAndValue) {
  for (double x : {-1.5, 0.0, -0.0, -1e300, -std::numeric_limits<double>::infinity()}) {
    try {
      Ci(x);
      ADD_FAILURE() << "Ci(" << x << ") did not throw";
    } catch (const std::domain_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("Ci"), std::string::npos) << msg;
      std::ostringstream v;
      v << std::setprecision(17) << x;
      EXPECT_NE(msg.find(v.str()), std::string::npos) << msg << " does not name " << v.str();
    }
  }
  EXPECT_THROW(ropescope::theory::sici(-2.0), std::domain_error);
}

TEST(SiCi, Symmetry) {
  for (const Row& row : golden()) {
    const double x = row.x;
    EXPECT_EQ(Si(-x), -Si(x)) << x;
    EXPECT_EQ(Cin(-x), Cin(x)) << x;
  }
}

TEST(SiCi, SpecialValues) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Si(0.0), 0.0);
  EXPECT_TRUE(std::signbit(Si(-0.0)));
  EXPECT_EQ(Cin(0.0), 0.0);
  EXPECT_EQ(Cin(-0.0), 0.0);
  EXPECT_EQ(Si(inf), std::numbers::pi / 2);
  EXPECT_EQ(Si(-inf), -std::numbers::pi / 2);
  EXPECT_EQ(Ci(inf), 0.0);
  EXPECT_EQ(Cin(inf), inf);
  EXPECT_EQ(Cin(-inf), inf);
  EXPECT_TRUE(std::isnan(Si(nan)));
  EXPECT_TRUE(std::isnan(Ci(nan)));
  EXPECT_TRUE(std::isnan(Cin(nan)));
  const auto both = ropescope::theory::sici(nan);
  EXPECT_TRUE(std::isnan(both.si) && std::isnan(both.ci));
  // Smallest arguments: Si(x) = x, Cin(x) = x^2/4 (underflows), Ci(x) = gamma + ln x.
  const double tiny = std::numeric_limits<double>::denorm_min();
  EXPECT_EQ(Si(tiny), tiny);
  EXPECT_EQ(Cin(tiny), 0.0);
  EXPECT_DOUBLE_EQ(Ci(tiny), std::numbers::egamma + std::log(tiny));
  EXPECT_EQ(Si(std::numeric_limits<double>::max()), std::numbers::pi / 2);
}

}  // namespace
