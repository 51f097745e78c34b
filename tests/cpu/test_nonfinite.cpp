// NaN is never a number: a NaN or infinite weight is refused at load, naming
// the tensor and element; absurd query noise stops the CPU forward at the
// first layer whose residual stream is not finite, naming the layer, branch
// and the likely cause; a last layer run for its observer alone checks its
// attention's output, and an observed ablated head its probabilities; the analyses refuse to aggregate non-finite losses or
// attention sums; an observer's distance range is checked before the forward
// (ArgumentError, not an abort), and an exception thrown inside the CPU
// backend's parallel head loop reaches the caller.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "../common/run_command.hpp"
#include "analysis/distance_profile.hpp"
#include "analysis/perplexity.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "io/safetensors_writer.hpp"
#include "forward_fixtures.hpp"
#include "model/weight_scan.hpp"
#include "poisoned_checkpoint.hpp"

using namespace ropescope;
using ropescope::testing::random_tokens;
using ropescope::testing::source_path;
using ropescope::testing::TempDir;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::span<const std::byte> bytes_of(const void* p, std::size_t n) { return {static_cast<const std::byte*>(p), n}; }

}  // namespace

TEST(WeightScan, FindsTheFirstNonFiniteElementOfEveryFloatDtype) {
  // bf16 / f16 / f32 / f64 bit patterns, at an odd byte offset (safetensors data may be misaligned).
  std::vector<std::byte> buffer(1 + 8 * 5000);
  auto check = [&](auto value_type, auto bad, std::uint64_t at, io::Dtype dtype) {
    using U = decltype(value_type);
    const std::size_t n = 5000;
    for (std::size_t i = 0; i < n; ++i) {
      const U v = static_cast<U>(i % 200);  // finite bit patterns (small exponents)
      std::memcpy(buffer.data() + 1 + i * sizeof(U), &v, sizeof(U));
    }
    auto span = bytes_of(buffer.data() + 1, n * sizeof(U));
    EXPECT_FALSE(model::first_non_finite(span, dtype).has_value()) << io::to_string(dtype);
    const U b = static_cast<U>(bad);
    std::memcpy(buffer.data() + 1 + at * sizeof(U), &b, sizeof(U));
    std::memcpy(buffer.data() + 1 + (n - 1) * sizeof(U), &b, sizeof(U));  // a later one does not win
    auto found = model::first_non_finite(span, dtype);
    ASSERT_TRUE(found.has_value()) << io::to_string(dtype);
    EXPECT_EQ(*found, at) << io::to_string(dtype);
  };
  check(std::uint16_t{}, 0x7fc0u, 4097, io::Dtype::BF16);  // NaN
  check(std::uint16_t{}, 0xff80u, 3, io::Dtype::BF16);     // -inf
  check(std::uint16_t{}, 0x7c00u, 2048, io::Dtype::F16);   // +inf
  check(std::uint16_t{}, 0x7e00u, 0, io::Dtype::F16);      // NaN
  check(std::uint32_t{}, 0x7f800000u, 4999 - 1, io::Dtype::F32);
  check(std::uint64_t{}, 0x7ff8000000000000ull, 17, io::Dtype::F64);
  // Largest finite values are finite.
  const std::uint16_t max_bf16 = 0x7f7f, max_f16 = 0x7bff;
  EXPECT_FALSE(model::first_non_finite(bytes_of(&max_bf16, 2), io::Dtype::BF16).has_value());
  EXPECT_FALSE(model::first_non_finite(bytes_of(&max_f16, 2), io::Dtype::F16).has_value());
}

TEST(WeightScan, LoadRefusesANanOrInfiniteWeightNamingTheTensorAndElement) {
  TempDir dir;
  const std::filesystem::path ec = source_path("tests/data/models/ec");
  struct Case {
    std::string tensor;
    std::uint64_t index;
    float value;
    std::string value_text, coordinates;
  };
  // ec: hidden 32, intermediate 64, bf16.
  const std::vector<Case> cases{
      {"model.layers.1.mlp.down_proj.weight", 70, std::numeric_limits<float>::quiet_NaN(), "NaN", "[1, 6]"},
      {"model.layers.0.self_attn.q_proj.weight", 33, std::numeric_limits<float>::infinity(), "+inf", "[1, 1]"},
      {"model.norm.weight", 5, -std::numeric_limits<float>::infinity(), "-inf", "[5]"},
      {"lm_head.weight", 0, std::numeric_limits<float>::quiet_NaN(), "NaN", "[0, 0]"}};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto target = dir / ("model" + std::to_string(i));
    ropescope::testing::write_poisoned_checkpoint(ec, target, c.tensor, c.index, c.value);
    try {
      model::load_model(target);
      ADD_FAILURE() << c.tensor << ": loaded";
    } catch (const FormatError& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, "\"" + c.tensor + "\"")) << m;
      EXPECT_TRUE(contains(m, (target / "model.safetensors").string())) << m;
      EXPECT_TRUE(contains(m, "(" + c.value_text + ") at element " + std::to_string(c.index))) << m;
      EXPECT_TRUE(contains(m, "index " + c.coordinates)) << m;
    }
  }
  // The untouched copy loads.
  ropescope::testing::write_poisoned_checkpoint(ec, dir / "clean", "model.norm.weight", 5, 1.0f);
  EXPECT_NO_THROW(model::load_model(dir / "clean"));
}

