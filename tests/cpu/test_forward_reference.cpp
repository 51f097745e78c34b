// The CPU forward pass against the independent PyTorch reference: every
// fixture of tests/data/fixtures/index.json (written by
// tests/reference/make_fixtures.py in float64) is recomputed here and compared
// tensor by tensor: logits, per-token NLL, the hidden state after every layer,
// and the attention scores / probabilities (and virtual imaginary scores) of
// the recorded heads. On failure the worst element is printed with its
// sequence, layer, head and position.
//
// Tolerances (float32 path vs float64 reference; weights are exactly the same
// numbers, bf16 included, so only float32 rounding separates the two):
//   hidden, logits, scores: |ours - ref| <= 2e-5 + 2e-5 |ref|
//   probabilities:          |ours - ref| <= 2e-6
//   nll:                    |ours - ref| <= 2e-5
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cpu/cpu_backend.hpp"
#include "forward_fixtures.hpp"

using namespace ropescope;
using ropescope::testing::MapRecorder;

namespace {

struct Tolerance {
  double absolute, relative;
};
constexpr Tolerance kValues{2e-5, 2e-5}, kProbabilities{2e-6, 0}, kNll{2e-5, 0};

// Tracks the element that most exceeds its tolerance (or comes closest), and the largest error.
struct Worst {
  double excess = 0, max_error = 0, ours = 0, reference = 0;
  std::string where;
  void update(double ours_value, double ref_value, Tolerance tol, const std::string& place) {
    const double err = std::abs(ours_value - ref_value);
    const double ex = std::isnan(ours_value) ? INFINITY : err - (tol.absolute + tol.relative * std::abs(ref_value));
    max_error = std::max(max_error, err);
    if (where.empty() || ex > excess) {
      excess = ex;
      ours = ours_value;
      reference = ref_value;
      where = place;
    }
  }
  bool ok() const { return excess <= 0; }
  std::string report() const {
    return fmt::format("worst at {}: ours {:.9g}, reference {:.9g}, excess over tolerance {:.3g}", where, ours,
                       reference, excess);
  }
};

std::vector<nlohmann::json> fixture_cases() {
  std::ifstream in(ropescope::testing::source_path("tests/data/fixtures/index.json"));
  auto index = nlohmann::json::parse(in);
  return std::vector<nlohmann::json>(index.begin(), index.end());
}

class ForwardMatchesPyTorch : public ::testing::TestWithParam<nlohmann::json> {};

TEST_P(ForwardMatchesPyTorch, EveryTensor) {
  const auto& c = GetParam();
  const std::string name = c["case"];
  auto model = ropescope::testing::load_test_model(c["model_dir"]);
  io::SafetensorsFile fixture(ropescope::testing::source_path("tests/data/fixtures/" + name + ".safetensors"));
  auto tokens = ropescope::testing::fixture_tokens(fixture);
  const long T = static_cast<long>(tokens[0].size());
  const bool virtual_im = c.value("virtual_imaginary", false);

  backend::ForwardOptions options;
  options.keep_logits = true;
  options.keep_hidden = true;
  if (c["ablate"] == "real") options.ablation.all_real = true;
  if (c["ablate"] == "imaginary") options.ablation.all_imaginary = true;
  MapRecorder recorder(T, virtual_im);
  const bool has_maps = fixture.contains("probs.0.0");
  if (has_maps) options.observer = &recorder;
  cpu::CpuBackend backend(model, cpu::CpuOptions{16});  // small blocks: several blocks even at T = 40
  auto results = backend.forward(tokens, options);

  Worst logits, nll, hidden, scores, probs, virtual_scores;
  const long V = model->config.vocab_size, h = model->config.hidden_size;
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    const auto& r = results[b];
    auto ref_logits = fixture.tensor("logits").to_float();
    for (long t = 0; t < T; ++t)
      for (long v = 0; v < V; ++v)
        logits.update(r.logits(t, v), ref_logits[(b * T + t) * V + v], kValues,
                      fmt::format("sequence {} position {} vocab {}", b, t, v));
    auto ref_nll = fixture.tensor("nll").to_float();
    for (long t = 0; t + 1 < T; ++t)
      nll.update(r.nll[t], ref_nll[b * (T - 1) + t], kNll, fmt::format("sequence {} position {}", b, t));
    for (int l = 0; l < model->config.num_hidden_layers; ++l) {
      auto ref = fixture.tensor(fmt::format("hidden.{}", l)).to_float();
      for (long t = 0; t < T; ++t)
        for (long i = 0; i < h; ++i)
          hidden.update(r.hidden[l](t, i), ref[(b * T + t) * h + i], kValues,
                        fmt::format("sequence {} layer {} position {} feature {}", b, l, t, i));
    }
  }
  int maps_checked = 0;
  for (int l = 0; has_maps && l < model->config.num_hidden_layers; ++l) {
    for (int a = 0; a < model->layout.attention_heads; ++a) {
      std::string key = fmt::format("{}.{}", l, a);
      if (!fixture.contains("probs." + key)) continue;
      auto ref_p = fixture.tensor("probs." + key).to_float();
      auto ref_s = fixture.tensor("scores." + key).to_float();
      std::vector<float> ref_v = virtual_im ? fixture.tensor("virtual_im." + key).to_float() : std::vector<float>();
      for (std::size_t b = 0; b < tokens.size(); ++b) {
        const auto& m = recorder.at(static_cast<int>(b), l, a);
        for (long q = 0; q < T; ++q)
          for (long k = 0; k <= q; ++k) {
            std::size_t i = (b * T + q) * T + k;
            std::string place = fmt::format("sequence {} layer {} head {} ({}) query {} key {}", b, l, a,
                                            model::to_string(model->layout.head(a).kind), q, k);
            probs.update(m.probabilities[q * T + k], ref_p[i], kProbabilities, place);
            scores.update(m.scores[q * T + k], ref_s[i], kValues, place);
            if (virtual_im) virtual_scores.update(m.virtual_imaginary[q * T + k], ref_v[i], kValues, place);
          }
      }
      ++maps_checked;
    }
  }
  EXPECT_TRUE(logits.ok()) << "logits: " << logits.report();
  EXPECT_TRUE(nll.ok()) << "nll: " << nll.report();
  EXPECT_TRUE(hidden.ok()) << "hidden: " << hidden.report();
  if (has_maps) {
    EXPECT_GT(maps_checked, 0);
    EXPECT_TRUE(probs.ok()) << "probabilities: " << probs.report();
    EXPECT_TRUE(scores.ok()) << "scores: " << scores.report();
  }
  if (virtual_im) {
    EXPECT_TRUE(virtual_scores.ok()) << "virtual imaginary scores: " << virtual_scores.report();
  }
  std::cout << name << ": max |error| logits " << logits.max_error << ", nll " << nll.max_error << ", hidden "
            << hidden.max_error
            << (has_maps ? fmt::format(", probs {:.3g}, scores {:.3g}", probs.max_error, scores.max_error) : std::string())
            << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ForwardMatchesPyTorch, ::testing::ValuesIn(fixture_cases()),
                         [](const auto& info) { return info.param["case"].template get<std::string>(); });

}  // namespace
