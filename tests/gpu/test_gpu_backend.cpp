// The CUDA backend against the CPU reference backend: every case of
// tests/data/fixtures/index.json (every committed test model, the head
// ablations, the T = 300 sequence; d = 16, the plain attention kernel) and
// random bf16 checkpoints at d = 128 (EC) and d = 64 (EH), T = 300 (the flash
// kernel). Compared: per-token NLL, the residual stream after every layer
// (norm-relative error per layer, worst element with layer and position) and
// logits; query noise; attention maps (score blocks) and distance profiles
// (the GPU's own reduction) against the GPU's blocks and the CPU's.
// Tolerances (bf16 weights, activations and GEMM outputs against the
// CPU's float32): NLL |diff| <= 0.05 nats + 0.5% of the NLL (the relative
// term serves the tied test models, whose logits reach ~30 and NLL ~25: a
// 0.6% hidden-state error is then 0.15 nats; measured worst 0.6% relative),
// hidden ||cuda - cpu|| / ||cpu|| <= 2e-2 per layer (measured <= 6.6e-3). Also the ArgumentErrors of what the backend refuses.
// With two devices, data parallel (ppl and profiles on two GPUs byte-identical to one).
// Skipped, with the runtime's reason, where there is no CUDA device (CI).
// The data directory is ROPESCOPE_SOURCE_DIR from the environment when set
// (binaries carried to the GPU machine), else the build's source tree.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>
#include <fstream>
#include <functional>
#include <thread>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <csignal>

#include "analysis/distance_profile.hpp"
#include "analysis/perplexity_report.hpp"
#include "analysis/profile_report.hpp"
#include "backend/data_parallel.hpp"
#include "backend/decoder.hpp"
#include "backend/tensor_parallel.hpp"
#include "model/tensor_parallel.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "io/safetensors.hpp"
#include "kernels/cuda_backend.hpp"
#include "kernels/device_info.hpp"
#include "kernels/lab/random_checkpoint.hpp"
#ifdef ROPESCOPE_HAVE_NCCL
#include "kernels/nccl_group.hpp"
#endif
#include "../common/run_command.hpp"
#include "../cpu/forward_fixtures.hpp"
#include "../cpu/poisoned_checkpoint.hpp"

namespace rs = ropescope;
using ropescope::testing::csv_difference;
using ropescope::testing::json_difference;
using ropescope::testing::JsonDifference;
using rs::backend::ForwardOptions;

namespace {

constexpr double kNllAbsolute = 0.05, kNllRelative = 5e-3;
constexpr double kHiddenTolerance = 2e-2;
// The architecture fixtures (tests/data/arch: hidden 32, head_dim 8-12,
// residual streams up to ~20, float32 weights) amplify the bf16 activation
// roundings more than the test models: the first GPU run (no window, no
// softcap involved: llama3, qwen2_swa_off, qwen2_yarn_v4) gave NLL |diff| up
// to 0.243 at NLL 6.62 (3.7%), hidden rel-norm up to 1.9e-2, probabilities
// 6.5e-2 and scores 0.28. Tolerances for them: NLL 0.05 + 5%, maps 0.1 / 0.4.
// Slice 2 (every fixture on the GPU, first run): hidden rel-norm up to
// 2.19e-2 on smollm3 (4 layers, residual up to 27.6, tied embeddings; the
// 2-layer fixtures stay <= 1.8e-2; per layer 7.1e-3, 1.45e-2, 1.95e-2,
// 2.19e-2, and the same checkpoint with its NoPE layer rotated reached
// 2.34e-2, so the growth is bf16 noise over depth, not the NoPE path): the
// fixtures' hidden tolerance is 3e-2 (the test models' 2e-2 is unchanged).
// And the score tolerance is times m =
// max(1, scale sqrt(d)) as in test_gpu_ops (a bf16 rounding of q or k moves
// a score in proportion to the scale): granite's attention_multiplier 0.7
// at d = 16 gives m = 2.8 and scores 0.48 apart.
constexpr double kArchNllRelative = 5e-2, kArchProbability = 0.1, kArchScore = 0.4, kArchHidden = 3e-2;

std::string source_path(const std::string& relative) {
  const char* env = std::getenv("ROPESCOPE_SOURCE_DIR");
  return std::string(env ? env : ROPESCOPE_SOURCE_DIR) + "/" + relative;
}

bool have_device(std::string& why) { return !rs::kernels::cuda_devices(&why).empty(); }

// Runs the CPU backend and a GPU one (a CUDA backend, or what `gpu_backend`
// makes: a tensor-parallel group) and checks (and prints) the differences.
void compare(const std::string& label, const std::shared_ptr<const rs::model::Model>& model,
             const std::vector<std::vector<std::int32_t>>& tokens, const ForwardOptions& options,
             double nll_relative = kNllRelative, double hidden_tolerance = kHiddenTolerance,
             const std::function<std::unique_ptr<rs::backend::Backend>()>& gpu_backend = nullptr) {
  rs::cpu::CpuBackend cpu(model);
  auto gpu = gpu_backend ? gpu_backend() : std::make_unique<rs::cuda::CudaBackend>(model);
  const auto ref = cpu.forward(tokens, options);
  const auto got = gpu->forward(tokens, options);
  ASSERT_EQ(ref.size(), got.size());
  double nll_worst = 0, nll_excess = -std::numeric_limits<double>::infinity(), hidden_worst_rel = 0, elem_worst = 0, logit_worst = 0;
  std::string nll_where, hidden_where, elem_where;
  std::vector<std::string> per_layer;  // sequence 0's rel-norm per layer, to show how the error grows with depth
  for (std::size_t b = 0; b < tokens.size(); ++b) {
    ASSERT_EQ(got[b].nll.size(), ref[b].nll.size());
    for (std::size_t t = 0; t < ref[b].nll.size(); ++t) {
      const double diff = std::abs(got[b].nll[t] - ref[b].nll[t]);
      const double excess = diff - (kNllAbsolute + nll_relative * std::abs(ref[b].nll[t]));
      if (!(excess <= nll_excess)) {
        nll_excess = excess;
        nll_worst = diff;
        nll_where = fmt::format("sequence {} position {} (cpu {:.6f}, cuda {:.6f})", b, t, ref[b].nll[t], got[b].nll[t]);
      }
    }
    ASSERT_EQ(got[b].hidden.size(), ref[b].hidden.size());
    for (std::size_t l = 0; l < ref[b].hidden.size(); ++l) {
      const auto& r = ref[b].hidden[l];
      const auto& g = got[b].hidden[l];
      const double rel = (g - r).norm() / r.norm();
      if (b == 0) per_layer.push_back(fmt::format("{:.2e}", rel));
      if (!(rel <= hidden_worst_rel)) {
        hidden_worst_rel = rel;
        hidden_where = fmt::format("sequence {} layer {}", b, l);
      }
      Eigen::Index t, i;
      const double e = (g - r).cwiseAbs().maxCoeff(&t, &i);
      if (!(e <= elem_worst)) {
        elem_worst = e;
        elem_where = fmt::format("sequence {} layer {} position {} feature {} (cpu {:.5f}, cuda {:.5f}; layer max |x| "
                                 "{:.3f})",
                                 b, l, t, i, r(t, i), g(t, i), r.cwiseAbs().maxCoeff());
      }
    }
    if (options.keep_logits) logit_worst = std::max<double>(logit_worst, (got[b].logits - ref[b].logits).cwiseAbs().maxCoeff());
  }
  fmt::print("[{}] NLL |diff| nearest its tolerance {:.2e} at {}; hidden worst layer rel-norm {:.2e} ({}; per layer "
             "{}); worst element |diff| {:.2e} at {}; logits max |diff| {:.2e}\n",
             label, nll_worst, nll_where, hidden_worst_rel, hidden_where, fmt::join(per_layer, " "), elem_worst,
             elem_where, logit_worst);
  EXPECT_LE(nll_excess, 0.0) << label << ": NLL |diff| " << nll_worst << " at " << nll_where;
  EXPECT_LE(hidden_worst_rel, hidden_tolerance) << label << ": " << hidden_where;
}

std::vector<nlohmann::json> fixture_cases() {
  std::ifstream in(source_path("tests/data/fixtures/index.json"));
  auto index = nlohmann::json::parse(in);
  return std::vector<nlohmann::json>(index.begin(), index.end());
}

class CudaMatchesCpu : public ::testing::TestWithParam<nlohmann::json> {};

TEST_P(CudaMatchesCpu, NllAndHidden) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const auto& c = GetParam();
  const std::string name = c["case"];
  auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(source_path(c["model_dir"])));
  rs::io::SafetensorsFile fixture(source_path("tests/data/fixtures/" + name + ".safetensors"));
  rs::io::TensorView t = fixture.tensor("tokens");
  const auto B = t.shape().at(0), T = t.shape().at(1);
  std::vector<std::vector<std::int32_t>> tokens(B, std::vector<std::int32_t>(T));
  for (std::uint64_t b = 0; b < B; ++b) std::memcpy(tokens[b].data(), t.bytes().data() + b * T * 4, T * 4);
  ForwardOptions options;
  options.keep_hidden = true;
  options.keep_logits = true;
  if (c["ablate"] == "real") options.ablation.all_real = true;
  if (c["ablate"] == "imaginary") options.ablation.all_imaginary = true;
  compare(name, model, tokens, options);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaMatchesCpu, ::testing::ValuesIn(fixture_cases()),
                         [](const auto& info) { return info.param["case"].template get<std::string>(); });