TEST(WeightScan, TheFirstBadElementInTensorOrderWinsOnTheThreadedPath) {
  // 48 MB of bf16 in three tensors (above the scan's 32 MB threshold for threads): bad elements late in the
  // second tensor and early in the third; the second tensor's is reported, whatever the threads' timing.
  TempDir dir;
  const std::uint64_t n = std::uint64_t{8} << 20;
  std::vector<std::vector<std::uint16_t>> data(3, std::vector<std::uint16_t>(n, 0x3f80));  // 1.0
  data[1][n - 3] = 0x7fc0;                                                                   // NaN
  data[2][5] = 0x7f80;                                                                       // +inf
  std::vector<io::TensorData> tensors;
  for (int i = 0; i < 3; ++i)
    tensors.push_back({"t" + std::to_string(i), io::Dtype::BF16, {n / 1024, 1024}, bytes_of(data[i].data(), 2 * n)});
  io::write_safetensors(dir / "big.safetensors", tensors);
  const io::SafetensorsFile file(dir / "big.safetensors");
  const std::vector<io::TensorView> views{file.tensor("t0"), file.tensor("t1"), file.tensor("t2")};
  for (int repeat = 0; repeat < 3; ++repeat) {
    try {
      model::check_finite(views);
      FAIL() << "no error";
    } catch (const FormatError& e) {
      EXPECT_TRUE(contains(e.what(), "tensor \"t1\" holds a non-finite weight (NaN) at element 8388605 (index [8191, "
                                     "1021] of shape [8192, 1024])"))
          << e.what();
    }
  }
  EXPECT_NO_THROW(model::check_finite({views[0]}));
}

class NonFiniteForward : public ::testing::Test {
 protected:
  std::shared_ptr<const model::Model> ec = ropescope::testing::load_test_model("tests/data/models/ec");
  std::shared_ptr<const model::Model> rope = ropescope::testing::load_test_model("tests/data/models/rope");
};

TEST_F(NonFiniteForward, HugeQueryNoiseNamesTheLayerBranchAndCause) {
  for (const auto kind : {model::HeadKind::real, model::HeadKind::imaginary}) {
    cpu::CpuBackend backend(ec);
    backend::ForwardOptions o;
    o.noise = backend::QueryNoise{kind, 1e300, 7};
    try {
      backend.forward({random_tokens(5, 256, 1), random_tokens(40, 256, 2)}, o);
      ADD_FAILURE() << "no error";
    } catch (const ArgumentError& e) {
      ADD_FAILURE() << "an ArgumentError (exit 2), expected Error: " << e.what();
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_TRUE(contains(m, "sequence 0 after the attention branch of layer 0 (first at position")) << m;
      EXPECT_TRUE(contains(m, std::string("query noise std 1e+300 on the ") + model::to_string(kind) + " component")) << m;
    }
  }
  // Noise that overflows float32 only in the scores: still named, as the likely cause (1e37 still runs).
  cpu::CpuBackend backend(rope);
  backend::ForwardOptions o;
  o.noise = backend::QueryNoise{model::HeadKind::real, 3e37, 7};  // queries finite, their scores not
  try {
    backend.forward({random_tokens(64, 256, 3)}, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "branch of layer 0")) << e.what();
    EXPECT_TRUE(contains(e.what(), "query noise (std 3e+37 on the real component) is the likely cause")) << e.what();
  }
}

