// The analyses as library calls (profile_report.hpp, perplexity_report.hpp,
// attention_maps.hpp): errors name the request's parameter (not a CLI flag),
// a report holds exactly what the lower-level pieces compute (observer sums,
// sliding-window results), its aggregates are the plain means of its heads,
// the progress callback sees every window against the right total, and a
// callback that throws stops the run.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "analysis/attention_maps.hpp"
#include "analysis/perplexity_report.hpp"
#include "analysis/profile_report.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "../cpu/forward_fixtures.hpp"

namespace {

using namespace ropescope;
using ropescope::testing::load_test_model;

// Byte ids (the test models' vocabulary is 256), reproducible.
std::vector<std::int32_t> test_tokens(long n) { return ropescope::testing::random_tokens(n, 256, 11); }

// The parameter an ArgumentError names, or "(none)" / "(no error)".
template <class F>
std::string parameter_of(F&& f) {
  try {
    f();
  } catch (const ArgumentError& e) {
    return e.parameter().empty() ? "(none)" : e.parameter();
  }
  return "(no error)";
}

TEST(Reports, ErrorsNameTheRequestParameter) {
  analysis::ProfileRequest p;
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "window");
  p.window = 64;
  p.exact_limit = 65;
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "exact_limit");
  p.exact_limit = 0;
  p.bins_per_decade = 0;
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "bins_per_decade");
  p.bins_per_decade = 16;
  p.beyond = {64};
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "beyond");
  p.beyond = {};
  p.noise_real = -1.0;
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "noise_real");
  p.noise_real.reset();
  p.seed = -1;
  EXPECT_EQ(parameter_of([&] { analysis::check_profile_request(p); }), "seed");

  analysis::PerplexityRequest r;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "lengths");
  r.lengths = {16, 32};
  r.stride = 20;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "stride");
  r.stride.reset();
  r.stride_fraction = 0.0;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "stride_fraction");
  r.stride_fraction = 1.5;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "stride_fraction");
  r.stride = 8;
  r.stride_fraction = 1.0;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "stride_fraction");
  r.stride.reset();
  r.stride_fraction.reset();
  r.max_windows = 2;
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "max_windows");
  r.max_windows = 0;
  r.ablate = {"sideways"};
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "ablate");
  r.ablate = {};
  EXPECT_EQ(parameter_of([&] { analysis::check_perplexity_request(r); }), "(no error)");

  ArgumentError e("exact_limit", "must be >= 1, got -3");
  EXPECT_STREQ(e.what(), "exact_limit: must be >= 1, got -3");
  EXPECT_EQ(e.detail(), "must be >= 1, got -3");
}

TEST(Reports, ProfileReportHoldsTheObserverSumsAndTheirMeans) {
  cpu::CpuBackend backend(load_test_model("tests/data/models/ec"));
  const auto tokens = test_tokens(3 * 48 + 5);
  analysis::ProfileRequest request;
  request.window = 48;
  request.exact_limit = 8;
  request.bins_per_decade = 4;
  std::vector<analysis::Progress> seen;
  const auto report =
      analysis::profile_distances(backend, tokens, request, [&](const analysis::Progress& p) { seen.push_back(p); });
  ASSERT_EQ(report.windows, 3);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen.back().windows_done, 3);
  EXPECT_EQ(seen.back().windows_total, 3);
  EXPECT_EQ(seen.back().tokens_done, 3 * 48);

  // The same sums straight from the observer.
  analysis::ProfileObserver observer(report.bins, report.beyond, report.layers, report.heads);
  backend::ForwardOptions options;
  options.loss = false;
  options.observer = &observer;
  for (int w = 0; w < 3; ++w)
    backend.forward({std::vector<std::int32_t>(tokens.begin() + w * 48, tokens.begin() + (w + 1) * 48)}, options);
  const auto prob = report.mean_prob();
  const int bins = report.bins.size();
  ASSERT_EQ(prob.size(), static_cast<std::size_t>(report.layers) * report.heads * bins);
  for (int l = 0; l < report.layers; ++l)
    for (int h = 0; h < report.heads; ++h) {
      const auto direct = observer.result(l, h);
      EXPECT_EQ(report.at(l, h).sums.queries, direct.queries);
      for (int b = 0; b < bins; ++b)
        EXPECT_EQ(prob[(static_cast<std::size_t>(l) * report.heads + h) * bins + b], direct.mean_prob(b))
            << "layer " << l << " head " << h << " bin " << b;
    }

  // Aggregates: plain means over the heads of one kind.
  for (auto kind : {model::HeadKind::real, model::HeadKind::imaginary}) {
    double sum = 0;
    int n = 0;
    for (const auto& p : report.profiles)
      if (p.layer == 1 && p.head.kind == kind) sum += p.sums.mean_distance(), ++n;
    ASSERT_GT(n, 0);
    EXPECT_NEAR(report.aggregate(kind, 1).mean_distance, sum / n, 1e-12 * std::abs(sum / n));
  }
  // CSV: a header and one row per layer, head and bin.
  const std::string csv = report.csv();
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + report.layers * report.heads * bins);
  EXPECT_EQ(report.summary()["windows"], 3);
}

