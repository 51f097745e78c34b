// Benchmark of ropescope::theory::Si / Ci (src/theory/sici.hpp) against GSL's
// gsl_sf_Si / gsl_sf_Ci in the same run: time per call on typical arguments
// (log-spaced over [1e-3, 1e3], neighbourhoods of the zeros of Ci left out) and
// near the zeros of Ci, plus the accuracy of both in ulps against the golden table
// tests/golden/sici_golden.csv. Prints a summary table with the time ratios at the end.
#include "theory/sici.hpp"

#include "../tests/common/golden_csv.hpp"

#include <benchmark/benchmark.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_expint.h>

#include <boost/multiprecision/float128.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using boost::multiprecision::float128;

// Typical arguments: 4096 log-spaced points in [1e-3, 1e3], without those where Ci is
// within 1% of its envelope of zero (|Ci(x)| max(x, 1) < 1e-2, about +-0.01 around each
// zero). Near-zero arguments are timed separately: the golden table's points tagged
// ci-zero / ci-zero-far (within 1e-2 relative of a zero of Ci down to the nearest
// doubles, first 40 zeros and zeros near 130 ... 1e15).
struct ArgSets {
  std::vector<double> typical, near_zero;
  std::size_t left_out = 0;
};

// Golden table rows (x > 0 have Ci).
struct Golden {
  double x;
  std::string tag;
  float128 si, ci;
  bool has_ci;
};

std::vector<Golden> load_golden() {
  std::vector<Golden> rows;
  for (const auto& f : ropescope::testing::read_golden_csv("tests/golden/sici_golden.csv")) {
    const std::string& ci = f.at("Ci");
    rows.push_back({std::strtod(f.at("x_hex").c_str(), nullptr), f.at("tag"), float128(f.at("Si")),
                    ci.empty() ? float128(0) : float128(ci), !ci.empty()});
  }
  return rows;
}

const ArgSets& args() {
  static const ArgSets sets = [] {
    ArgSets s;
    const int n = 4096;
    for (int i = 0; i < n; ++i) {
      const double x = std::pow(10.0, -3.0 + 6.0 * i / (n - 1));
      if (std::fabs(ropescope::theory::Ci(x)) * std::max(x, 1.0) < 1e-2)
        ++s.left_out;
      else
        s.typical.push_back(x);
    }
    for (const Golden& g : load_golden())
      if (g.tag == "ci-zero" || g.tag == "ci-zero-far") s.near_zero.push_back(g.x);
    return s;
  }();
  return sets;
}

template <double (*F)(double)>
void run(benchmark::State& state, const std::vector<double>& xs) {
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(F(xs[i]));
    if (++i == xs.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

double ours_si(double x) { return ropescope::theory::Si(x); }
double ours_ci(double x) { return ropescope::theory::Ci(x); }
double gsl_si(double x) { return gsl_sf_Si(x); }
double gsl_ci(double x) { return gsl_sf_Ci(x); }
double ours_sici(double x) {
  const auto r = ropescope::theory::sici(x);
  return r.si + r.ci;
}
double gsl_sici(double x) { return gsl_sf_Si(x) + gsl_sf_Ci(x); }

void BM_Si_ours(benchmark::State& s) { run<ours_si>(s, args().typical); }
void BM_Si_gsl(benchmark::State& s) { run<gsl_si>(s, args().typical); }
void BM_Ci_ours(benchmark::State& s) { run<ours_ci>(s, args().typical); }
void BM_Ci_gsl(benchmark::State& s) { run<gsl_ci>(s, args().typical); }
void BM_SiCi_ours(benchmark::State& s) { run<ours_sici>(s, args().typical); }
void BM_SiCi_gsl(benchmark::State& s) { run<gsl_sici>(s, args().typical); }
void BM_Ci_ours_near_zeros(benchmark::State& s) { run<ours_ci>(s, args().near_zero); }
void BM_Ci_gsl_near_zeros(benchmark::State& s) { run<gsl_ci>(s, args().near_zero); }

BENCHMARK(BM_Si_ours);
BENCHMARK(BM_Si_gsl);
BENCHMARK(BM_Ci_ours);
BENCHMARK(BM_Ci_gsl);
BENCHMARK(BM_SiCi_ours);
BENCHMARK(BM_SiCi_gsl);
BENCHMARK(BM_Ci_ours_near_zeros);
BENCHMARK(BM_Ci_gsl_near_zeros);

// Keeps the per-call time of every benchmark for the summary table.
class Recorder : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> ns;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (!r.error_occurred) ns[r.benchmark_name()] = r.GetAdjustedCPUTime();  // ns per iteration (CPU: the machine is shared)
    ConsoleReporter::ReportRuns(runs);
  }
};