TEST_F(NonFiniteForward, AnAblatedHeadsNonFiniteAttentionIsRefusedWhereObservedAndHarmlessElsewhere) {
  // Noise beyond float32 on the imaginary component, every imaginary head ablated: their NaN never reaches
  // the residual stream, so the forward is finite, but an observer of those heads would read NaN.
  backend::ForwardOptions o;
  o.noise = backend::QueryNoise{model::HeadKind::imaginary, 1e300, 7};
  o.ablation.all_imaginary = true;
  const auto tokens = random_tokens(40, 256, 2);
  const auto unobserved = cpu::CpuBackend(ec).forward({tokens}, o)[0];
  for (const double nll : unobserved.nll) EXPECT_TRUE(std::isfinite(nll));
  ropescope::testing::MapRecorder maps(40, false);
  o.observer = &maps;
  try {
    cpu::CpuBackend(ec).forward({tokens}, o);
    ADD_FAILURE() << "no error";
  } catch (const ArgumentError& e) {
    ADD_FAILURE() << "an ArgumentError (exit 2), expected Error: " << e.what();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(contains(m, "in the attention probabilities of layer 0, head ")) << m;
    EXPECT_TRUE(contains(m, "(ablated: its output does not reach the residual stream; first at position 0)")) << m;
    EXPECT_TRUE(contains(m, "query noise std 1e+300 on the imaginary component")) << m;
  }
}

TEST_F(NonFiniteForward, ReadOnlyByItsObserverTheLastLayerStopsAfterItsAttentionWhichIsStillChecked) {
  // Finite norm weights (bf16 3e38) whose products overflow float32 in layer 1 (the last): before its MLP,
  // and before its attention.
  TempDir dir;
  const auto ec_dir = source_path("tests/data/models/ec");
  ropescope::testing::write_poisoned_checkpoint(ec_dir, dir / "mlp", "model.layers.1.post_attention_layernorm.weight",
                                                5, 3e38f);
  ropescope::testing::write_poisoned_checkpoint(ec_dir, dir / "attention", "model.layers.1.input_layernorm.weight", 5,
                                                3e38f);
  const auto tokens = random_tokens(64, 256, 5);
  ropescope::testing::MapRecorder clean(64, false);
  backend::ForwardOptions clean_options;
  clean_options.observer = &clean;
  cpu::CpuBackend(ec).forward({tokens}, clean_options);

  for (const std::string which : {"mlp", "attention"}) {
    cpu::CpuBackend backend(std::make_shared<const model::Model>(model::load_model(dir / which)));
    ropescope::testing::MapRecorder maps(64, false);
    backend::ForwardOptions whole;  // the hidden states read the last layer's output
    whole.loss = false;
    whole.keep_hidden = true;
    whole.observer = &maps;
    try {
      backend.forward({tokens}, whole);
      ADD_FAILURE() << which << ": no error";
    } catch (const Error& e) {
      const std::string expected = which == "mlp" ? "MLP" : "attention";
      EXPECT_TRUE(contains(e.what(), "sequence 0 after the " + expected + " branch of layer 1 (first at position"))
          << e.what();
    }
    backend::ForwardOptions observed;
    observed.loss = false;
    observed.observer = &maps;
    if (which == "mlp") {
      // The MLP that overflows is not run, and the maps are the clean model's.
      EXPECT_NO_THROW(backend.forward({tokens}, observed));
      for (int l = 0; l < 2; ++l)
        for (int a = 0; a < 8; ++a)
          EXPECT_EQ(maps.at(0, l, a).probabilities, clean.at(0, l, a).probabilities) << "layer " << l << " head " << a;
      continue;
    }
    try {
      backend.forward({tokens}, observed);
      ADD_FAILURE() << "attention: no error";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "sequence 0 in the attention output of layer 1 (first at position")) << e.what();
    }
    // An observer of layer 0 alone: layer 1 is not run, and layer 0's maps are the clean model's.
    ropescope::testing::FirstLayerRecorder first(64, false);
    observed.observer = &first;
    EXPECT_NO_THROW(backend.forward({tokens}, observed));
    for (int a = 0; a < 8; ++a) EXPECT_EQ(first.at(0, 0, a).probabilities, clean.at(0, 0, a).probabilities) << a;
  }
}

TEST_F(NonFiniteForward, ObserverDistanceRangeIsCheckedBeforeTheForward) {
  cpu::CpuBackend backend(ec);
  analysis::ProfileObserver short_bins(analysis::DistanceBins::log_spaced(4, 9, 4), {}, 2, 8);
  backend::ForwardOptions o;
  o.observer = &short_bins;
  try {
    backend.forward({random_tokens(10, 256, 1), random_tokens(11, 256, 1)}, o);
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    EXPECT_TRUE(contains(e.what(), "sequence 1 of 11 tokens reaches distance 10, beyond the 10 distances")) << e.what();
  }
  EXPECT_NO_THROW(backend.forward({random_tokens(10, 256, 1)}, o));
}