// A random checkpoint of `shape` (projection std 1 / sqrt(hidden)), written
// under the temp directory, loaded, and its directory removed (the model's
// memory map keeps the data).
std::shared_ptr<const rs::model::Model> random_model(const std::string& label, rs::kernels::lab::RandomModelShape shape) {
  shape.std = 1.0f / std::sqrt(static_cast<float>(shape.hidden));
  const auto dir = std::filesystem::temp_directory_path() / ("ropescope_gpu_backend_" + label);
  rs::kernels::lab::write_random_checkpoint(dir, shape);
  auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(dir));
  std::filesystem::remove_all(dir);
  return model;
}

// The random EC model most tests use: hidden 256, num_attention_heads 4 of
// d = 128, 2 KV heads, MLP 512, vocab 1000, 2 layers, seed 3.
const rs::kernels::lab::RandomModelShape kEcD128 = {"ec", 256, 4, 2, 128, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 3};
// One-layer models of the mma.sync-only head dims (the profile tests): EC with
// 2 query heads of d = 256 over 1 KV head, seed 12; RoPE with 6 heads of d = 96
// over 2 KV heads (G = 3), hidden 288, seed 13.
const rs::kernels::lab::RandomModelShape kEcD256 = {"ec", 256, 2, 1, 256, 512, 1000, 1, 10000.0, 0.02f, 1.0f, 12};
const rs::kernels::lab::RandomModelShape kRopeD96G3 = {"rope", 288, 6, 2, 96, 512, 1000, 1, 10000.0, 0.02f, 1.0f, 13};

// The d = 16 EC test model (tests/data/models/ec), which runs the plain kernels.
std::shared_ptr<const rs::model::Model> ec_fixture() {
  return std::make_shared<const rs::model::Model>(rs::model::load_model(source_path("tests/data/models/ec")));
}

// T ids uniform in [0, vocab) from mt19937(seed) (the numbers in kernels/NOTES.md were measured with these).
std::vector<std::int32_t> uniform_tokens(long T, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int32_t> id(0, vocab - 1);
  std::vector<std::int32_t> t(T);
  for (auto& x : t) x = id(rng);
  return t;
}

// Random checkpoints at the flash kernels' head dimensions.
void random_case(const std::string& label, rs::kernels::lab::RandomModelShape shape, bool ablate_one) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const auto model = random_model(label, shape);
  const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(300, shape.vocab, 5)};
  ForwardOptions options;
  options.keep_hidden = true;
  if (ablate_one) options.ablation.heads = {{0, 1}, {1, 2}};
  compare(label, model, tokens, options);
}

TEST(CudaMatchesCpuRandom, EcHeadDim128) {
  random_case("ec_d128", kEcD128, false);
}

TEST(CudaMatchesCpuRandom, EhHeadDim64WithAblation) {
  random_case("eh_d64_ablate", {"eh", 256, 8, 4, 64, 512, 1000, 2, 500000.0, 0.02f, 1.0f, 4}, true);
}

TEST(CudaMatchesCpuRandom, RopeGroup7) {  // Qwen2.5-7B's group: padded wgmma tiles on Hopper
  random_case("rope_g7", {"rope", 256, 14, 2, 64, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 7}, false);
}

// Head dims the mma.sync kernel takes and wgmma does not: Gemma's 256 (EC, group 4), Phi-3's 96, 80 with
// a padded group of 3.
TEST(CudaMatchesCpuRandom, EcHeadDim256) {
  random_case("ec_d256", {"ec", 256, 2, 1, 256, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 9}, false);
}

TEST(CudaMatchesCpuRandom, RopeHeadDim96) {
  random_case("rope_d96", {"rope", 384, 4, 4, 96, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 10}, false);
}

TEST(CudaMatchesCpuRandom, RopeHeadDim80Group3) {
  random_case("rope_d80_g3", {"rope", 240, 6, 2, 80, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 11}, false);
}

TEST(CudaBackendRefuses, HugeLogitsAndBadTokens) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  auto model = ec_fixture();
  rs::cuda::CudaBackend gpu(model);
  ForwardOptions keep;
  keep.keep_logits = true;
  const std::vector<std::vector<std::int32_t>> long_tokens(1, std::vector<std::int32_t>((1 << 20) + 1, 1));
  EXPECT_THROW(gpu.forward(long_tokens, keep), rs::ArgumentError);
  const std::vector<std::vector<std::int32_t>> bad{{1, 256}};
  EXPECT_THROW(gpu.forward(bad, {}), rs::ArgumentError);
  rs::analysis::ProfileObserver short_bins(rs::analysis::DistanceBins::log_spaced(4, 9, 4), {}, 2, 8);
  ForwardOptions profile;
  profile.observer = &short_bins;
  const std::vector<std::vector<std::int32_t>> eleven(1, std::vector<std::int32_t>(11, 1));
  EXPECT_THROW(gpu.forward(eleven, profile), rs::ArgumentError);
}

// Query noise beyond float32's range: the device-side flag names the first
// layer and branch whose residual stream is not finite (an Error, exit 1),
// and the backend stays usable; forward_bytes grows with T.
TEST(CudaNonFinite, HugeQueryNoiseNamesTheLayer) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  auto model = ec_fixture();
  rs::cuda::CudaBackend gpu(model);
  const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(40, 256, 2)};
  for (const auto kind : {rs::model::HeadKind::real, rs::model::HeadKind::imaginary}) {
    ForwardOptions o;
    o.noise = rs::backend::QueryNoise{kind, 1e300, 7};
    try {
      gpu.forward(tokens, o);
      ADD_FAILURE() << "no error";
    } catch (const rs::ArgumentError& e) {
      ADD_FAILURE() << "an ArgumentError (exit 2), expected Error: " << e.what();
    } catch (const rs::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("sequence 0 after the attention branch of layer 0 (first at position"), std::string::npos) << m;
      EXPECT_NE(m.find("query noise std 1e+300"), std::string::npos) << m;
    }
  }
  const auto clean = gpu.forward(tokens, {});
  for (double x : clean[0].nll) EXPECT_TRUE(std::isfinite(x));
  EXPECT_GT(gpu.forward_bytes(1 << 20, {}), gpu.forward_bytes(1 << 10, {}));
  // Every imaginary head ablated and noised beyond float32: a finite forward, as on the CPU, but an observer
  // of the ablated heads' blocks is refused their NaN probabilities, naming the head.
  ForwardOptions ablated;
  ablated.noise = rs::backend::QueryNoise{rs::model::HeadKind::imaginary, 1e300, 7};
  ablated.ablation.all_imaginary = true;
  for (double x : gpu.forward(tokens, ablated)[0].nll) EXPECT_TRUE(std::isfinite(x));
  rs::testing::MapRecorder maps(40, false);
  ablated.observer = &maps;
  try {
    gpu.forward(tokens, ablated);
    ADD_FAILURE() << "an observed ablated head: no error";
  } catch (const rs::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("in the attention probabilities of layer 0, head "), std::string::npos) << m;
    EXPECT_NE(m.find("(ablated: its output does not reach the residual stream; first at position 0)"),
              std::string::npos)
        << m;
  }
}

