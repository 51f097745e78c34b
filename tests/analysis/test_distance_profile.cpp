// Distance bins and profiles: every distance lies in exactly one bin; the
// streamed per-head profile of real forward passes (several query blocks,
// several sequences) equals a direct computation over the fully materialised
// T x T maps to float rounding; partial profiles merge; aggregates are means.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../cpu/forward_fixtures.hpp"
#include "analysis/distance_profile.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"

using namespace ropescope;
using ropescope::testing::random_tokens;
using analysis::DistanceBins;
using analysis::DistanceProfile;

namespace {

void expect_partition(const DistanceBins& bins, long exact_limit, long max_distance) {
  ASSERT_GT(bins.size(), 0);
  EXPECT_EQ(bins.max_distance(), max_distance);
  EXPECT_EQ(bins.lo(0), 0);
  EXPECT_EQ(bins.hi(bins.size() - 1), max_distance);
  for (int b = 0; b < bins.size(); ++b) {
    EXPECT_LE(bins.lo(b), bins.hi(b)) << "bin " << b;
    if (b > 0) {
      EXPECT_EQ(bins.lo(b), bins.hi(b - 1) + 1) << "bin " << b;  // no gap, no overlap
    }
  }
  std::vector<int> hits(max_distance + 1, 0);
  for (int b = 0; b < bins.size(); ++b)
    for (long d = bins.lo(b); d <= bins.hi(b); ++d) ++hits[d];
  for (long d = 0; d <= max_distance; ++d) {
    EXPECT_EQ(hits[d], 1) << "distance " << d;
    const int b = bins.bin_of(d);
    EXPECT_TRUE(bins.lo(b) <= d && d <= bins.hi(b)) << "distance " << d;
    if (d < exact_limit) {
      EXPECT_EQ(b, d);  // the exact region: one bin per distance
    }
  }
}

// Forwards to both observers (a recorder of full maps and the streamed profile).
class Tee : public backend::AttentionObserver {
 public:
  Tee(backend::AttentionObserver& a, backend::AttentionObserver& b) : a_(a), b_(b) {}
  void on_block(const backend::AttentionBlock& block) override {
    a_.on_block(block);
    b_.on_block(block);
  }

 private:
  backend::AttentionObserver &a_, &b_;
};

// |a - b| within `rel` of `scale` (the sum of magnitudes the value came from).
void expect_close(double a, double b, double scale, const std::string& what) {
  EXPECT_LE(std::abs(a - b), 1e-12 * std::max(scale, 1e-300)) << what << ": " << a << " vs " << b;
}

}  // namespace

TEST(DistanceBins, LogSpacedBinsCoverEveryDistanceOnce) {
  for (auto [exact, max, per_decade] : {std::tuple{1L, 0L, 16}, {1L, 1000L, 1}, {8L, 39L, 5}, {16L, 4095L, 16},
                                        {1024L, 4095L, 16}, {1024L, 100L, 16}, {3L, 100000L, 64}}) {
    SCOPED_TRACE(::testing::Message() << "exact " << exact << " max " << max << " per decade " << per_decade);
    auto bins = DistanceBins::log_spaced(exact, max, per_decade);
    expect_partition(bins, exact, max);
    // Above the exact region, lower edges follow exact * 10^(k / per_decade) rounded up.
    for (int b = static_cast<int>(std::min(exact, max + 1)) + 1; b < bins.size(); ++b)
      EXPECT_GE(bins.lo(b), std::ceil(exact * std::pow(10.0, 1.0 / per_decade) - 1e-9));
  }
  // 16 per decade from 1024 to 4095: about 16 * log10(4) = 9.6 -> 10 log bins.
  EXPECT_EQ(DistanceBins::log_spaced(1024, 4095, 16).size(), 1024 + 10);
}

