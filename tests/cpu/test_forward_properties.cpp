// Properties of the CPU forward that need no reference: the RoPE++ scores are
// the real and negative imaginary parts of the complex sum of ROPEPP.md
// section 1; noise with std 0 is the clean model and noise is reproducible;
// observers, block sizes and batching do not change results; a forward read
// only by its observer runs the layers it looks at; bad tokens and impossible
// contexts are clear errors; exact vs HF float32 angles.
#include <gtest/gtest.h>

#include <atomic>
#include <complex>
#include <random>

#include "analysis/attention_maps.hpp"
#include "backend/decoder.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "forward_fixtures.hpp"

using namespace ropescope;
using ropescope::testing::random_tokens;

namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

}  // namespace

TEST(RopeScores, RealAndImaginaryAreTheComplexSumsParts) {
  // With q~_n = q[n] + i q[n + d/2] and z = sum_n q~_n conj(k~_n) e^{i theta_n (t - s)}:
  //   score_re = (R_t q) . (R_s k)            = Re z
  //   score_im = (R_t R_{-pi/2} q) . (R_s k)  = Re(-i z) = +Im z = -Im conj(z).
  // ROPEPP.md calls the imaginary score "the negative imaginary part"; that holds
  // for the conjugate sum conj(z) = sum_n conj(q~_n) k~_n e^{-i theta_n (t - s)}.
  // With z itself the sign is +, as the code formula q sin - rotate_half(q) cos
  // and the positive plateau of c_im (Figure 1) both say.
  for (double partial : {1.0, 0.5}) {
    theory::RopeSpec spec;
    spec.head_dim = 64;
    spec.partial_rotary_factor = partial;
    const long positions = 5000;
    auto table = model::make_rope_table(spec, positions, model::AnglePrecision::exact, positions);
    auto f = theory::rope_frequencies(spec);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    const int d = 64, r = f.rotary_dim, half = r / 2;
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> q(d), k(d);
      for (auto& x : q) x = normal(rng);
      for (auto& x : k) x = normal(rng);
      long t = rng() % positions, s = rng() % (t + 1);
      std::vector<float> qr = q, qi = q, kr = k;
      model::rotate_head(qr.data(), table, t, model::HeadKind::real);
      model::rotate_head(qi.data(), table, t, model::HeadKind::imaginary);
      model::rotate_head(kr.data(), table, s, model::HeadKind::real);
      double re = 0, im = 0;
      for (int i = 0; i < d; ++i) {
        re += double(qr[i]) * kr[i];
        im += double(qi[i]) * kr[i];
      }
      std::complex<double> sum = 0;
      for (int n = 0; n < half; ++n)
        sum += std::complex<double>(q[n], q[n + half]) * std::conj(std::complex<double>(k[n], k[n + half])) *
               std::polar(1.0, f.theta[n] * double(t - s));
      // pass-through dims: unrotated in both kinds, so they add q.k to both scores
      double pass = 0;
      for (int i = r; i < d; ++i) pass += double(q[i]) * k[i];
      EXPECT_NEAR(re, sum.real() + pass, 1e-4 * (1 + std::abs(sum.real()))) << "t=" << t << " s=" << s;
      EXPECT_NEAR(im, -std::conj(sum).imag() + pass, 1e-4 * (1 + std::abs(sum.imag()))) << "t=" << t << " s=" << s;
    }
  }
}

TEST(RopeTable, AnglePrecisionIsSpelledExactOrHfAndAnythingElseNamesTheParameter) {
  EXPECT_EQ(model::parse_angle_precision("exact"), model::AnglePrecision::exact);
  EXPECT_EQ(model::parse_angle_precision("hf"), model::AnglePrecision::hf_float32);
  try {
    model::parse_angle_precision("float32");
    FAIL() << "no error for 'float32'";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.parameter(), "angles");
    EXPECT_STREQ(e.what(), "angles: 'float32' is not one of exact, hf");
  }
}

TEST(RopeTable, ExactAndHfFloat32AnglesAgreeAtShortPositionsAndPartAtLongOnes) {
  theory::RopeSpec spec;
  auto exact = model::make_rope_table(spec, 100001, model::AnglePrecision::exact, 0);
  auto hf = model::make_rope_table(spec, 100001, model::AnglePrecision::hf_float32, 0);
  double short_diff = 0, long_diff = 0;
  for (int n = 0; n < exact.pairs; ++n) {
    for (long p = 0; p < 64; ++p) short_diff = std::max(short_diff, double(std::abs(exact.cos_at(p, n) - hf.cos_at(p, n))));
    long_diff = std::max(long_diff, double(std::abs(exact.cos_at(100000, n) - hf.cos_at(100000, n))));
  }
  EXPECT_LT(short_diff, 1e-5);
  EXPECT_GT(long_diff, 1e-3);  // float32 angles are ~1e-2 rad off at position 1e5
  std::cout << "max |cos exact - cos hf_float32|: positions < 64: " << short_diff << ", position 1e5: " << long_diff << "\n";
}