// ---- Query noise, attention maps and distance profiles on the GPU ----------

// Noise on either component, on test models (plain kernels) and a d = 128 EC
// model (flash kernel): the same noise values as the CPU, so the same
// tolerance as the clean forward; and the noise must change the result.
TEST(CudaQueryNoise, MatchesCpu) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  struct Case {
    std::string label;
    std::shared_ptr<const rs::model::Model> model;
  };
  const std::vector<Case> cases{
      {"ec", ec_fixture()},
      {"eh", std::make_shared<const rs::model::Model>(rs::model::load_model(source_path("tests/data/models/eh")))},
      {"ec_d128", random_model("noise_ec_d128", kEcD128)}};
  for (const auto& c : cases) {
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(200, c.model->config.vocab_size, 9)};
    for (const auto kind : {rs::model::HeadKind::real, rs::model::HeadKind::imaginary}) {
      ForwardOptions options;
      options.keep_hidden = true;
      options.noise = rs::backend::QueryNoise{kind, 1.0, 1234};
      compare(fmt::format("{} noise on {}", c.label, rs::model::to_string(kind)), c.model, tokens, options);
      rs::cuda::CudaBackend gpu(c.model);
      const auto clean = gpu.forward(tokens, {});
      const auto noisy = gpu.forward(tokens, options);
      double change = 0;
      for (std::size_t t = 0; t < clean[0].nll.size(); ++t) change = std::max(change, std::abs(clean[0].nll[t] - noisy[0].nll[t]));
      EXPECT_GT(change, 0.05) << c.label << ": noise of std 1 left the NLL unchanged";
    }
  }
}

// Every architecture fixture of tests/data/arch (expect "match") that the
// CUDA backend takes (unsupported_features empty): NLL, hidden states and
// logits against the CPU on each of the fixture's token runs, and the score
// blocks (maps) of every head, which under a window must be -inf with
// probability 0 outside it. Every "match" fixture must be among those run:
// the CUDA backend refuses none of them (slice 2: qk-norm, norm / MLP
// kinds, block kinds, multipliers, final softcap, NoPE and local-RoPE
// layers, fused projections).
TEST(CudaMatchesCpuArchitectures, EverySupportedFixture) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  std::ifstream in(source_path("tests/data/arch/index.json"));
  const auto index = nlohmann::json::parse(in);
  std::vector<std::string> ran;
  std::size_t matching = 0;
  for (const std::string name : index) {
    std::ifstream case_in(source_path("tests/data/arch/" + name + "/case.json"));
    const auto info = nlohmann::json::parse(case_in);
    if (info["expect"] != "match") continue;
    ++matching;
    auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(source_path("tests/data/arch/" + name)));
    if (const auto missing = rs::cuda::unsupported_features(*model); !missing.empty()) {
      fmt::print("[arch {}] refused by the CUDA backend: {}\n", name, fmt::join(missing, "; "));
      continue;
    }
    ran.push_back(name);
    rs::io::SafetensorsFile expected(source_path("tests/data/arch/" + name + "/expected.safetensors"));
    for (std::size_t r = 0; r < info["runs"].size(); ++r) {
      const auto t = expected.tensor(fmt::format("tokens.{}", r));
      std::vector<std::int32_t> tokens(t.shape().at(0));
      std::memcpy(tokens.data(), t.bytes().data(), tokens.size() * 4);
      const long T = static_cast<long>(tokens.size());
      ForwardOptions options;
      options.keep_hidden = true;
      options.keep_logits = true;
      compare(fmt::format("arch {} run {}", name, r), model, {tokens}, options, kArchNllRelative, kArchHidden);

      rs::testing::MapRecorder cpu_maps(T, false), gpu_maps(T, false);
      ForwardOptions map_options;
      map_options.observer = &cpu_maps;
      rs::cpu::CpuBackend(model).forward({tokens}, map_options);
      map_options.observer = &gpu_maps;
      rs::cuda::CudaBackend(model).forward({tokens}, map_options);
      double worst_p = 0, worst_s = 0;
      std::string where;
      for (int l = 0; l < model->config.num_hidden_layers; ++l)
        for (int a = 0; a < model->layout.attention_heads; ++a) {
          const auto& c = cpu_maps.at(0, l, a);
          const auto& g = gpu_maps.at(0, l, a);
          for (std::size_t i = 0; i < static_cast<std::size_t>(T * T); ++i) {
            const bool masked = std::isinf(c.scores[i]);
            if (masked) {
              ASSERT_EQ(g.probabilities[i], 0.0f) << name << " layer " << l << " head " << a << " element " << i;
              ASSERT_TRUE(std::isinf(g.scores[i]) && g.scores[i] < 0) << name << " layer " << l << " element " << i;
              continue;
            }
            const double dp = std::abs(g.probabilities[i] - c.probabilities[i]);
            if (dp > worst_p) worst_p = dp, where = fmt::format("layer {} head {} query {} key {}", l, a, i / T, i % T);
            worst_s = std::max<double>(worst_s, std::abs(g.scores[i] - c.scores[i]));
          }
        }
      fmt::print("[arch {} run {} T {}] maps: probabilities max |diff| {:.2e} at {}; scores {:.2e}\n", name, r, T,
                 worst_p, where, worst_s);
      EXPECT_LE(worst_p, kArchProbability) << name << " " << where;
      const double m = std::max(1.0, model->config.arch.attention.scale * std::sqrt(model->layout.head_dim));
      EXPECT_LE(worst_s, kArchScore * m) << name;
    }
  }
  fmt::print("[arch] compared on the GPU: {}\n", fmt::join(ran, ", "));
  EXPECT_EQ(ran.size(), matching) << "some \"match\" fixtures were refused (listed above)";
}

// Score and probability blocks of every head (the observer path that attn
// uses), against the CPU's; virtual imaginary scores of a RoPE model too.
TEST(CudaAttentionMaps, MatchCpu) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  for (const std::string name : {"models/ec", "models/rope", "reference_models/eh_mha"}) {
    auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(source_path("tests/data/" + name)));
    const long T = 97;
    const bool virtual_im = model->layout.variant == rs::model::Variant::rope;
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(T, model->config.vocab_size, 4)};
    rs::testing::MapRecorder cpu_maps(T, virtual_im), gpu_maps(T, virtual_im);
    ForwardOptions options;
    options.observer = &cpu_maps;
    rs::cpu::CpuBackend(model).forward(tokens, options);
    options.observer = &gpu_maps;
    rs::cuda::CudaBackend(model).forward(tokens, options);
    double worst_p = 0, worst_s = 0, worst_v = 0, worst_row_sum = 0;
    std::string where_p, where_s;
    for (int l = 0; l < model->config.num_hidden_layers; ++l)
      for (int a = 0; a < model->layout.attention_heads; ++a) {
        const auto& r = cpu_maps.at(0, l, a);
        const auto& g = gpu_maps.at(0, l, a);
        for (long q = 0; q < T; ++q) {
          double row_sum = 0;
          for (long k = 0; k <= q; ++k) {
            const std::size_t i = q * T + k;
            row_sum += g.probabilities[i];
            const double dp = std::abs(g.probabilities[i] - r.probabilities[i]);
            const double ds = std::abs(g.scores[i] - r.scores[i]);
            if (dp > worst_p) worst_p = dp, where_p = fmt::format("layer {} head {} query {} key {}", l, a, q, k);
            if (ds > worst_s) worst_s = ds, where_s = fmt::format("layer {} head {} query {} key {}", l, a, q, k);
            if (virtual_im) worst_v = std::max<double>(worst_v, std::abs(g.virtual_imaginary[i] - r.virtual_imaginary[i]));
          }
          for (long k = q + 1; k < T; ++k) {
            ASSERT_EQ(g.probabilities[q * T + k], 0.0f);
            ASSERT_TRUE(std::isinf(g.scores[q * T + k]) && g.scores[q * T + k] < 0);
          }
          worst_row_sum = std::max(worst_row_sum, std::abs(row_sum - 1.0));
        }
      }
    fmt::print("[maps {}] probabilities max |diff| {:.2e} at {}; scores max |diff| {:.2e} at {}; virtual imaginary "
               "{:.2e}; worst |row sum - 1| {:.1e}\n",
               name, worst_p, where_p, worst_s, where_s, worst_v, worst_row_sum);
    // bf16 activations against float32: scores of these models reach ~10.
    EXPECT_LE(worst_p, 2e-2) << name << " " << where_p;
    EXPECT_LE(worst_s, 5e-2) << name << " " << where_s;
    EXPECT_LE(worst_v, 5e-2) << name;
    EXPECT_LE(worst_row_sum, 1e-5) << name;
  }
}

