// Every architecture family against transformers itself: each case of
// tests/data/arch/index.json (written by tests/reference/make_arch_fixtures.py
// from transformers 5.24's own float64 eager forward of a tiny random
// checkpoint, every bias and norm weight randomised) is loaded and run on the
// CPU backend, and its logits and every layer's attention probabilities are
// compared with transformers' (the worst element printed with its run, layer,
// head and positions). The "refuse" cases must fail to load with a FormatError
// naming what is not modelled.
//
// Tolerances (float32 path vs transformers in float64 on the same float32
// weights). Transformers' "float64" forward still takes RoPE angles, cos and
// sin, softmax and most norms in float32 (ARCHITECTURES.md 1.12), while ours
// takes angles exactly and statistics in float64, so the two differ by
// float32 rounding on both sides, amplified by the depth of the model and by
// softcaps and multipliers:
//   logits:        |ours - ref| <= 1e-4 * max|ref|   (relative to the logit scale of the run)
//   probabilities: |ours - ref| <= 2e-5
// Measured margins are printed by each case (`max error`), so a drift shows
// long before it fails.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/decoder.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "forward_fixtures.hpp"

using namespace ropescope;
using ropescope::testing::MapRecorder;

namespace {

constexpr double kLogitRelative = 1e-4, kProbability = 2e-5;

std::vector<std::string> cases(const std::string& expect) {
  std::ifstream in(ropescope::testing::source_path("tests/data/arch/index.json"));
  const auto index = nlohmann::json::parse(in);
  std::vector<std::string> out;
  for (const auto& name : index) {
    std::ifstream c(ropescope::testing::source_path("tests/data/arch/" + name.get<std::string>() + "/case.json"));
    if (nlohmann::json::parse(c)["expect"] == expect) out.push_back(name);
  }
  return out;
}

nlohmann::json case_json(const std::string& name) {
  std::ifstream in(ropescope::testing::source_path("tests/data/arch/" + name + "/case.json"));
  return nlohmann::json::parse(in);
}

// The largest error and where it is.
struct Worst {
  double error = -1, ours = 0, reference = 0;
  std::string where;
  void update(double o, double r, const std::string& place) {
    const double e = std::isnan(o) ? INFINITY : std::abs(o - r);
    if (e > error) error = e, ours = o, reference = r, where = place;
  }
  std::string report() const {
    return fmt::format("max error {:.3g} at {} (ours {:.9g}, transformers {:.9g})", error, where, ours, reference);
  }
};

std::vector<std::int32_t> tokens_of(const io::TensorView& t) {
  std::vector<std::int32_t> out(t.shape().at(0));
  std::memcpy(out.data(), t.bytes().data(), out.size() * 4);
  return out;
}

class MatchesTransformers : public ::testing::TestWithParam<std::string> {};

TEST_P(MatchesTransformers, LogitsAndAttention) {
  const std::string name = GetParam();
  const std::string dir = "tests/data/arch/" + name;
  auto model = ropescope::testing::load_test_model(dir);
  for (const auto& w : model->warnings)  // only a multimodal checkpoint's parts outside the language model
    EXPECT_NE(w.find("(not the language model) are not read"), std::string::npos) << w;
  cpu::CpuBackend cpu(model);
  io::SafetensorsFile expected(ropescope::testing::source_path(dir + "/expected.safetensors"));
  const auto runs = case_json(name)["runs"];
  const int L = model->config.num_hidden_layers, A = model->layout.attention_heads;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const auto tokens = tokens_of(expected.tensor(fmt::format("tokens.{}", r)));
    const long T = static_cast<long>(tokens.size());
    MapRecorder maps(T, false);
    backend::ForwardOptions options;
    options.keep_logits = true;
    options.observer = &maps;
    const auto result = cpu.forward({tokens}, options)[0];

    const auto logits = expected.tensor(fmt::format("logits.{}", r));
    const long V = static_cast<long>(logits.shape().at(1));
    ASSERT_EQ(result.logits.rows(), T);
    ASSERT_EQ(result.logits.cols(), V);
    double scale = 0;
    for (long i = 0; i < T * V; ++i) scale = std::max(scale, std::abs(static_cast<double>(logits.at(i))));
    Worst logit;
    for (long t = 0; t < T; ++t)
      for (long v = 0; v < V; ++v)
        logit.update(result.logits(t, v), logits.at(t * V + v), fmt::format("run {} (T={}) position {} token {}", r, T, t, v));
    EXPECT_LE(logit.error, kLogitRelative * scale) << name << " logits: " << logit.report() << ", logit scale " << scale;

    Worst prob;
    for (int l = 0; l < L; ++l) {
      const auto probs = expected.tensor(fmt::format("probs.{}.{}", r, l));
      ASSERT_EQ(probs.shape(), (std::vector<std::uint64_t>{std::uint64_t(A), std::uint64_t(T), std::uint64_t(T)}));
      for (int a = 0; a < A; ++a) {
        const auto& ours = maps.at(0, l, a).probabilities;
        for (long i = 0; i < T; ++i)
          for (long j = 0; j < T; ++j)
            prob.update(ours[i * T + j], probs.at((static_cast<std::uint64_t>(a) * T + i) * T + j),
                        fmt::format("run {} layer {} head {} query {} key {}", r, l, a, i, j));
      }
    }
    EXPECT_LE(prob.error, kProbability) << name << " probabilities: " << prob.report();

    // Read only by its observer, the forward stops its last layer after the attention
    // (backend::decoder_extent, in this family's block kind): the same maps, bit for bit.
    MapRecorder alone(T, false);
    backend::ForwardOptions observer_only;
    observer_only.loss = false;
    observer_only.observer = &alone;
    const auto extent = backend::decoder_extent(observer_only, L);
    ASSERT_TRUE(extent.layers == L && extent.last_attention_only);
    cpu.forward({tokens}, observer_only);
    for (int l = 0; l < L; ++l)
      for (int a = 0; a < A; ++a) {
        EXPECT_EQ(alone.at(0, l, a).scores, maps.at(0, l, a).scores) << name << " layer " << l << " head " << a;
        EXPECT_EQ(alone.at(0, l, a).probabilities, maps.at(0, l, a).probabilities)
            << name << " layer " << l << " head " << a;
      }
    std::printf("%s run %zu (T=%ld): logits %s (scale %.3g); probabilities %s\n", name.c_str(), r, T,
                logit.report().c_str(), scale, prob.report().c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Families, MatchesTransformers, ::testing::ValuesIn(cases("match")),
                         [](const auto& info) { return info.param; });

class RefusedAtLoad : public ::testing::TestWithParam<std::string> {};

TEST_P(RefusedAtLoad, WithAMessageNamingIt) {
  const std::string name = GetParam();
  // What the message must name, per case.
  const std::map<std::string, std::string> names = {
      {"refuse_qwen3_moe", "model_type \"qwen3_moe\" is not supported (mixture-of-experts MLPs are not modelled)"},
      {"refuse_phi", "model_type \"phi\" is not supported (Phi-1/2"},
      {"refuse_frobnicate", "model_type \"frobnicate\" is not supported; supported families: llama"},
      {"refuse_mistral_extra_tensor",
       "unexpected tensor \"model.layers.0.self_attn.extra_proj.weight\" (mistral does not use it)"},
  };
  ASSERT_TRUE(names.count(name)) << "no expected message for " << name;
  try {
    ropescope::testing::load_test_model("tests/data/arch/" + name);
    ADD_FAILURE() << name << " loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(names.at(name)), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RefusedAtLoad, ::testing::ValuesIn(cases("refuse")),
                         [](const auto& info) { return info.param; });

}  // namespace