TEST(DistanceBins, ExplicitEdges) {
  auto bins = DistanceBins::from_edges(4, 30, {10, 20, 40});
  expect_partition(bins, 4, 30);
  ASSERT_EQ(bins.size(), 4 + 3);
  EXPECT_EQ(bins.lo(4), 4);
  EXPECT_EQ(bins.hi(4), 9);
  EXPECT_EQ(bins.lo(6), 20);
  EXPECT_EQ(bins.hi(6), 30);
  EXPECT_THROW(DistanceBins::from_edges(4, 30, {10, 10}), ArgumentError);
  EXPECT_THROW(DistanceBins::from_edges(4, 30, {3}), ArgumentError);
  EXPECT_THROW(DistanceBins::log_spaced(0, 30, 16), ArgumentError);
  EXPECT_THROW(DistanceBins::log_spaced(4, 30, 0), ArgumentError);
}

TEST(DistanceProfile, StreamedEqualsMaterialisedMaps) {
  const long T = 40;
  const std::vector<long> beyond{1, 5, 20, 39};
  for (const char* name : {"ec", "eh", "rope"}) {
    SCOPED_TRACE(name);
    auto model = ropescope::testing::load_test_model(std::string("tests/data/models/") + name);
    cpu::CpuBackend backend(model, cpu::CpuOptions{7});  // several query blocks per head
    const int layers = model->config.num_hidden_layers, heads = model->layout.attention_heads;
    const auto bins = DistanceBins::log_spaced(8, T - 1, 5);
    ASSERT_GT(bins.size(), 8);  // log bins present

    analysis::ProfileObserver profile(bins, beyond, layers, heads, 2);
    ropescope::testing::MapRecorder maps(T, false);
    Tee tee(maps, profile);
    backend::ForwardOptions options;
    options.observer = &tee;
    backend.forward({random_tokens(T, 256, 1), random_tokens(T, 256, 2)}, options);

    for (int l = 0; l < layers; ++l)
      for (int h = 0; h < heads; ++h) {
        SCOPED_TRACE(::testing::Message() << "layer " << l << " head " << h);
        // Direct computation over the full maps, bins found by linear search.
        std::vector<double> prob(bins.size()), score(bins.size()), prob_abs(bins.size()), score_abs(bins.size());
        std::vector<std::int64_t> count(bins.size());
        std::vector<double> mass(beyond.size());
        double distance = 0, entropy = 0;
        for (int seq = 0; seq < 2; ++seq) {
          const auto& m = maps.at(seq, l, h);
          for (long t = 0; t < T; ++t)
            for (long s = 0; s <= t; ++s) {
              const long D = t - s;
              int b = 0;
              while (!(bins.lo(b) <= D && D <= bins.hi(b))) ++b;
              const double p = m.probabilities[t * T + s], z = m.scores[t * T + s];
              prob[b] += p, score[b] += z, prob_abs[b] += std::abs(p), score_abs[b] += std::abs(z), ++count[b];
              distance += p * D;
              if (p > 0) entropy -= p * std::log(p);
              for (std::size_t i = 0; i < beyond.size(); ++i)
                if (D >= beyond[i]) mass[i] += p;
            }
        }
        const DistanceProfile r = profile.result(l, h);
        EXPECT_EQ(r.queries, 2 * T);
        for (int b = 0; b < bins.size(); ++b) {
          EXPECT_EQ(r.count[b], count[b]) << "bin " << b;
          expect_close(r.prob_sum[b], prob[b], prob_abs[b], "prob bin " + std::to_string(b));
          expect_close(r.score_sum[b], score[b], score_abs[b], "score bin " + std::to_string(b));
        }
        expect_close(r.distance_sum, distance, distance, "distance");
        expect_close(r.entropy_sum, entropy, entropy, "entropy");
        for (std::size_t i = 0; i < beyond.size(); ++i) expect_close(r.mass_sum[i], mass[i], mass[i], "mass beyond");
        // Derived statistics follow the stated definitions.
        EXPECT_DOUBLE_EQ(r.mean_distance(), distance / (2 * T));
        EXPECT_DOUBLE_EQ(r.mean_prob(0), r.prob_sum[0] / (2 * T));  // D = 0: one pair per query
        double total = 0;
        for (double p : r.prob_sum) total += p;
        EXPECT_NEAR(total, 2.0 * T, 1e-4);  // each row sums to 1
        EXPECT_LT(r.mass_beyond(3), r.mass_beyond(0));
      }
  }
}

