// load_model over the committed test models (tests/data/models, written by
// tests/tools/make_test_models.py) and over broken copies of them: variant
// resolution and contradictions, missing / misshapen / mistyped tensors, extra
// tensors, tied embeddings, shards.
#include <gtest/gtest.h>

#include "../io/temp_dir.hpp"
#include "core/error.hpp"
#include "io/safetensors_writer.hpp"
#include "io/strict_json.hpp"
#include "model/weights.hpp"

using namespace ropescope;
using namespace ropescope::model;

namespace {

std::filesystem::path models() { return test::source_dir() / "tests/data/models"; }

// An editable copy of a test model as one model.safetensors + config.json.
struct ModelCopy {
  struct Tensor {
    std::string name;
    io::Dtype dtype;
    std::vector<std::uint64_t> shape;
    std::vector<std::byte> bytes;
  };
  std::vector<Tensor> tensors;
  nlohmann::json config;

  explicit ModelCopy(const std::string& name) : ModelCopy(models() / name, 0) {}
  // A copy of any model directory.
  static ModelCopy of(const std::filesystem::path& directory) { return ModelCopy(directory, 0); }
  ModelCopy(const std::filesystem::path& directory, int) {
    const io::Checkpoint ck(directory);
    for (const auto& n : ck.names()) {
      const auto v = ck.tensor(n);
      tensors.push_back({n, v.dtype(), v.shape(), {v.bytes().begin(), v.bytes().end()}});
    }
    config = nlohmann::json::parse(test::read_file(directory / "config.json"));
  }
  Tensor& at(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
  void remove(const std::string& name) { std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; }); }
  void write(const std::filesystem::path& dir) const {
    std::vector<io::TensorData> data;
    for (const auto& t : tensors) data.push_back({t.name, t.dtype, t.shape, t.bytes});
    io::write_safetensors(dir / "model.safetensors", data);
    test::write_file(dir / "config.json", config.dump(2));
  }
};

template <class E>
void expect_load_error(const std::filesystem::path& dir, const std::string& message, const LoadOptions& options = {}) {
  try {
    load_model(dir, options);
    ADD_FAILURE() << "loaded without error";
  } catch (const E& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

}  // namespace

TEST(LoadModel, RopeEcEh) {
  struct Want {
    const char* name;
    Variant variant;
    const char* source;
    int q_rows, kv_rows, attention_heads, o_columns;
  };
  for (const Want& w : {Want{"rope", Variant::rope, "rope_config", 64, 32, 4, 64},
                        Want{"ec", Variant::ec, "rope_config", 64, 32, 8, 128},
                        Want{"eh", Variant::eh, "rope_config", 32, 16, 4, 64},
                        Want{"rope_sharded", Variant::rope, "tensor shapes", 64, 32, 4, 64},
                        Want{"eh_tied", Variant::eh, "tensor shapes", 32, 16, 4, 64}}) {
    SCOPED_TRACE(w.name);
    const Model m = load_model(models() / w.name);
    EXPECT_EQ(m.config.variant, w.variant);
    EXPECT_EQ(m.variant_source, w.source);
    EXPECT_EQ(m.layout.attention_heads, w.attention_heads);
    EXPECT_TRUE(m.warnings.empty()) << m.warnings.front();
    ASSERT_EQ(m.weights.layers.size(), 2u);
    for (const auto& l : m.weights.layers) {
      EXPECT_EQ(l.q_proj.shape(), (std::vector<std::uint64_t>{std::uint64_t(w.q_rows), 32}));
      EXPECT_EQ(l.k_proj.shape(), (std::vector<std::uint64_t>{std::uint64_t(w.kv_rows), 32}));
      EXPECT_EQ(l.v_proj.shape(), (std::vector<std::uint64_t>{std::uint64_t(w.kv_rows), 32}));
      EXPECT_EQ(l.o_proj.shape(), (std::vector<std::uint64_t>{32, std::uint64_t(w.o_columns)}));
      EXPECT_FALSE(l.q_bias.has_value());
      ASSERT_TRUE(l.attn_norm.has_value());
      for (float x : l.attn_norm->weight.tensor.to_float()) EXPECT_NEAR(x, 1.0f, 0.6f);  // 1 + N(0, 0.1^2)
    }
    EXPECT_EQ(m.weights.embed_tokens.shape(), (std::vector<std::uint64_t>{256, 32}));
    EXPECT_EQ(m.weights.lm_head.shape(), (std::vector<std::uint64_t>{256, 32}));
  }
}

TEST(LoadModel, TiedEmbeddingsShareTheView) {
  const Model m = load_model(models() / "eh_tied");
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.dtype, io::Dtype::F16);
  EXPECT_EQ(m.weights.lm_head.tensor.bytes().data(), m.weights.embed_tokens.tensor.bytes().data());
  const auto p = count_parameters(m);
  EXPECT_EQ(p.lm_head, 0u);
  EXPECT_EQ(p.embedding, 256u * 32);
  // Per layer: q 32x32, k 16x32, v 16x32, o 32x64; MLP 3 x 64x32; norms 2 x 32; final norm 32.
  EXPECT_EQ(p.attention, 2u * (32 * 32 + 16 * 32 * 2 + 32 * 64));
  EXPECT_EQ(p.mlp, 2u * 3 * 64 * 32);
  EXPECT_EQ(p.norm, 2u * 2 * 32 + 32);
}