// The block path of a ProfileObserver: a backend that honours the request
// gets no request from this one, so it hands over score blocks.
class BlockProfileObserver : public rs::analysis::ProfileObserver {
 public:
  using ProfileObserver::ProfileObserver;
  const rs::backend::DistanceSumsRequest* distance_sums_request() const override { return nullptr; }
};

struct ProfileDiff {
  double prob = 0, score = 0, distance = 0, entropy = 0, mass = 0;  // worst relative (prob, distance), absolute (rest)
  std::string where;
};

ProfileDiff profile_diff(const rs::analysis::ProfileObserver& got, const rs::analysis::ProfileObserver& ref, int layers,
                         int heads) {
  ProfileDiff d;
  for (int l = 0; l < layers; ++l)
    for (int a = 0; a < heads; ++a) {
      const auto g = got.result(l, a), r = ref.result(l, a);
      EXPECT_EQ(g.count, r.count);
      EXPECT_EQ(g.queries, r.queries);
      for (std::size_t b = 0; b < r.prob_sum.size(); ++b) {
        const double dp = std::abs(g.mean_prob(b) - r.mean_prob(b)) / std::max(r.mean_prob(b), 1e-30);
        if (dp > d.prob) d.prob = dp, d.where = fmt::format("layer {} head {} bin {}", l, a, b);
        d.score = std::max(d.score, std::abs(g.mean_score(b) - r.mean_score(b)));
      }
      d.distance = std::max(d.distance, std::abs(g.mean_distance() - r.mean_distance()) / r.mean_distance());
      d.entropy = std::max(d.entropy, std::abs(g.entropy() - r.entropy()));
      for (std::size_t j = 0; j < r.beyond.size(); ++j) d.mass = std::max(d.mass, std::abs(g.mass_beyond(j) - r.mass_beyond(j)));
    }
  return d;
}

// The number of heads whose distance profiles (every sum) are not bitwise equal.
long heads_whose_profiles_differ(const rs::analysis::ProfileObserver& a, const rs::analysis::ProfileObserver& b,
                                 int layers, int heads) {
  long differ = 0;
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) {
      const auto x = a.result(l, h), y = b.result(l, h);
      differ += x.prob_sum != y.prob_sum || x.score_sum != y.score_sum || x.mass_sum != y.mass_sum ||
                x.distance_sum != y.distance_sum || x.entropy_sum != y.entropy_sum;
    }
  return differ;
}

// Distance profiles from the GPU's own reduction (no T x T) against (1) the
// same GPU forward's score blocks reduced on the host: the same scores, so
// only summation order and exp rounding differ; and (2) the CPU backend.
// Cases: a d = 16 test model (plain kernel), d = 128 EC, d = 64 EH, d = 256 EC and
// d = 96 random models (tensor-core kernels) at T = 1500 with 100 exact distances, so both
// its per-diagonal and its two-slot reductions run, and one noisy run.
TEST(CudaDistanceProfiles, MatchBlocksAndCpu) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  struct Case {
    std::string label;
    std::shared_ptr<const rs::model::Model> model;
    long T;
    bool noise;
  };
  const std::vector<Case> cases{
      {"ec (d 16)", ec_fixture(), 300, false},
      {"ec d128", random_model("profile_ec_d128", kEcD128), 1500, false},
      {"eh d64 noisy", random_model("profile_eh_d64", {"eh", 256, 8, 4, 64, 512, 1000, 2, 500000.0, 0.02f, 1.0f, 4}), 1500, true},
      {"rope d128 G8", random_model("profile_rope_g8", {"rope", 256, 8, 1, 128, 512, 1000, 1, 10000.0, 0.02f, 1.0f, 6}), 700, false},
      {"rope d128 G7", random_model("profile_rope_g7", {"rope", 256, 14, 2, 128, 512, 1000, 1, 10000.0, 0.02f, 1.0f, 8}), 1500, false},
      {"ec d256", random_model("profile_ec_d256", kEcD256), 1500, false},
      {"rope d96 G3", random_model("profile_rope_d96", kRopeD96G3), 1500, false}};
  for (const auto& c : cases) {
    const int layers = c.model->config.num_hidden_layers, heads = c.model->layout.attention_heads;
    const auto bins = rs::analysis::DistanceBins::log_spaced(100, c.T - 1, 8);
    const std::vector<long> beyond{64, 256, 1024};
    rs::analysis::ProfileObserver sums(bins, beyond, layers, heads);
    BlockProfileObserver gpu_blocks(bins, beyond, layers, heads), cpu_blocks(bins, beyond, layers, heads);
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(c.T, c.model->config.vocab_size, 21)};
    ForwardOptions options;
    if (c.noise) options.noise = rs::backend::QueryNoise{rs::model::HeadKind::imaginary, 0.5, 99};
    rs::cuda::CudaBackend gpu(c.model);
    options.observer = &sums;
    gpu.forward(tokens, options);
    options.observer = &gpu_blocks;
    gpu.forward(tokens, options);
    options.observer = &cpu_blocks;
    rs::cpu::CpuBackend(c.model).forward(tokens, options);

    double mass_total = 0;  // every query's probabilities sum to 1: bins add up to T per head
    for (int l = 0; l < layers; ++l)
      for (int a = 0; a < heads; ++a) {
        const auto p = sums.result(l, a);
        double total = 0;
        for (double x : p.prob_sum) total += x;
        mass_total = std::max(mass_total, std::abs(total - static_cast<double>(c.T)) / static_cast<double>(c.T));
      }
    const ProfileDiff same = profile_diff(sums, gpu_blocks, layers, heads);
    const ProfileDiff cpu = profile_diff(sums, cpu_blocks, layers, heads);
    fmt::print("[profile {} T {}] GPU sums vs GPU blocks: mean prob rel {:.1e} ({}), mean score abs {:.1e}, mean "
               "distance rel {:.1e}, entropy abs {:.1e}, mass abs {:.1e}; vs CPU: {:.1e} ({}), {:.1e}, {:.1e}, {:.1e}, "
               "{:.1e}; |sum p / T - 1| {:.1e}\n",
               c.label, c.T, same.prob, same.where, same.score, same.distance, same.entropy, same.mass, cpu.prob,
               cpu.where, cpu.score, cpu.distance, cpu.entropy, cpu.mass, mass_total);
    // Same scores: fp32 exp and summation differences only.
    EXPECT_LE(same.prob, 1e-4) << c.label << " " << same.where;
    EXPECT_LE(same.score, 1e-4) << c.label;
    EXPECT_LE(same.distance, 1e-5) << c.label;
    EXPECT_LE(same.entropy, 1e-4) << c.label;
    EXPECT_LE(same.mass, 1e-5) << c.label;
    EXPECT_LE(mass_total, 1e-5) << c.label;
    // Against float32: the bf16 forward moves scores by ~1e-2.
    EXPECT_LE(cpu.prob, 5e-2) << c.label << " " << cpu.where;
    EXPECT_LE(cpu.score, 5e-2) << c.label;
    EXPECT_LE(cpu.distance, 2e-2) << c.label;
    EXPECT_LE(cpu.entropy, 2e-2) << c.label;
    EXPECT_LE(cpu.mass, 1e-2) << c.label;
  }
}

