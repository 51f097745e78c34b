// Sliding-window perplexity and per-position loss curves on the tiny test
// checkpoints: the window plan scores every token once, perplexity equals a
// direct log-softmax of the logits over independently chosen windows, the curve
// agrees with single forward passes, and the conditions behave: noise of std 0
// and linear scaling of factor 1 equal the clean model, ablating every head
// equals a model built by hand with zero attention output.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <numeric>

#include "analysis/perplexity.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "../cpu/forward_fixtures.hpp"

namespace {

using ropescope::ArgumentError;
using ropescope::analysis::position_loss_curve;
using ropescope::analysis::sliding_window_perplexity;
using ropescope::analysis::sliding_windows;
using ropescope::backend::ForwardOptions;
using ropescope::testing::load_test_model;

// Deterministic pseudo-random bytes (a linear congruential generator).
std::vector<std::int32_t> test_tokens(long n, std::uint32_t seed = 7) {
  std::vector<std::int32_t> t(n);
  for (auto& x : t) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<std::int32_t>(seed >> 24);
  }
  return t;
}

ropescope::cpu::CpuBackend backend_for(const std::string& name) {
  return ropescope::cpu::CpuBackend(load_test_model("tests/data/models/" + name));
}

TEST(SlidingWindows, ExactPlans) {
  // N = 10, L = 4, S = 3: windows fit exactly at 0, 3, 6.
  auto w = sliding_windows(10, 4, 3);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].begin, 0);
  EXPECT_EQ(w[0].first_target, 1);
  EXPECT_EQ(w[1].begin, 3);
  EXPECT_EQ(w[1].first_target, 4);
  EXPECT_EQ(w[2].begin, 6);
  EXPECT_EQ(w[2].first_target, 7);
  // N = 9, L = 4, S = 2: 0, 2, 4, then a tail window [5, 9) scoring only target 8.
  w = sliding_windows(9, 4, 2);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[2].begin, 4);
  EXPECT_EQ(w[2].first_target, 6);
  EXPECT_EQ(w[3].begin, 5);
  EXPECT_EQ(w[3].first_target, 8);
  // S = L: a window's own first token is never scored.
  w = sliding_windows(8, 4, 4);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[1].begin, 4);
  EXPECT_EQ(w[1].first_target, 5);
}

TEST(SlidingWindows, EveryTokenButTheFirstScoredOnceForStrideBelowL) {
  for (long N : {50L, 97L, 128L})
    for (long L : {2L, 7L, 32L, 50L})
      for (long S = 1; S < L; S += 3) {
        if (L > N) continue;
        std::vector<int> scored(N, 0);
        for (const auto& w : sliding_windows(N, L, S)) {
          ASSERT_GT(w.first_target, w.begin);
          for (long t = w.first_target; t < w.begin + L; ++t) ++scored[t];
        }
        EXPECT_EQ(scored[0], 0);
        for (long t = 1; t < N; ++t) ASSERT_EQ(scored[t], 1) << "N=" << N << " L=" << L << " S=" << S << " t=" << t;
      }
}

TEST(SlidingWindows, RefusesBadArguments) {
  EXPECT_THROW(sliding_windows(10, 1, 1), ArgumentError);
  EXPECT_THROW(sliding_windows(10, 11, 5), ArgumentError);
  EXPECT_THROW(sliding_windows(10, 4, 0), ArgumentError);
  EXPECT_THROW(sliding_windows(10, 4, 5), ArgumentError);
}

// -log softmax(logits[row])[target] in double, by hand.
double nll_from_logits(const ropescope::backend::Matrix& logits, long row, int target) {
  double max = -INFINITY;
  for (long v = 0; v < logits.cols(); ++v) max = std::max(max, static_cast<double>(logits(row, v)));
  double sum = 0;
  for (long v = 0; v < logits.cols(); ++v) sum += std::exp(logits(row, v) - max);
  return max + std::log(sum) - logits(row, target);
}