TEST(Reports, PerplexityReportEqualsTheSlidingWindowResults) {
  cpu::CpuBackend backend(load_test_model("tests/data/models/eh"));
  const auto tokens = test_tokens(100);
  analysis::PerplexityRequest request;
  request.lengths = {16, 32};
  request.curve = 32;
  request.ablate = {"real"};
  long calls = 0, total = 0;
  const auto report = analysis::perplexity(backend, {tokens, true, {}}, request, [&](const analysis::Progress& p) {
    ++calls;
    total = p.windows_total;
  });
  ASSERT_EQ(report.conditions.size(), 2u);
  EXPECT_EQ(report.conditions[1].name, "ablate_real");
  EXPECT_EQ(calls, total);
  const long windows = static_cast<long>(analysis::sliding_windows(100, 16, 8).size() +
                                         analysis::sliding_windows(100, 32, 16).size() +
                                         analysis::curve_window_count(100, 32, 0));
  EXPECT_EQ(total, 2 * windows);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto direct =
        analysis::sliding_window_perplexity(backend, tokens, request.lengths[i], request.lengths[i] / 2, {}, true);
    EXPECT_EQ(report.results[0][i].mean_nll, direct.mean_nll);
    EXPECT_EQ(report.results[0][i].tokens_scored, direct.tokens_scored);
  }
  EXPECT_EQ(report.curve_matrix().size(), 2u * 31);
  EXPECT_NE(report.results[1][0].mean_nll, report.results[0][0].mean_nll);  // the ablation changes the model
}

TEST(Reports, AStrideFractionGivesEachLengthItsOwnStride) {
  cpu::CpuBackend backend(load_test_model("tests/data/models/rope"));
  const auto tokens = test_tokens(100);
  analysis::PerplexityRequest request;
  request.lengths = {16, 40};
  request.stride_fraction = 1.0;  // non-overlapping windows: S = L
  const auto report = analysis::perplexity(backend, {tokens, true, {}}, request);
  EXPECT_EQ(report.strides, (std::vector<long>{16, 40}));
  for (std::size_t i = 0; i < 2; ++i) {
    const long L = request.lengths[i];
    const auto direct = analysis::sliding_window_perplexity(backend, tokens, L, L, {}, true);
    EXPECT_EQ(report.results[0][i].mean_nll, direct.mean_nll);
    EXPECT_EQ(report.results[0][i].stride, L);
  }
  request.stride_fraction = 0.3;  // floor(0.3 L)
  EXPECT_EQ(analysis::perplexity(backend, {tokens, true, {}}, request).strides, (std::vector<long>{4, 12}));
}

TEST(Reports, AProgressCallbackThatThrowsStopsTheRun) {
  cpu::CpuBackend backend(load_test_model("tests/data/models/rope"));
  const auto tokens = test_tokens(200);
  analysis::PerplexityRequest request;
  request.lengths = {16};
  long calls = 0;
  EXPECT_THROW(analysis::perplexity(backend, {tokens, true, {}}, request,
                                    [&](const analysis::Progress&) {
                                      if (++calls == 3) throw std::runtime_error("stop");
                                    }),
               std::runtime_error);
  EXPECT_EQ(calls, 3);
}

TEST(Reports, AttentionMapsRefuseMapsAboveTheLimitByParameter) {
  cpu::CpuBackend backend(load_test_model("tests/data/models/ec"));
  const auto tokens = test_tokens(64);
  analysis::MapRequest request;
  request.length = 32;
  EXPECT_EQ(parameter_of([&] { analysis::record_attention_maps(backend, tokens, request, 1000); }), "max_memory");
  const auto maps = analysis::record_attention_maps(backend, tokens, request, 1ull << 30);
  EXPECT_EQ(maps.shape()[1], 32u);
  EXPECT_EQ(maps.probabilities.size(), maps.shape()[0] * 32 * 32);
  EXPECT_EQ(maps.manifest()["maps"].size(), maps.maps.size());
}

}  // namespace