double ulp_error(double computed, const float128& exact) {
  if (exact == 0) return computed == 0 ? 0.0 : INFINITY;
  if (!std::isfinite(computed)) return INFINITY;
  const int ex = std::ilogb(static_cast<long double>(exact));
  return static_cast<double>(abs(float128(computed) - exact) / ldexp(float128(1), std::max(ex - 52, -1074)));
}

struct Acc {
  std::size_t n = 0, failed = 0;
  double max = 0;
  long double sum2 = 0;  // GSL's errors reach 1e302 ulps; their squares need long double
  void add(double e) {
    ++n;
    if (!std::isfinite(e)) {
      ++failed;
      return;
    }
    max = std::max(max, e);
    sum2 += static_cast<long double>(e) * e;
  }
  std::string str() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%10.3g %9.3g", max, n > failed ? static_cast<double>(std::sqrt(sum2 / (n - failed))) : 0.0);
    std::string s = buf;
    if (failed) s += " (" + std::to_string(failed) + " non-finite/errors)";
    return s;
  }
};

// GSL through the _e interface so that its error returns are counted, not fatal.
double gsl_value(int (*f)(double, gsl_sf_result*), double x) {
  gsl_sf_result r;
  return f(x, &r) == GSL_SUCCESS ? r.val : NAN;
}

void accuracy_table() {
  const std::vector<Golden> rows = load_golden();
  // Groups: typical = golden points in [1e-3, 1e3] not tagged as zero neighbourhoods;
  // near zeros = tags ci-zero / ci-zero-far (within 1e-2 relative of a zero, down to
  // the nearest doubles); all = every point with x > 0.
  std::map<std::string, Acc> acc;
  for (const Golden& g : rows) {
    if (!(g.x > 0)) continue;
    const bool near = g.tag == "ci-zero" || g.tag == "ci-zero-far";
    const bool typical = !near && g.x >= 1e-3 && g.x <= 1e3;
    const double es = ulp_error(ropescope::theory::Si(g.x), g.si);
    const double gs = ulp_error(gsl_value(gsl_sf_Si_e, g.x), g.si);
    const double ec = ulp_error(ropescope::theory::Ci(g.x), g.ci);
    const double gc = ulp_error(gsl_value(gsl_sf_Ci_e, g.x), g.ci);
    for (const char* grp : {"all x > 0", typical ? "typical [1e-3,1e3]" : nullptr, near ? "near Ci zeros" : nullptr}) {
      if (!grp) continue;
      acc[std::string("Si ours   ") + grp].add(es);
      acc[std::string("Si GSL    ") + grp].add(gs);
      acc[std::string("Ci ours   ") + grp].add(ec);
      acc[std::string("Ci GSL    ") + grp].add(gc);
    }
  }
  std::printf("\nAccuracy vs the 50-digit golden table (ulps):\n");
  std::printf("  %-30s %7s %10s %9s\n", "function / points", "points", "max", "rms");
  for (const auto& [k, a] : acc) std::printf("  %-30s %7zu %s\n", k.c_str(), a.n, a.str().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  gsl_set_error_handler_off();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Recorder rec;
  benchmark::RunSpecifiedBenchmarks(&rec);
  benchmark::Shutdown();

  std::printf("\nArguments: %zu typical (log-spaced 1e-3..1e3; %zu with |Ci| max(x,1) < 1e-2 left out),"
              " %zu near Ci zeros (golden ci-zero, ci-zero-far)\n",
              args().typical.size(), args().left_out, args().near_zero.size());
  std::printf("\nTime per call (ns):\n  %-22s %10s %10s %12s\n", "", "ours", "GSL", "ours/GSL");
  for (const char* name : {"Si", "Ci", "SiCi", "Ci_near_zeros"}) {
    const std::string base = std::string(name).substr(0, std::string(name).find('_'));
    const std::string suffix = std::string(name).find('_') == std::string::npos
                                   ? "" : std::string(name).substr(std::string(name).find('_'));
    const auto o = rec.ns.find("BM_" + base + "_ours" + suffix);
    const auto g = rec.ns.find("BM_" + base + "_gsl" + suffix);
    if (o == rec.ns.end() || g == rec.ns.end()) continue;  // filtered out
    std::printf("  %-22s %10.1f %10.1f %12.2f\n", name, o->second, g->second, o->second / g->second);
  }
  accuracy_table();
  return 0;
}