TEST(Perplexity, EqualsDirectComputationFromLogits) {
  for (const char* name : {"rope", "ec", "eh"}) {
    auto backend = backend_for(name);
    const auto tokens = test_tokens(150);
    const long N = 150, L = 48, S = 20;
    // Independent window choice: windows of L tokens at 0, S, 2S, ... and a last
    // one ending at N; a token is scored by the first window holding it with some context.
    std::vector<long> begins;
    for (long b = 0; b + L <= N; b += S) begins.push_back(b);
    if (begins.back() + L < N) begins.push_back(N - L);
    std::vector<bool> done(N, false);
    double sum = 0;
    long count = 0;
    ForwardOptions keep;
    keep.keep_logits = true;
    for (long b : begins) {
      std::vector<std::int32_t> window(tokens.begin() + b, tokens.begin() + b + L);
      auto r = backend.forward({window}, keep);
      for (long t = b + 1; t < b + L; ++t)
        if (!done[t]) {
          done[t] = true;
          sum += nll_from_logits(r[0].logits, t - b - 1, tokens[t]);
          ++count;
        }
    }
    auto result = sliding_window_perplexity(backend, tokens, L, S, {}, true);
    EXPECT_EQ(result.tokens_scored, N - 1) << name;
    EXPECT_EQ(count, N - 1);
    EXPECT_EQ(result.windows, static_cast<long>(begins.size()));
    EXPECT_NEAR(result.mean_nll, sum / count, 1e-5) << name;
    EXPECT_NEAR(result.ppl, std::exp(sum / count), 1e-5 * result.ppl) << name;
    ASSERT_TRUE(result.bits_per_byte.has_value());
    EXPECT_DOUBLE_EQ(*result.bits_per_byte, result.mean_nll / std::numbers::ln2);
    EXPECT_FALSE(sliding_window_perplexity(backend, tokens, L, S, {}, false).bits_per_byte.has_value());

    // Tokenized text: bits per byte divide by the bytes of exactly the scored tokens.
    std::vector<std::uint32_t> token_bytes(N);
    long bytes = 0;
    for (long t = 0; t < N; ++t) {
      token_bytes[t] = static_cast<std::uint32_t>(1 + (t * 7) % 5);
      if (done[t]) bytes += token_bytes[t];
    }
    auto text = sliding_window_perplexity(backend, tokens, L, S, {}, false, nullptr, token_bytes);
    ASSERT_TRUE(text.bytes_scored.has_value());
    EXPECT_EQ(*text.bytes_scored, bytes);
    ASSERT_TRUE(text.bits_per_byte.has_value());
    EXPECT_NEAR(*text.bits_per_byte, sum / std::numbers::ln2 / static_cast<double>(bytes), 1e-5) << name;
  }
}

TEST(PositionCurve, MatchesSingleForwardPasses) {
  auto backend = backend_for("ec");
  const auto tokens = test_tokens(200);
  const long T = 64;
  // One window: the curve is that window's nll vector, its mean the window's mean nll.
  auto one = position_loss_curve(backend, tokens, T, 1, {});
  std::vector<std::int32_t> first(tokens.begin(), tokens.begin() + T);
  const auto nll = backend.forward({first}, {})[0].nll;
  ASSERT_EQ(one.mean_nll.size(), static_cast<std::size_t>(T - 1));
  const double mean = std::accumulate(nll.begin(), nll.end(), 0.0) / (T - 1);
  EXPECT_NEAR(std::accumulate(one.mean_nll.begin(), one.mean_nll.end(), 0.0) / (T - 1), mean, 1e-12);
  EXPECT_NEAR(std::log(one.ppl_at_context(T)), mean, 1e-12);
  // It equals the sliding-window perplexity of a single window of length T.
  EXPECT_NEAR(sliding_window_perplexity(backend, first, T, T, {}, false).mean_nll, mean, 1e-12);

  // All windows (200 / 64 = 3): position p averages the three windows' losses.
  auto all = position_loss_curve(backend, tokens, T, 0, {});
  EXPECT_EQ(all.windows, 3);
  std::vector<double> expected(T - 1, 0.0);
  for (long k = 0; k < 3; ++k) {
    std::vector<std::int32_t> w(tokens.begin() + k * T, tokens.begin() + (k + 1) * T);
    auto r = backend.forward({w}, {})[0].nll;
    for (long j = 0; j < T - 1; ++j) expected[j] += r[j] / 3;
  }
  for (long j = 0; j < T - 1; ++j) EXPECT_NEAR(all.mean_nll[j], expected[j], 1e-12) << j;
  // Log bins [1,2), [2,4), ..., [32,64): counts add to every loss once, means are weighted consistently.
  ASSERT_EQ(all.bins.size(), 6u);
  EXPECT_EQ(all.bins.back().begin, 32);
  EXPECT_EQ(all.bins.back().end, 64);
  long count = 0;
  double weighted = 0;
  for (const auto& b : all.bins) count += b.count, weighted += b.mean_nll * b.count;
  EXPECT_EQ(count, 3 * (T - 1));
  EXPECT_NEAR(weighted / count, std::accumulate(expected.begin(), expected.end(), 0.0) / (T - 1), 1e-12);
  double bin_3 = (expected[3] + expected[4] + expected[5] + expected[6]) / 4;  // positions 4..7
  EXPECT_NEAR(all.bins[2].mean_nll, bin_3, 1e-12);
  EXPECT_THROW(position_loss_curve(backend, tokens, 201, 0, {}), ArgumentError);
  EXPECT_THROW(all.ppl_at_context(65), ArgumentError);
}

TEST(Conditions, NoiseOfStdZeroEqualsCleanExactly) {
  auto backend = backend_for("ec");
  const auto tokens = test_tokens(120);
  auto clean = sliding_window_perplexity(backend, tokens, 40, 20, {}, false);
  auto clean_curve = position_loss_curve(backend, tokens, 40, 0, {});
  for (auto kind : {ropescope::model::HeadKind::imaginary, ropescope::model::HeadKind::real}) {
    ForwardOptions noisy;
    noisy.noise = ropescope::backend::QueryNoise{kind, 0.0, 3};
    EXPECT_EQ(sliding_window_perplexity(backend, tokens, 40, 20, noisy, false).mean_nll, clean.mean_nll);
    EXPECT_EQ(position_loss_curve(backend, tokens, 40, 0, noisy).mean_nll, clean_curve.mean_nll);
    noisy.noise->std = 0.5;  // and a real std does change the loss
    EXPECT_NE(sliding_window_perplexity(backend, tokens, 40, 20, noisy, false).mean_nll, clean.mean_nll);
  }
}