class ForwardProperties : public ::testing::Test {
 protected:
  std::shared_ptr<const model::Model> ec = ropescope::testing::load_test_model("tests/data/models/ec");
  std::shared_ptr<const model::Model> rope = ropescope::testing::load_test_model("tests/data/models/rope");
};

TEST_F(ForwardProperties, NoiseWithZeroStdIsTheCleanModelAndNoiseIsReproducible) {
  cpu::CpuBackend backend(ec);
  auto tokens = random_tokens(200, ec->config.vocab_size, 1);
  backend::ForwardOptions clean, zero, noisy, same, other_seed;
  zero.noise = backend::QueryNoise{model::HeadKind::imaginary, 0.0, 5};
  noisy.noise = backend::QueryNoise{model::HeadKind::imaginary, 0.5, 5};
  same.noise = noisy.noise;
  other_seed.noise = backend::QueryNoise{model::HeadKind::imaginary, 0.5, 6};
  auto a = backend.forward({tokens}, clean)[0].nll;
  EXPECT_EQ(backend.forward({tokens}, zero)[0].nll, a);
  auto n1 = backend.forward({tokens}, noisy)[0].nll;
  EXPECT_NE(n1, a);
  EXPECT_EQ(backend.forward({tokens}, same)[0].nll, n1);
  EXPECT_NE(backend.forward({tokens}, other_seed)[0].nll, n1);
}

TEST_F(ForwardProperties, WithoutTheLossNoNllAndTheSameLogitsAndHiddenStates) {
  cpu::CpuBackend backend(ec);
  auto tokens = random_tokens(50, ec->config.vocab_size, 2);
  backend::ForwardOptions with, without;
  with.keep_logits = with.keep_hidden = without.keep_logits = without.keep_hidden = true;
  without.loss = false;
  const auto a = backend.forward({tokens}, with)[0], b = backend.forward({tokens}, without)[0];
  EXPECT_EQ(a.nll.size(), 49u);
  EXPECT_TRUE(b.nll.empty());
  EXPECT_EQ(a.logits, b.logits);
  ASSERT_EQ(a.hidden.size(), b.hidden.size());
  for (std::size_t l = 0; l < a.hidden.size(); ++l) EXPECT_EQ(a.hidden[l], b.hidden[l]);
  without.keep_logits = false;
  const auto c = backend.forward({tokens}, without)[0];
  EXPECT_TRUE(c.nll.empty());
  EXPECT_EQ(c.logits.size(), 0);
}

// A forward whose only reader is its observer runs up to the last layer the
// observer looks at, that one's attention alone; with any other reader, or
// whole_forward (a tensor-parallel rank beside a first rank that computes the
// loss), every layer whole.
TEST_F(ForwardProperties, AnObserverOnlyForwardRunsUpToTheLastObservedLayer) {
  const int L = ec->config.num_hidden_layers;  // 2
  ropescope::testing::MapRecorder every(8, false);
  analysis::MapRequest first;
  first.layers = {0};
  analysis::AttentionMapRecorder layer0(*ec, first, 16);
  struct NoLayer : backend::AttentionObserver {
    void on_block(const backend::AttentionBlock&) override {}
    bool observes(int, int) const override { return false; }
    bool observes_layer(int) const override { return false; }
  } none;
  auto extent = [&](backend::AttentionObserver* observer, bool loss, bool logits, bool hidden, bool whole) {
    backend::ForwardOptions o;
    o.observer = observer;
    o.loss = loss;
    o.keep_logits = logits;
    o.keep_hidden = hidden;
    o.whole_forward = whole;
    const auto e = backend::decoder_extent(o, L);
    return std::pair{e.layers, e.last_attention_only};
  };
  EXPECT_EQ(extent(nullptr, false, false, false, false), std::pair(L, false));
  EXPECT_EQ(extent(&every, true, false, false, false), std::pair(L, false));
  EXPECT_EQ(extent(&every, false, true, false, false), std::pair(L, false));
  EXPECT_EQ(extent(&every, false, false, true, false), std::pair(L, false));
  EXPECT_EQ(extent(&every, false, false, false, true), std::pair(L, false));
  EXPECT_EQ(extent(&every, false, false, false, false), std::pair(L, true));
  EXPECT_EQ(extent(&layer0, false, false, false, false), std::pair(1, true));
  EXPECT_EQ(extent(&layer0, true, false, false, false), std::pair(L, false));
  EXPECT_EQ(extent(&none, false, false, false, false), std::pair(0, false));
}