// The distance sums are exact fixed-point integers (kernels/ops/fixed_point.hpp):
// a profile run twice on one GPU is the same bit for bit, on each sums path
// (d 16: the simple kernel; d 128 EC: the fused forward and its band pass, or
// the tensor-core kernel off Hopper). And score sums out of their fixed-point
// range (query noise of std 1e20: scores near 1e20, finite in fp32, against
// limits of 2^61 at T = 300 and 2^56 at 1500) are refused with an Error
// naming the layer and the kernel, after which the backend still works.
TEST(CudaDistanceProfiles, BitwiseReproducibleAndOverflowRefused) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  struct Case {
    std::string label;
    std::shared_ptr<const rs::model::Model> model;
    long T;
    std::string kernel;  // the one an overflow is reported from
  };
  const std::vector<Case> cases{
      {"ec (d 16)", ec_fixture(), 300, "attention_distance_sums_simple_bf16"},
      {"ec d128", random_model("profile_ec_d128", kEcD128), 1500, "attention_"}};
  for (const auto& c : cases) {
    const int layers = c.model->config.num_hidden_layers, heads = c.model->layout.attention_heads;
    const auto bins = rs::analysis::DistanceBins::log_spaced(100, c.T - 1, 8);
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(c.T, c.model->config.vocab_size, 23)};
    rs::cuda::CudaBackend gpu(c.model);
    auto profile = [&](ForwardOptions options) {
      auto observer = std::make_unique<rs::analysis::ProfileObserver>(bins, std::vector<long>{64, 256}, layers, heads);
      options.observer = observer.get();
      gpu.forward(tokens, options);
      return observer;
    };
    const auto first = profile({}), second = profile({});
    EXPECT_EQ(heads_whose_profiles_differ(*first, *second, layers, heads), 0)
        << c.label << ": heads whose profile differs between two runs";
    ForwardOptions loud;
    loud.noise = rs::backend::QueryNoise{rs::model::HeadKind::real, 1e20, 5};
    try {
      profile(loud);
      ADD_FAILURE() << c.label << ": no error";
    } catch (const rs::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("layer 0 of sequence 0"), std::string::npos) << m;
      EXPECT_NE(m.find(c.kernel), std::string::npos) << m;
      // Which sum overflows first depends on the model: the tiny d16 one's scores stay inside their range
      // (its NaN probabilities are refused), the d128 one's scores do not.
      EXPECT_NE(m.find("refused"), std::string::npos) << m;
      fmt::print("[overflow {}] {}\n", c.label, m);
    }
    const auto after = profile({});
    EXPECT_EQ(after->result(0, 0).prob_sum, first->result(0, 0).prob_sum) << c.label << ": after the refused run";
  }
}

// Read only by its observer (loss off, as `ropescope profile` runs it), a
// forward stops its last layer after the attention
// (backend::decoder_extent; the mma.sync kernel then computes the
// log-sum-exp alone, at d = 96 and 256): the sums and the blocks are the whole
// forward's, bit for bit, on each kernel path (d 16 simple, d 128 wgmma fused
// on Hopper, d 256 and 96 mma.sync). That layer's non-finite attention (a
// finite norm weight of 3e38 before it; on the simple and the mma.sync lse
// paths) is still refused: its blocks by the backend, its sums by the
// kernels' overflow check; an observer of layer 0 alone does not run it.
TEST(CudaDistanceProfiles, ReadOnlyByTheObserverTheSameBitsAndStillChecked) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  struct Case {
    std::string label;
    std::shared_ptr<const rs::model::Model> model;
    long T;
  };
  const std::vector<Case> cases{
      {"ec (d 16)", ec_fixture(), 300},
      {"ec d128", random_model("profile_ec_d128", kEcD128), 1500},
      {"ec d256", random_model("profile_ec_d256", kEcD256), 1500},
      {"rope d96 G3", random_model("profile_rope_d96", kRopeD96G3), 1500}};
  for (const auto& c : cases) {
    const int layers = c.model->config.num_hidden_layers, heads = c.model->layout.attention_heads;
    const auto bins = rs::analysis::DistanceBins::log_spaced(100, c.T - 1, 8);
    const std::vector<long> beyond{64, 256, 1024};
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(c.T, c.model->config.vocab_size, 29)};
    rs::cuda::CudaBackend gpu(c.model);
    auto profile = [&](rs::analysis::ProfileObserver& observer, bool whole) {
      ForwardOptions options;
      options.loss = false;
      options.keep_hidden = whole;  // the hidden states read the last layer's output
      options.observer = &observer;
      EXPECT_EQ(rs::backend::decoder_extent(options, layers).last_attention_only, !whole);
      gpu.forward(tokens, options);
    };
    rs::analysis::ProfileObserver sums_whole(bins, beyond, layers, heads), sums_alone(bins, beyond, layers, heads);
    BlockProfileObserver blocks_whole(bins, beyond, layers, heads), blocks_alone(bins, beyond, layers, heads);
    profile(sums_whole, true);
    profile(sums_alone, false);
    profile(blocks_whole, true);
    profile(blocks_alone, false);
    const long differ = heads_whose_profiles_differ(sums_whole, sums_alone, layers, heads) +
                        heads_whose_profiles_differ(blocks_whole, blocks_alone, layers, heads);
    EXPECT_EQ(differ, 0) << c.label << ": (head, path) profiles that differ between the whole and the observed forward";
    fmt::print("[observed only {}] {} layers x {} heads, sums and blocks bitwise the whole forward's: {}\n", c.label,
               layers, heads, differ == 0 ? "yes" : "NO");
  }

  // The last layer poisoned: the d 16 test model's layer 1 (simple kernels), and a d 256 random model's only
  // layer (the mma.sync lse build; the wgmma sums on Hopper, else the mma.sync sums).
  rs::testing::TempDir dir;
  rs::testing::write_poisoned_checkpoint(source_path("tests/data/models/ec"), dir / "ec", "model.layers.1.input_layernorm.weight",
                                         5, 3e38f);
  rs::kernels::lab::RandomModelShape d256 = kEcD256;
  d256.std = 1.0f / std::sqrt(static_cast<float>(d256.hidden));  // as random_model writes it
  rs::kernels::lab::write_random_checkpoint(dir / "d256_clean", d256);
  rs::testing::write_poisoned_checkpoint(dir / "d256_clean", dir / "d256", "model.layers.0.input_layernorm.weight", 5,
                                         3e38f);
  const long T = 64;
  const auto bins = rs::analysis::DistanceBins::log_spaced(T, T - 1, 8);
  const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(T, 256, 5)};
  for (const auto& [name, last] : {std::pair{std::string("ec"), 1}, std::pair{std::string("d256"), 0}}) {
    const auto poisoned = std::make_shared<const rs::model::Model>(rs::model::load_model(dir / name));
    const int layers = poisoned->config.num_hidden_layers, heads = poisoned->layout.attention_heads;
    rs::cuda::CudaBackend gpu(poisoned);
    for (const bool blocks : {true, false}) {
      rs::analysis::ProfileObserver sums(bins, {}, layers, heads);
      BlockProfileObserver by_blocks(bins, {}, layers, heads);
      ForwardOptions options;
      options.loss = false;
      options.observer = blocks ? &by_blocks : &sums;
      try {
        gpu.forward(tokens, options);
        ADD_FAILURE() << name << (blocks ? " blocks" : " sums") << ": no error";
      } catch (const rs::Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find(blocks ? fmt::format("sequence 0 in the attention probabilities of layer {}, head ", last)
                                : fmt::format("layer {} of sequence 0", last)),
                  std::string::npos)
            << m;
        if (!blocks) {
          EXPECT_NE(m.find("refused"), std::string::npos) << m;
        }
        fmt::print("[observed only, {} poisoned in layer {}, {}] {}\n", name, last, blocks ? "blocks" : "sums", m);
      }
    }
  }
  const auto poisoned = std::make_shared<const rs::model::Model>(rs::model::load_model(dir / "ec"));
  rs::cuda::CudaBackend gpu(poisoned);
  // An observer of layer 0 alone: layer 1 is not run.
  rs::testing::FirstLayerRecorder first(T, false);
  ForwardOptions options;
  options.loss = false;
  options.observer = &first;
  EXPECT_NO_THROW(gpu.forward(tokens, options));
}