TEST(Conditions, LinearScalingOfFactorOneEqualsClean) {
  auto backend = backend_for("eh");
  const auto tokens = test_tokens(120);
  auto clean = sliding_window_perplexity(backend, tokens, 40, 20, {}, false);
  ForwardOptions scaled;
  scaled.rope_override = backend.model().config.rope;
  scaled.rope_override->scaling.type = ropescope::theory::ScalingType::linear;
  scaled.rope_override->scaling.factor = 1.0;
  EXPECT_DOUBLE_EQ(sliding_window_perplexity(backend, tokens, 40, 20, scaled, false).mean_nll, clean.mean_nll);
  scaled.rope_override->scaling.factor = 4.0;
  EXPECT_NE(sliding_window_perplexity(backend, tokens, 40, 20, scaled, false).mean_nll, clean.mean_nll);
}

// The forward pass of a model whose attention outputs are all zero, written
// independently with plain loops over the weights: x <- x + mlp(norm(x)) per layer.
std::vector<double> zero_attention_nll(const ropescope::model::Model& m, const std::vector<std::int32_t>& tokens) {
  const auto& c = m.config;
  const long h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, T = static_cast<long>(tokens.size());
  auto rms_norm = [&](const std::vector<double>& x, const std::vector<float>& w) {
    double ms = 0;
    for (double v : x) ms += v * v;
    const double inv = 1.0 / std::sqrt(ms / h + c.arch.norm.eps);
    std::vector<double> y(h);
    for (long i = 0; i < h; ++i) y[i] = x[i] * inv * w[i];
    return y;
  };
  const auto embed = m.weights.embed_tokens.to_float(), lm_head = m.weights.lm_head.to_float(),
             final_norm = m.weights.norm.weight.to_float();
  std::vector<double> nll;
  for (long t = 0; t + 1 < T; ++t) {
    std::vector<double> x(h);
    for (long i = 0; i < h; ++i) x[i] = embed[tokens[t] * h + i];
    for (const auto& layer : m.weights.layers) {
      const auto post = layer.mlp_norm->weight.to_float(), gate = layer.gate_proj->to_float(),
                 up = layer.up_proj.to_float(), down = layer.down_proj.to_float();
      const auto n = rms_norm(x, post);
      std::vector<double> a(I);
      for (long j = 0; j < I; ++j) {
        double g = 0, u = 0;
        for (long i = 0; i < h; ++i) g += gate[j * h + i] * n[i], u += up[j * h + i] * n[i];
        a[j] = g / (1 + std::exp(-g)) * u;
      }
      for (long i = 0; i < h; ++i)
        for (long j = 0; j < I; ++j) x[i] += down[i * I + j] * a[j];
    }
    const auto y = rms_norm(x, final_norm);
    std::vector<double> logits(V);
    double max = -INFINITY;
    for (long v = 0; v < V; ++v) {
      for (long i = 0; i < h; ++i) logits[v] += lm_head[v * h + i] * y[i];
      max = std::max(max, logits[v]);
    }
    double sum = 0;
    for (double l : logits) sum += std::exp(l - max);
    nll.push_back(max + std::log(sum) - logits[tokens[t + 1]]);
  }
  return nll;
}

TEST(Conditions, AblatingEveryHeadEqualsZeroAttentionModel) {
  for (const char* name : {"rope", "ec", "eh", "eh_tied"}) {
    auto backend = backend_for(name);
    const auto& m = backend.model();
    ASSERT_FALSE(m.config.arch.attention.qkv_bias || m.config.arch.attention.o_bias || m.config.arch.mlp.bias)
        << "the hand-built model assumes no biases";
    const auto tokens = test_tokens(24, 11);
    ForwardOptions ablate;
    ablate.ablation.all_real = ablate.ablation.all_imaginary = true;
    const auto nll = backend.forward({tokens}, ablate)[0].nll;
    const auto expected = zero_attention_nll(m, tokens);
    ASSERT_EQ(nll.size(), expected.size());
    for (std::size_t t = 0; t < nll.size(); ++t) EXPECT_NEAR(nll[t], expected[t], 1e-4) << name << " t=" << t;
    // Through the analysis too: the curve of one window is that nll vector.
    auto curve = position_loss_curve(backend, tokens, 24, 1, ablate);
    for (std::size_t t = 0; t < nll.size(); ++t) EXPECT_NEAR(curve.mean_nll[t], expected[t], 1e-4) << name;
    // Ablating only the real heads of a RoPE++ model is something else again.
    if (m.layout.variant != ropescope::model::Variant::rope) {
      ForwardOptions real_only;
      real_only.ablation.all_real = true;
      EXPECT_GT(std::abs(backend.forward({tokens}, real_only)[0].nll[20] - expected[20]), 1e-4) << name;
    }
  }
}

}  // namespace