TEST(DistanceProfile, WindowsProfiledApartMergeToTheBatch) {
  const long T = 24;
  auto model = ropescope::testing::load_test_model("tests/data/models/ec");
  cpu::CpuBackend backend(model);
  const int layers = model->config.num_hidden_layers, heads = model->layout.attention_heads;
  const auto bins = DistanceBins::log_spaced(4, T - 1, 8);
  const std::vector<long> beyond{2, 10};
  auto a = random_tokens(T, 256, 3), b = random_tokens(T, 256, 4);
  analysis::ProfileObserver both(bins, beyond, layers, heads, 2), first(bins, beyond, layers, heads),
      second(bins, beyond, layers, heads);
  backend::ForwardOptions options;
  options.observer = &both;
  backend.forward({a, b}, options);
  options.observer = &first;
  backend.forward({a}, options);
  options.observer = &second;
  backend.forward({b}, options);
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) {
      DistanceProfile merged = first.result(l, h);
      merged += second.result(l, h);
      const DistanceProfile batch = both.result(l, h);
      EXPECT_EQ(merged.queries, batch.queries);
      EXPECT_EQ(merged.count, batch.count);
      for (int k = 0; k < bins.size(); ++k) EXPECT_DOUBLE_EQ(merged.prob_sum[k], batch.prob_sum[k]);
      EXPECT_DOUBLE_EQ(merged.entropy_sum, batch.entropy_sum);
      EXPECT_DOUBLE_EQ(merged.mass_sum[1], batch.mass_sum[1]);
    }
  DistanceProfile other(bins.size(), {3});
  DistanceProfile mine = first.result(0, 0);
  EXPECT_THROW(mine += other, std::invalid_argument);
  EXPECT_THROW(DistanceProfile(4, {5, 5}), std::invalid_argument);
}