// An observer that throws inside the backend's OpenMP head loop.
class ThrowingObserver : public backend::AttentionObserver {
 public:
  void on_block(const backend::AttentionBlock& block) override {
    if (block.layer == 1 && block.head.index == 2) throw std::out_of_range("observer refuses layer 1 head 2");
  }
};

TEST_F(NonFiniteForward, AnExceptionInTheParallelHeadLoopReachesTheCaller) {
  cpu::CpuBackend backend(ec);
  ThrowingObserver observer;
  backend::ForwardOptions o;
  o.observer = &observer;
  EXPECT_THROW(backend.forward({random_tokens(300, 256, 4)}, o), std::out_of_range);
  // The backend stays usable.
  EXPECT_EQ(backend.forward({random_tokens(30, 256, 4)}, {})[0].nll.size(), 29u);
}

TEST_F(NonFiniteForward, AProfileObserverOutOfItsRangeOnBlocksIsAnExceptionNotAnAbort) {
  // The sequence-slot range cannot be checked up front (the backend does not know it): the observer throws
  // inside the parallel region and the caller gets the exception.
  cpu::CpuBackend backend(ec);
  analysis::ProfileObserver one_slot(analysis::DistanceBins::log_spaced(4, 100, 4), {}, 2, 8, 1);
  backend::ForwardOptions o;
  o.observer = &one_slot;
  EXPECT_THROW(backend.forward({random_tokens(20, 256, 1), random_tokens(20, 256, 2)}, o), std::out_of_range);
}

// A backend whose losses are chosen by the test.
class FixedLossBackend : public backend::Backend {
 public:
  FixedLossBackend(std::shared_ptr<const model::Model> model, double loss) : model_(std::move(model)), loss_(loss) {}
  std::string name() const override { return "fixed"; }
  std::string precision() const override { return "fixed"; }
  const model::Model& model() const override { return *model_; }
  std::vector<backend::ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                              const backend::ForwardOptions&) override {
    std::vector<backend::ForwardResult> out(sequences.size());
    for (std::size_t s = 0; s < sequences.size(); ++s) out[s].nll.assign(sequences[s].size() - 1, loss_);
    return out;
  }
  std::uint64_t forward_bytes(long, const backend::ForwardOptions&) const override { return 0; }
  std::vector<std::string> kernel_choices() const override { return {"fixed losses"}; }

 private:
  std::shared_ptr<const model::Model> model_;
  double loss_;
};

TEST_F(NonFiniteForward, PerplexityNeverAggregatesANonFiniteLoss) {
  const auto tokens = random_tokens(64, 256, 5);
  FixedLossBackend fine(ec, 2.0);
  EXPECT_NEAR(analysis::sliding_window_perplexity(fine, tokens, 16, 8, {}, true).ppl, std::exp(2.0), 1e-12);
  for (double loss : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    FixedLossBackend bad(ec, loss);
    try {
      analysis::sliding_window_perplexity(bad, tokens, 16, 8, {}, true);
      ADD_FAILURE() << "no error for loss " << loss;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "sliding-window perplexity at L = 16, stride 8: the mean next-token loss is"))
          << e.what();
    }
    try {
      analysis::position_loss_curve(bad, tokens, 16, 0, {});
      ADD_FAILURE() << "no error for loss " << loss;
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "loss curve at T = 16: the mean loss at position 1 is")) << e.what();
    }
  }
  // Finite losses whose perplexity overflows double.
  FixedLossBackend huge(ec, 800.0);
  try {
    analysis::sliding_window_perplexity(huge, tokens, 16, 8, {}, true);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "the perplexity exp(800) is inf")) << e.what();
  }
}

TEST(NonFiniteProfile, AResultWithNonFiniteSumsIsAnError) {
  const auto bins = analysis::DistanceBins::log_spaced(4, 15, 4);
  analysis::ProfileObserver observer(bins, {8}, 1, 2);
  const long T = 4;
  std::vector<float> probs(T * T, 0.0f), scores(T * T, -std::numeric_limits<float>::infinity());
  for (long t = 0; t < T; ++t)
    for (long s = 0; s <= t; ++s) probs[t * T + s] = 1.0f / static_cast<float>(t + 1), scores[t * T + s] = 0.5f;
  backend::AttentionBlock block{0, 0, model::AttentionHead{}, 0, T, T, scores.data(), probs.data(), nullptr};
  block.head.index = 0;
  observer.on_block(block);
  EXPECT_NO_THROW(observer.result(0, 0));
  probs[2 * T + 1] = std::numeric_limits<float>::quiet_NaN();
  block.head.index = 1;
  observer.on_block(block);
  try {
    observer.result(0, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "distance profile of layer 0 head 1: the probability sum of bin 1 (1 .. 1) is nan"))
        << e.what();
  }
}