// Random checkpoints through the flash kernels with the slice's features:
// Mistral with a sliding window of 300 at T = 1000 (G = 4, d = 128: key
// tiles skipped, windows not a multiple of the tiles), Granite with an
// attention multiplier of 0.5 (not d^-0.5) at d = 64. NLL and hidden states,
// then distance profiles (GPU sums vs the GPU's blocks vs the CPU) and maps.
TEST(CudaMatchesCpuRandom, SlidingWindowAndScale) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  rs::kernels::lab::RandomModelShape mistral{"rope", 256, 8, 2, 128, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 11};
  mistral.model_type = "mistral";
  mistral.architecture = "MistralForCausalLM";
  mistral.extra_config = "\"sliding_window\": 300";
  rs::kernels::lab::RandomModelShape granite{"rope", 256, 8, 4, 64, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 12};
  granite.model_type = "granite";
  granite.architecture = "GraniteForCausalLM";
  granite.extra_config = "\"attention_multiplier\": 0.5";
  for (const auto& [label, shape] : {std::pair{std::string("mistral_w300_d128"), mistral},
                                     std::pair{std::string("granite_scale_d64"), granite}}) {
    const auto model = random_model(label, shape);
    ASSERT_TRUE(rs::cuda::unsupported_features(*model).empty()) << label;
    const long T = 1000;
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(T, shape.vocab, 8)};
    ForwardOptions options;
    options.keep_hidden = true;
    compare(label, model, tokens, options);

    const int layers = model->config.num_hidden_layers, heads = model->layout.attention_heads;
    const auto bins = rs::analysis::DistanceBins::log_spaced(100, T - 1, 8);
    const std::vector<long> beyond{64, 256};
    rs::analysis::ProfileObserver sums(bins, beyond, layers, heads);
    BlockProfileObserver gpu_blocks(bins, beyond, layers, heads), cpu_blocks(bins, beyond, layers, heads);
    ForwardOptions profile_options;
    rs::cuda::CudaBackend gpu(model);
    profile_options.observer = &sums;
    gpu.forward(tokens, profile_options);
    profile_options.observer = &gpu_blocks;
    gpu.forward(tokens, profile_options);
    profile_options.observer = &cpu_blocks;
    rs::cpu::CpuBackend(model).forward(tokens, profile_options);
    const ProfileDiff same = profile_diff(sums, gpu_blocks, layers, heads);
    const ProfileDiff cpu = profile_diff(sums, cpu_blocks, layers, heads);
    fmt::print("[profile {} T {}] GPU sums vs GPU blocks: mean prob rel {:.1e} ({}), score {:.1e}, distance {:.1e}, "
               "entropy {:.1e}, mass {:.1e}; vs CPU: {:.1e} ({}), {:.1e}, {:.1e}, {:.1e}, {:.1e}\n",
               label, T, same.prob, same.where, same.score, same.distance, same.entropy, same.mass, cpu.prob,
               cpu.where, cpu.score, cpu.distance, cpu.entropy, cpu.mass);
    EXPECT_LE(same.prob, 1e-4) << label << " " << same.where;
    EXPECT_LE(same.score, 1e-4) << label;
    EXPECT_LE(same.distance, 1e-5) << label;
    EXPECT_LE(same.entropy, 1e-4) << label;
    EXPECT_LE(same.mass, 1e-5) << label;
    EXPECT_LE(cpu.prob, 5e-2) << label << " " << cpu.where;
    EXPECT_LE(cpu.score, 5e-2) << label;
    EXPECT_LE(cpu.distance, 2e-2) << label;
    EXPECT_LE(cpu.entropy, 2e-2) << label;
    EXPECT_LE(cpu.mass, 1e-2) << label;
  }
}

}  // namespace

// What the CUDA backend does not implement is named before any device is
// touched (so this runs without a GPU): every "match" architecture fixture is
// taken; a sliding window over 2^31 - 1 (the kernels' int) is still listed.
TEST(CudaBackendRefuses, FeaturesItDoesNotImplement) {
  std::ifstream in(source_path("tests/data/arch/index.json"));
  for (const std::string name : nlohmann::json::parse(in)) {
    std::ifstream case_in(source_path("tests/data/arch/" + name + "/case.json"));
    if (nlohmann::json::parse(case_in)["expect"] != "match") continue;
    const auto m = rs::model::load_model(source_path("tests/data/arch/" + name));
    const auto missing = rs::cuda::unsupported_features(m);
    EXPECT_TRUE(missing.empty()) << name << ": " << fmt::format("{}", fmt::join(missing, "; "));
  }
  auto m = rs::model::load_model(source_path("tests/data/arch/mistral_swa"));
  m.config.arch.layers.at(1).window = 1L << 32;
  const auto missing = rs::cuda::unsupported_features(m);
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].find("sliding window 4294967296 of layer 1"), std::string::npos) << missing[0];
}

// --device auto and --device cuda on gemma2 (sandwich norms, GeGLU, both
// softcaps, (1 + w) RMSNorm, embedding multiplier), which the CUDA backend
// refused before slice 2: both run on the GPU now, with no fallback note,
// and give the same NLLs. (The fallback itself is src/cli's; no "match"
// fixture is refused any more, and config.json cannot state a window over
// 2^31 - 1, so no model on disk reaches it here.) The CLI binary is
// ROPESCOPE_BINARY from the environment when set (the GPU machine runs
// binaries built elsewhere).
TEST(CudaBackendAuto, RunsGemma2OnTheGpu) {
  std::string why;
  if (!have_device(why)) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const char* env = std::getenv("ROPESCOPE_BINARY");
  const std::string binary = env ? env : ROPESCOPE_BINARY;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("ropescope-auto-{}", getpid());
  std::filesystem::create_directories(dir);
  std::vector<std::uint32_t> ids(40);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::uint32_t>(i * 7 % 64);
  std::ofstream(dir / "tokens.u32", std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  auto run = [&](const std::string& device, const std::string& out) {
    const std::string command = fmt::format("{} ppl {} --tokens {} --device {} --lengths 16 --out {} 2>{}", binary,
                                            source_path("tests/data/arch/gemma2"), (dir / "tokens.u32").string(),
                                            device, (dir / out).string(), (dir / (out + ".err")).string());
    const int status = std::system((command + " >/dev/null").c_str());
    std::ifstream err(dir / (out + ".err"));
    return std::pair<int, std::string>{WEXITSTATUS(status), std::string(std::istreambuf_iterator<char>(err), {})};
  };
  for (const std::string device : {"auto", "cuda"}) {
    const auto [status, err] = run(device, device);
    EXPECT_EQ(status, 0) << device << ": " << err;
    EXPECT_EQ(err.find("running on the CPU"), std::string::npos) << device << ": " << err;
    std::ifstream sidecar_file(dir / (device + ".csv.json"));
    const auto sidecar = nlohmann::json::parse(sidecar_file);
    EXPECT_EQ(sidecar["backend"], "cuda") << device;
  }
  std::filesystem::remove_all(dir);
}

// Data parallel over two GPUs (issue 16): every window runs whole on one device
// and the results are added in window order, and the GPU distance sums are
// exact fixed-point integers (kernels/ops/fixed_point.hpp), the same whatever
// order their atomics land in: ppl and profiles are byte-identical to one GPU.
TEST(CudaDataParallel, PplAndProfilesBitwiseAsOneDevice) {
  const auto devices = rs::kernels::cuda_devices();
  if (devices.size() < 2)
    GTEST_SKIP() << "needs two CUDA devices, " << devices.size() << " present (data-parallel tests run on a multi-GPU machine)";
  const auto model = random_model("dp_ec_d128", kEcD128);
  const auto tokens = uniform_tokens(5 * 512, model->config.vocab_size, 16);
  rs::cuda::CudaBackend one(model, 0);
  std::vector<std::unique_ptr<rs::backend::Backend>> replicas;
  replicas.push_back(std::make_unique<rs::cuda::CudaBackend>(model, 0));
  replicas.push_back(std::make_unique<rs::cuda::CudaBackend>(model, 1));
  rs::backend::DataParallelBackend two(std::move(replicas));
  rs::analysis::PerplexityRequest ppl;
  ppl.lengths = {256, 512, 1024};
  ppl.curve = 512;
  ppl.ablate = {"imaginary"};
  EXPECT_EQ(rs::analysis::perplexity(one, {tokens, false, {}}, ppl).csv(),
            rs::analysis::perplexity(two, {tokens, false, {}}, ppl).csv());
  rs::analysis::ProfileRequest profile;
  profile.window = 512;  // 5 windows: batches of 2, 2 and 1
  const auto a = rs::analysis::profile_distances(one, tokens, profile);
  const auto b = rs::analysis::profile_distances(two, tokens, profile);
  const JsonDifference d = json_difference(a.summary(), b.summary());
  EXPECT_EQ(a.summary().dump(), b.summary().dump()) << "profile summaries differ, most at " << d.where << " ("
                                                    << d.worst << ")";
  const JsonDifference table = csv_difference(a.csv(), b.csv());
  EXPECT_EQ(a.csv(), b.csv()) << "profile tables differ, most at " << table.where << " (" << table.worst << ")";
  std::cout << "profile, two GPUs vs one: " << (a.summary().dump() == b.summary().dump() ? "summary byte-identical"
                                                                                          : "summary DIFFERS")
            << ", " << (a.csv() == b.csv() ? "table byte-identical" : "table DIFFERS") << "\n";
}

#ifdef ROPESCOPE_HAVE_NCCL
// Tensor parallel over two GPUs (issue 16): shards of one model on devices 0
// and 1, branch outputs summed by NCCL.
namespace tp {

std::unique_ptr<rs::backend::TensorParallelBackend> two_gpus(
    const std::shared_ptr<const rs::model::Model>& model, std::chrono::milliseconds timeout = std::chrono::seconds(60),
    std::function<std::unique_ptr<rs::backend::Backend>(std::shared_ptr<const rs::model::Model>)> rank1 = nullptr) {
  std::vector<std::unique_ptr<rs::backend::Backend>> ranks;
  for (int r = 0; r < 2; ++r) {
    auto shard = std::make_shared<const rs::model::Model>(rs::model::shard_model(*model, r, 2));
    ranks.push_back(r == 1 && rank1 ? rank1(shard) : std::make_unique<rs::cuda::CudaBackend>(shard, r));
  }
  return std::make_unique<rs::backend::TensorParallelBackend>(
      model, std::move(ranks), std::make_unique<rs::cuda::NcclGroup>(std::vector<int>{0, 1}, timeout));
}

bool two_devices(std::string& why) {
  const auto n = rs::kernels::cuda_devices(&why).size();
  if (n < 2) why = fmt::format("needs two CUDA devices, {} present (tensor-parallel tests run on a multi-GPU machine)", n);
  return n >= 2;
}

}  // namespace tp

// The split on two GPUs against the CPU, to the one-GPU contract: random
// models (EC with its KV heads split, EH with its one KV head replicated) and
// the architecture fixtures whose heads divide (sandwich norms, softcaps,
// biases, fused projections, parallel blocks). And against one GPU, printed.
TEST(CudaTensorParallel, TwoGpusMatchTheCpuAsOneGpuDoes) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  for (const char* variant : {"ec", "eh"}) {
    const auto model = random_model(fmt::format("tp_{}_d128", variant), {variant, 256, 4, 2, 128, 512, 1000, 2, 10000.0, 0.02f, 1.0f, 3});
    const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(300, 1000, 5), uniform_tokens(77, 1000, 6)};
    ForwardOptions options;
    options.keep_hidden = true;
    compare(fmt::format("tp2 {}", variant), model, tokens, options, kNllRelative, kHiddenTolerance,
            [&] { return tp::two_gpus(model); });
    const auto one = rs::cuda::CudaBackend(model, 0).forward(tokens, {});
    const auto two = tp::two_gpus(model)->forward(tokens, {});
    double worst = 0;
    for (std::size_t b = 0; b < tokens.size(); ++b)
      for (std::size_t t = 0; t < one[b].nll.size(); ++t) worst = std::max(worst, std::abs(one[b].nll[t] - two[b].nll[t]));
    fmt::print("[tp2 {}] NLL max |two GPUs - one GPU| {:.2e}\n", variant, worst);
  }
  int ran = 0;
  for (const char* name : {"gemma2", "qwen2", "phi3", "stablelm_parallel", "gpt_neox_parallel", "granite", "cohere"}) {
    auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(source_path(std::string("tests/data/arch/") + name)));
    ForwardOptions options;
    options.keep_hidden = true;
    options.keep_logits = true;
    compare(fmt::format("tp2 arch {}", name), model, {uniform_tokens(40, model->config.vocab_size, 7)}, options,
            kArchNllRelative, kArchHidden, [&] { return tp::two_gpus(model); });
    ++ran;
  }
  EXPECT_EQ(ran, 7);
}