TEST_F(ForwardProperties, ImaginaryNoiseOnAVanillaModelIsAnArgumentError) {
  cpu::CpuBackend backend(rope);
  backend::ForwardOptions o;
  o.noise = backend::QueryNoise{model::HeadKind::imaginary, 0.1, 1};
  EXPECT_THROW(backend.forward({random_tokens(10, 256, 1)}, o), ArgumentError);
}

TEST_F(ForwardProperties, BlockSizeBatchingAndObserversDoNotChangeTheResult) {
  auto t1 = random_tokens(300, 256, 2), t2 = random_tokens(77, 256, 3);
  cpu::CpuBackend small_blocks(ec, cpu::CpuOptions{7}), large_blocks(ec, cpu::CpuOptions{512});
  backend::ForwardOptions o;
  auto batch = small_blocks.forward({t1, t2}, o);
  auto single = large_blocks.forward({t1}, o)[0];
  ASSERT_EQ(batch[0].nll.size(), 299u);
  for (std::size_t i = 0; i < single.nll.size(); ++i) EXPECT_NEAR(batch[0].nll[i], single.nll[i], 2e-5) << i;
  EXPECT_EQ(large_blocks.forward({t2}, o)[0].nll.size(), 76u);

  struct CountingObserver : backend::AttentionObserver {
    std::atomic<long> rows{0};
    bool wants_virtual_imaginary() const override { return true; }
    void on_block(const backend::AttentionBlock& b) override {
      EXPECT_NE(b.virtual_imaginary_scores, nullptr);
      rows += b.q_end - b.q_begin;
    }
  } counter;
  cpu::CpuBackend rope_backend(rope);
  auto clean = rope_backend.forward({t1}, o)[0].nll;
  backend::ForwardOptions observed;
  observed.observer = &counter;
  EXPECT_EQ(rope_backend.forward({t1}, observed)[0].nll, clean);  // virtual imaginary scores change nothing
  EXPECT_EQ(counter.rows.load(), 300L * rope->layout.attention_heads * rope->config.num_hidden_layers);
}

TEST_F(ForwardProperties, AblatingAHeadChangesTheOutputAndOnlyThroughThatHead) {
  cpu::CpuBackend backend(ec);
  auto tokens = random_tokens(64, 256, 4);
  backend::ForwardOptions clean, ablate_one, ablate_imag;
  ablate_one.ablation.heads = {{1, 3}};
  ablate_imag.ablation.all_imaginary = true;
  clean.keep_hidden = ablate_one.keep_hidden = true;
  auto a = backend.forward({tokens}, clean)[0];
  auto b = backend.forward({tokens}, ablate_one)[0];
  EXPECT_EQ(a.hidden[0], b.hidden[0]);  // layer 0 untouched
  EXPECT_NE(a.hidden[1], b.hidden[1]);
  EXPECT_NE(backend.forward({tokens}, ablate_imag)[0].nll, a.nll);
}

TEST_F(ForwardProperties, OutOfVocabularyTokenNamesItsPosition) {
  cpu::CpuBackend backend(ec);
  auto tokens = random_tokens(20, 256, 5);
  tokens[13] = 256;
  try {
    backend.forward({random_tokens(5, 256, 1), tokens}, {});
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 256 at position 13 of sequence 1"), std::string::npos) << e.what();
  }
}

TEST_F(ForwardProperties, AContextThatCannotFitIsRefusedWithItsSize) {
  cpu::CpuBackend backend(ec);
  backend::ForwardOptions o;
  o.keep_logits = true;
  // 10^12 tokens need tens of PiB: refused on any machine, checked on T alone (nothing allocated).
  try {
    backend.check_memory(1'000'000'000'000, o);
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("needs about"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("GiB"), std::string::npos) << e.what();
  }
}

TEST_F(ForwardProperties, LongContextRunsInBlocksWithFiniteLoss) {
  cpu::CpuBackend backend(ec);
  auto nll = backend.forward({random_tokens(4096, 256, 9)}, {})[0].nll;
  ASSERT_EQ(nll.size(), 4095u);
  for (double x : nll) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(mean(nll), 0.0);
}

TEST_F(ForwardProperties, RopeOverridesThatDifferInAnyScalingFieldGetTheirOwnTables) {
  cpu::CpuBackend backend(ec);
  auto tokens = random_tokens(64, 256, 11);
  backend::ForwardOptions a, b;
  a.rope_override = ec->config.rope;
  a.rope_override->scaling.type = theory::ScalingType::yarn;
  a.rope_override->scaling.factor = 4;
  a.rope_override->scaling.original_max_position = 4096;  // beta_fast 32 vs 8: ramp starts at pair 2 vs 3
  b.rope_override = a.rope_override;
  b.rope_override->scaling.beta_fast = 8;  // only this differs
  auto first = backend.forward({tokens}, a)[0].nll;
  EXPECT_NE(backend.forward({tokens}, b)[0].nll, first);
  EXPECT_EQ(backend.forward({tokens}, a)[0].nll, first);
}