TEST(DistanceProfile, AggregateIsThePlainMeanOfHeads) {
  const auto bins = DistanceBins::log_spaced(2, 2, 1);  // bins {0}, {1}, {2}
  // Two one-query profiles: rows t = 2 with probabilities over keys s = 0, 1, 2.
  const float p1[] = {0.5f, 0.25f, 0.25f}, p2[] = {0.0f, 0.0f, 1.0f}, z[] = {1.0f, 2.0f, 3.0f};
  DistanceProfile a(bins.size(), {1}), b(bins.size(), {1});
  a.add_rows(bins, p1, z, 2, 3, 3);
  b.add_rows(bins, p2, z, 2, 3, 3);
  EXPECT_DOUBLE_EQ(a.mean_distance(), 0.5 * 2 + 0.25 * 1);
  EXPECT_DOUBLE_EQ(a.entropy(), -(0.5 * std::log(0.5) + 0.5 * std::log(0.25)));
  EXPECT_DOUBLE_EQ(a.mass_beyond(0), 0.75);
  EXPECT_DOUBLE_EQ(b.entropy(), 0.0);
  EXPECT_DOUBLE_EQ(a.mean_score(2), 1.0);  // D = 2 is key 0
  auto mean = analysis::aggregate({&a, &b});
  EXPECT_EQ(mean.heads, 2);
  EXPECT_DOUBLE_EQ(mean.mean_distance, (1.25 + 0.0) / 2);
  EXPECT_DOUBLE_EQ(mean.mean_prob[0], (0.25 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(mean.mass_beyond[0], (0.75 + 0.0) / 2);
  EXPECT_EQ(analysis::aggregate({}).heads, 0);
}

namespace {

// Does on the host what the CUDA backend does on the GPU: reduces the blocks
// of one sequence to the DistanceSums of the target's request, then hands
// them to the target once per (layer, head).
class SumsFromBlocks : public backend::AttentionObserver {
 public:
  SumsFromBlocks(analysis::ProfileObserver& target, const model::HeadLayout& layout, int layers)
      : target_(target), layout_(layout), request_(*target.distance_sums_request()),
        sums_(static_cast<std::size_t>(layers) * layout.attention_heads) {
    for (auto& s : sums_) s.prob.assign(request_.slots, 0.0), s.score.assign(request_.slots, 0.0);
  }
  void on_block(const backend::AttentionBlock& b) override {
    auto& s = sums_[static_cast<std::size_t>(b.layer) * layout_.attention_heads + b.head.index];
    for (long t = b.q_begin; t < b.q_end; ++t)
      for (long k = 0; k <= t; ++k) {
        const double p = b.probabilities[(t - b.q_begin) * b.k_end + k], z = b.scores[(t - b.q_begin) * b.k_end + k];
        const int slot = request_.slot_of_distance[t - k];
        s.prob[slot] += p;
        s.score[slot] += z;
        s.distance += p * static_cast<double>(t - k);
        if (p > 0) s.entropy -= p * std::log(p);
      }
  }
  // Hands over and clears the sums of `sequence` (T tokens).
  void flush(int sequence, long T) {
    for (std::size_t i = 0; i < sums_.size(); ++i) {
      auto& s = sums_[i];
      const int layer = static_cast<int>(i / layout_.attention_heads), head = static_cast<int>(i % layout_.attention_heads);
      target_.on_distance_sums({sequence, layer, layout_.head(head), T, s.prob, s.score, s.distance, s.entropy});
      s.prob.assign(request_.slots, 0.0);
      s.score.assign(request_.slots, 0.0);
      s.distance = s.entropy = 0.0;
    }
  }

 private:
  struct Sums {
    std::vector<double> prob, score;
    double distance = 0, entropy = 0;
  };
  analysis::ProfileObserver& target_;
  model::HeadLayout layout_;
  const backend::DistanceSumsRequest& request_;
  std::vector<Sums> sums_;
};

}  // namespace

// The DistanceSums path of ProfileObserver (what the CUDA backend feeds it)
// equals its block path: slots split the bins at mass thresholds that are not
// bin edges (5, 14, 40), pair counts come from T alone, and two sequences of
// different length (T = 40 and 23) accumulate into the same profile.
TEST(DistanceProfile, DistanceSumsEqualBlocks) {
  auto model = ropescope::testing::load_test_model("tests/data/models/ec");
  cpu::CpuBackend backend(model);
  const int layers = model->config.num_hidden_layers, heads = model->layout.attention_heads;
  const auto bins = DistanceBins::log_spaced(4, 39, 8);
  const std::vector<long> beyond{5, 14, 40};
  analysis::ProfileObserver from_blocks(bins, beyond, layers, heads), from_sums(bins, beyond, layers, heads);
  const auto* request = from_sums.distance_sums_request();
  ASSERT_NE(request, nullptr);
  ASSERT_EQ(request->slot_of_distance.size(), 40u);
  EXPECT_EQ(request->slots, bins.size() + 2);  // 5 and 14 fall inside bins; 40 is past the largest distance
  SumsFromBlocks reducer(from_sums, model->layout, layers);
  backend::ForwardOptions options;
  for (const long T : {40L, 23L}) {
    const auto tokens = random_tokens(T, 256, static_cast<unsigned>(T));
    options.observer = &from_blocks;
    backend.forward({tokens}, options);
    options.observer = &reducer;
    backend.forward({tokens}, options);
    reducer.flush(0, T);
  }
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) {
      const DistanceProfile a = from_blocks.result(l, h), b = from_sums.result(l, h);
      EXPECT_EQ(a.count, b.count);
      EXPECT_EQ(a.queries, b.queries);
      for (int k = 0; k < bins.size(); ++k) {
        EXPECT_NEAR(a.prob_sum[k], b.prob_sum[k], 1e-12 * a.queries) << "bin " << k;
        EXPECT_NEAR(a.score_sum[k], b.score_sum[k], 1e-9 * a.queries) << "bin " << k;
      }
      for (std::size_t j = 0; j < beyond.size(); ++j) EXPECT_NEAR(a.mass_sum[j], b.mass_sum[j], 1e-12 * a.queries);
      EXPECT_NEAR(a.distance_sum, b.distance_sum, 1e-10 * a.distance_sum);
      EXPECT_NEAR(a.entropy_sum, b.entropy_sum, 1e-10 * a.entropy_sum);
    }
  backend::DistanceSums short_sums{0, 0, model->layout.head(0), 3, {}, {}, 0, 0};
  EXPECT_THROW(from_sums.on_distance_sums(short_sums), std::invalid_argument);
}

// A sliding-window layer has no attention mass at or beyond its window (HF's
// edge: a query sees W keys, itself included), its scores beyond it are not
// averaged (no visible pairs), while a full layer of the same model reaches
// further. Gemma 2's fixture: layer 0 windowed (W = 8), layer 1 full.
TEST(DistanceProfile, SlidingWindowLayerHasNoMassBeyondItsWindow) {
  auto model = ropescope::testing::load_test_model("tests/data/arch/gemma2");
  ASSERT_EQ(model->config.arch.window(0), 8);
  ASSERT_EQ(model->config.arch.window(1), 0);
  cpu::CpuBackend backend(model, cpu::CpuOptions{5});
  const long T = 40, W = 8;
  const int layers = model->config.num_hidden_layers, heads = model->layout.attention_heads;
  const auto bins = DistanceBins::log_spaced(16, T - 1, 4);
  analysis::ProfileObserver profile(bins, {W - 1, W}, layers, heads, 1);
  backend::ForwardOptions options;
  options.observer = &profile;
  backend.forward({random_tokens(T, model->config.vocab_size, 3)}, options);
  for (int h = 0; h < heads; ++h) {
    const auto windowed = profile.result(0, h), full = profile.result(1, h);
    EXPECT_GT(windowed.mass_beyond(0), 0.0) << "distance W-1 is visible";
    EXPECT_EQ(windowed.mass_beyond(1), 0.0) << "head " << h;
    EXPECT_GT(full.mass_beyond(1), 1e-3) << "head " << h;
    for (int b = 0; b < bins.size(); ++b) {
      EXPECT_EQ(windowed.count[b], full.count[b]);  // every causal pair counts for probabilities
      if (bins.lo(b) >= W) {
        EXPECT_EQ(windowed.mean_prob(b), 0.0) << "bin " << b;
        EXPECT_EQ(windowed.score_count[b], 0) << "bin " << b;
        EXPECT_TRUE(std::isnan(windowed.mean_score(b))) << "bin " << b;
        EXPECT_TRUE(std::isfinite(full.mean_score(b))) << "bin " << b;
      } else {
        EXPECT_EQ(windowed.score_count[b], windowed.count[b]) << "bin " << b;
      }
    }
  }
  // Aggregates average scores over the heads that have them: finite where the full layer has pairs.
  std::vector<analysis::DistanceProfile> all;
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) all.push_back(profile.result(l, h));
  std::vector<const analysis::DistanceProfile*> pointers;
  for (const auto& p : all) pointers.push_back(&p);
  const auto a = analysis::aggregate(pointers);
  for (int b = 0; b < bins.size(); ++b) EXPECT_TRUE(std::isfinite(a.mean_score[b])) << "bin " << b;
}