TEST(CudaTensorParallel, ProfilesMatchOneGpuPerHead) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  const auto model = random_model("tp_ec_d128", kEcD128);
  const auto tokens = uniform_tokens(3 * 512, 1000, 16);
  rs::analysis::ProfileRequest profile;
  profile.window = 512;
  rs::cuda::CudaBackend one(model, 0);
  const auto a = rs::analysis::profile_distances(one, tokens, profile);
  const auto b = rs::analysis::profile_distances(*tp::two_gpus(model), tokens, profile);
  const JsonDifference d = json_difference(a.summary(), b.summary());
  fmt::print("[tp2 profile] largest difference to one GPU {:.2e} at {}\n", d.worst, d.where);
  // bf16 activations: the split moves roundings (measured on two H200s, see kernels/NOTES.md).
  EXPECT_LE(d.worst, 2e-2) << d.where;
}

// Query noise under the split: each rank draws its heads' noise by the
// model's head numbers, so the two-GPU losses stay within the split's rounding
// of the one-GPU ones; noise drawn by a rank's own numbers would move them by
// as much as the noise itself moves them.
TEST(CudaTensorParallel, QueryNoiseIsTheOneGpuNoise) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  const auto model = random_model("tp_noise_ec_d128", kEcD128);
  const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(300, 1000, 5)};
  rs::cuda::CudaBackend one(model, 0);
  auto two = tp::two_gpus(model);
  const auto clean = one.forward(tokens, {}).front();
  for (const auto kind : {rs::model::HeadKind::real, rs::model::HeadKind::imaginary}) {
    ForwardOptions noisy;
    noisy.noise = rs::backend::QueryNoise{kind, 2.0, 7};
    const auto a = one.forward(tokens, noisy).front(), b = two->forward(tokens, noisy).front();
    double worst = 0, moved = 0;
    for (std::size_t t = 0; t < a.nll.size(); ++t) {
      worst = std::max(worst, std::abs(double(a.nll[t]) - b.nll[t]));
      moved = std::max(moved, std::abs(double(a.nll[t]) - clean.nll[t]));
    }
    fmt::print("[tp2 noise {}] NLL max |two GPUs - one GPU| {:.2e}; the noise moves it by up to {:.2e}\n",
               kind == rs::model::HeadKind::real ? "real" : "imaginary", worst, moved);
    EXPECT_LE(worst, 2e-2);  // the unnoised split: 8.8e-3 (TwoGpusMatchTheCpuAsOneGpuDoes)
    EXPECT_GT(moved, 5 * worst);
  }
}

// A rank that fails at once, or only on its first forward.
class FailingRank : public rs::backend::Backend {
 public:
  FailingRank(std::shared_ptr<const rs::model::Model> shard, int device, int failures)
      : gpu_(std::move(shard), device), failures_(failures) {}
  std::string name() const override { return "failing " + gpu_.name(); }
  std::string precision() const override { return gpu_.precision(); }
  const rs::model::Model& model() const override { return gpu_.model(); }
  std::vector<rs::backend::ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& s,
                                                  const ForwardOptions& o) override {
    if (failures_-- > 0) throw rs::Error("rank 1 lost its device");
    return gpu_.forward(s, o);
  }
  std::uint64_t forward_bytes(long T, const ForwardOptions& o) const override { return gpu_.forward_bytes(T, o); }
  std::vector<std::string> kernel_choices() const override { return gpu_.kernel_choices(); }

 private:
  rs::cuda::CudaBackend gpu_;
  int failures_;
};

// A lost peer: rank 0 waits in its first all-reduce for a rank that failed; it
// must be released at once with the failure's own error, and the group must
// work again for the next forward (fresh communicators).
TEST(CudaTensorParallel, ALostPeerIsItsErrorAtOnceAndTheGroupRecovers) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  const auto model = random_model("tp_ec_d128", kEcD128);
  auto group = tp::two_gpus(model, std::chrono::seconds(60), [](auto shard) {
    return std::make_unique<FailingRank>(std::move(shard), 1, 1);
  });
  EXPECT_NE(group->precision().find("in place by an NCCL all-reduce"), std::string::npos) << group->precision();
  const std::vector<std::vector<std::int32_t>> tokens{uniform_tokens(200, 1000, 3)};
  const auto start = std::chrono::steady_clock::now();
  try {
    group->forward(tokens, {});
    ADD_FAILURE() << "the failing rank's error";
  } catch (const rs::Error& e) {
    EXPECT_STREQ(e.what(), "rank 1 lost its device");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("[tp2 lost peer] released after {:.2f} s\n", seconds);
  EXPECT_LT(seconds, 30.0) << "released by the abort, not by the 60 s timeout";
  const auto again = group->forward(tokens, {});
  const auto one = rs::cuda::CudaBackend(model, 0).forward(tokens, {});
  double worst = 0;
  for (std::size_t t = 0; t < one[0].nll.size(); ++t) worst = std::max(worst, std::abs(one[0].nll[t] - again[0].nll[t]));
  EXPECT_LE(worst, kNllAbsolute) << "the second forward, on fresh communicators";
}