TEST(LoadModel, ShardedModelIgnoresInvFreq) {
  const Model m = load_model(models() / "rope_sharded");
  EXPECT_TRUE(m.checkpoint->sharded());
  EXPECT_TRUE(m.checkpoint->contains("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(m.warnings.empty());
  EXPECT_EQ(m.config.dtype, io::Dtype::BF16);
}

TEST(LoadModel, OverrideMustAgree) {
  LoadOptions ec;
  ec.variant = Variant::ec;
  const Model m = load_model(models() / "ec", ec);
  EXPECT_EQ(m.variant_source, "override");
  LoadOptions eh;
  eh.variant = Variant::eh;
  expect_load_error<ArgumentError>(
      models() / "ec",
      (models() / "ec").string() +
          ": contradictory RoPE variant: config.json rope_config says ec, the override says eh, tensor shapes say ec "
          "(layer 0: q_proj [64, 32], k_proj [32, 32], o_proj [32, 128])",
      eh);
  expect_load_error<ArgumentError>(
      models() / "eh_tied",
      (models() / "eh_tied").string() +
          ": contradictory RoPE variant: config.json rope_config says nothing, the override says ec, tensor shapes say "
          "eh (layer 0: q_proj [32, 32], k_proj [16, 32], o_proj [32, 64])",
      ec);
}

TEST(LoadModel, ConfigContradictingShapes) {
  test::TempDir dir;
  ModelCopy copy("rope");
  copy.config["rope_config"] = {{"imag", true}, {"imag_mode", "imag2"}};
  copy.write(dir.path());
  expect_load_error<FormatError>(
      dir.path(), dir.path().string() +
                      ": contradictory RoPE variant: config.json rope_config says ec, the override says nothing, tensor "
                      "shapes say rope (layer 0: q_proj [64, 32], k_proj [32, 32], o_proj [32, 64])");
}

TEST(LoadModel, MissingTensorNamesItAndTheExpectation) {
  test::TempDir dir;
  ModelCopy copy("ec");
  copy.remove("model.layers.1.self_attn.o_proj.weight");
  copy.write(dir.path());
  expect_load_error<FormatError>(dir.path(), dir.path().string() +
                                                 ": missing tensor \"model.layers.1.self_attn.o_proj.weight\" (expected "
                                                 "BF16 [32, 128] for variant ec: o_proj columns = 8 attention heads x d 16)");
  copy = ModelCopy("rope");
  copy.remove("lm_head.weight");
  copy.write(dir.path());
  expect_load_error<FormatError>(
      dir.path(), dir.path().string() + ": missing tensor \"lm_head.weight\" (expected BF16 [256, 32] (tie_word_embeddings is false))");
}

TEST(LoadModel, WrongShapeAndDtype) {
  test::TempDir dir;
  ModelCopy copy("eh");
  // Layer 1 is wrong; layer 0 stays right so that the variant is still clear.
  auto& k = copy.at("model.layers.1.self_attn.k_proj.weight");
  k.shape = {16, 16};
  k.bytes.resize(16 * 16 * 2);
  copy.write(dir.path());
  expect_load_error<FormatError>(dir.path(), (dir / "model.safetensors").string() +
                                                 ": tensor \"model.layers.1.self_attn.k_proj.weight\" has shape [16, 16], "
                                                 "expected [16, 32] for variant eh: rows = 1 KV heads x d 16");

  copy = ModelCopy("rope");
  auto& norm = copy.at("model.norm.weight");
  norm.dtype = io::Dtype::F32;
  norm.bytes.resize(32 * 4);
  copy.write(dir.path());
  expect_load_error<FormatError>(dir.path(), (dir / "model.safetensors").string() +
                                                 ": tensor \"model.norm.weight\" is F32, expected BF16 (config.json torch_dtype)");
}

TEST(LoadModel, ExtraTensorsAreRefused) {
  test::TempDir dir;
  ModelCopy copy("eh_tied");
  auto extra = copy.at("model.norm.weight");
  extra.name = "model.layers.0.self_attn.rotary_emb.inv_freq";  // ignored silently
  copy.tensors.push_back(extra);
  extra.name = "model.extra.weight";
  copy.tensors.push_back(extra);
  copy.write(dir.path());
  expect_load_error<FormatError>(dir.path(), (dir / "model.safetensors").string() +
                                                 ": unexpected tensor \"model.extra.weight\" (llama does not use it); "
                                                 "refusing a checkpoint that is not modelled exactly");
}

TEST(LoadModel, FusedTensorsOfTheWrongSizeAreRefused) {
  test::TempDir dir;
  auto copy = ModelCopy::of(test::source_dir() / "tests/data/arch/phi3");
  auto& qkv = copy.at("model.layers.1.self_attn.qkv_proj.weight");  // [(2 + 2 x 1) x 16, 32]
  qkv.shape[0] -= 16;
  qkv.bytes.resize(qkv.bytes.size() - 16 * 32 * 4);
  copy.write(dir.path());
  expect_load_error<FormatError>(dir.path(), (dir / "model.safetensors").string() +
                                                 ": tensor \"model.layers.1.self_attn.qkv_proj.weight\" has shape [48, 32], "
                                                 "expected [64, 32] (fused q, k, v: (2 + 2 x 1) heads x d 16)");
}

TEST(LoadModel, NotADirectory) {
  expect_load_error<ArgumentError>("/nonexistent/model",
                                   "model directory /nonexistent/model does not exist or is not a directory");
}

TEST(LoadModel, CommittedModelsMatchTheirGenerator) {
  if (!test::python_with_safetensors()) GTEST_SKIP() << "python3 with numpy and safetensors not found";
  test::TempDir dir;
  const std::string command = "python3 " + (test::source_dir() / "tests/tools/make_test_models.py").string() + " " +
                              dir.path().string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!entry.is_regular_file()) continue;
    const auto relative = std::filesystem::relative(entry.path(), dir.path());
    EXPECT_EQ(test::read_file(entry.path()), test::read_file(models() / relative))
        << relative << " differs: rerun tests/tools/make_test_models.py";
    ++files;
  }
  EXPECT_EQ(files, 12);
}