// A stalled peer (alive, never joining the all-reduce): the waiting rank gives
// up after the group's timeout with an error naming its rank and device.
TEST(CudaTensorParallel, AStalledPeerTimesOutWithANamedError) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  struct StalledRank : FailingRank {
    using FailingRank::FailingRank;
    std::vector<rs::backend::ForwardResult> forward(const std::vector<std::vector<std::int32_t>>&,
                                                    const ForwardOptions&) override {
      std::this_thread::sleep_for(std::chrono::seconds(4));
      throw rs::Error("rank 1 woke up late");
    }
  };
  const auto model = random_model("tp_ec_d128", kEcD128);
  auto group = tp::two_gpus(model, std::chrono::seconds(1), [](auto shard) {
    return std::make_unique<StalledRank>(std::move(shard), 1, 0);
  });
  try {
    group->forward({uniform_tokens(100, 1000, 3)}, {});
    ADD_FAILURE() << "a timeout";
  } catch (const rs::Error& e) {
    const std::string what = e.what();
    fmt::print("[tp2 stalled peer] {}\n", what);
    EXPECT_NE(what.find("rank 0 (device 0)"), std::string::npos) << what;
    EXPECT_NE(what.find("did not complete within 1.0 s"), std::string::npos) << what;
  }
}
// Two processes of one group (the bootstrap across hosts, tried on one host):
// the test starts this binary twice (fork + exec, so neither child inherits
// this process's CUDA state), each child running the next test as one process
// of the group, one rank on its own GPU; they meet through a rendezvous file.
// Both must end with the same ppl and profile, bit for bit, and those must be
// the one-process two-GPU group's (the same all-reduce over the same two ranks).
namespace world {

constexpr const char* kChild = "ROPESCOPE_WORLD_CHILD";  // "PROCESS RENDEZVOUS OUTDIR"

std::shared_ptr<const rs::model::Model> model(const std::string& who) {
  return random_model("world_ec_d128_" + who, kEcD128);
}
const std::vector<std::int32_t>& tokens() {
  static const auto t = uniform_tokens(3 * 512, 1000, 16);
  return t;
}
rs::analysis::PerplexityRequest ppl() {
  rs::analysis::PerplexityRequest r;
  r.lengths = {256, 512};
  return r;
}
rs::analysis::ProfileRequest profile() {
  rs::analysis::ProfileRequest r;
  r.window = 512;
  return r;
}
std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace world

TEST(CudaTensorParallel, TwoProcessesMeetThroughARendezvousFileAndAgreeBitForBit) {
  std::string why;
  if (!tp::two_devices(why)) GTEST_SKIP() << why;
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("ropescope_world_{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string spec = fmt::format("{} {} {}", p, (dir / "rendezvous").string(), dir.string());
      ::setenv(world::kChild, spec.c_str(), 1);
      ::execl("/proc/self/exe", "test_gpu_backend", "--gtest_filter=CudaTensorParallelChild.*", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    children.push_back(pid);
  }
  std::vector<int> status(2, -1);
  for (int p = 0; p < 2; ++p) {
    // Polled, so that a group that never forms fails the test instead of hanging it.
    while (::waitpid(children[p], &status[p], WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(240)) {
        for (pid_t c : children) ::kill(c, SIGKILL);
        FAIL() << "the two processes did not finish within 240 s";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  fmt::print("[world] two processes ran in {:.1f} s\n",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (int p = 0; p < 2; ++p)
    ASSERT_TRUE(WIFEXITED(status[p]) && WEXITSTATUS(status[p]) == 0)
        << "process " << p << " failed: " << world::read(dir / fmt::format("error_{}.txt", p));
  EXPECT_FALSE(std::filesystem::exists(dir / "rendezvous")) << "process 0 removes the spent rendezvous file";
  const std::string ppl0 = world::read(dir / "ppl_0.csv"), profile0 = world::read(dir / "profile_0.csv");
  ASSERT_FALSE(ppl0.empty());
  ASSERT_FALSE(profile0.empty());
  EXPECT_EQ(world::read(dir / "ppl_1.csv"), ppl0) << "both processes end with the same perplexities";
  EXPECT_EQ(world::read(dir / "profile_1.csv"), profile0) << "both processes end with the same profile";
  // The same split in one process (the same two ranks summed by NCCL on the same two GPUs).
  const auto model = world::model("parent");
  auto one_process = tp::two_gpus(model);
  const std::string ppl = rs::analysis::perplexity(*one_process, {world::tokens(), true, {}}, world::ppl()).csv();
  const std::string prof = rs::analysis::profile_distances(*one_process, world::tokens(), world::profile()).csv();
  const auto dp = csv_difference(ppl, ppl0), dq = csv_difference(prof, profile0);
  fmt::print("[world] against one process over the same GPUs: ppl {:.2e} at {}, profile {:.2e} at {}; {}\n", dp.worst,
             dp.where, dq.worst, dq.where, ppl == ppl0 && prof == profile0 ? "byte-identical" : "not byte-identical");
  EXPECT_LE(dp.worst, 1e-6) << dp.where;
  EXPECT_LE(dq.worst, 1e-6) << dq.where;
  std::filesystem::remove_all(dir);
}

// Process 0 of a group whose other process never starts: a named error once
// the timeout passes (the communicator is made non-blocking and polled), and
// the rendezvous file it published is removed again.
TEST(CudaTensorParallel, AGroupWhosePeerNeverJoinsIsANamedErrorAfterTheTimeout) {
  if (rs::kernels::cuda_devices().empty()) GTEST_SKIP() << "needs a CUDA device";
  const auto file = std::filesystem::temp_directory_path() / fmt::format("ropescope_world_alone_{}", ::getpid());
  std::filesystem::remove(file);
  const auto start = std::chrono::steady_clock::now();
  try {
    rs::cuda::NcclGroup alone({0}, std::chrono::seconds(3), rs::backend::World{file, 2, 0, 2});
    ADD_FAILURE() << "a group of two formed with one process";
  } catch (const rs::Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not form within 3 s"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print("[world] alone: the error after {:.1f} s\n", seconds);
  EXPECT_LT(seconds, 30.0);
  EXPECT_FALSE(std::filesystem::exists(file));
}

TEST(CudaTensorParallelChild, OneProcessOfTheGroup) {
  const char* spec = std::getenv(world::kChild);
  if (!spec) GTEST_SKIP() << "runs only as a child of TwoProcessesMeetThroughARendezvousFileAndAgreeBitForBit";
  std::istringstream in(spec);
  int p = 0;
  std::string rendezvous, out;
  in >> p >> rendezvous >> out;
  try {
    const auto model = world::model(std::to_string(p));
    const rs::backend::World w{rendezvous, 2, p, 2};
    std::vector<std::unique_ptr<rs::backend::Backend>> ranks;
    ranks.push_back(std::make_unique<rs::cuda::CudaBackend>(
        std::make_shared<const rs::model::Model>(rs::model::shard_model(*model, p, 2)), p));
    rs::backend::TensorParallelBackend group(
        model, std::move(ranks), std::make_unique<rs::cuda::NcclGroup>(std::vector<int>{p}, std::chrono::seconds(60), w));
    std::ofstream(fmt::format("{}/ppl_{}.csv", out, p))
        << rs::analysis::perplexity(group, {world::tokens(), true, {}}, world::ppl()).csv();
    std::ofstream(fmt::format("{}/profile_{}.csv", out, p))
        << rs::analysis::profile_distances(group, world::tokens(), world::profile()).csv();
  } catch (const std::exception& e) {
    std::ofstream(fmt::format("{}/error_{}.txt", out, p)) << e.what();
    FAIL() << e.what();
  }
}

#endif
