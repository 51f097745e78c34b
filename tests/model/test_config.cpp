// config.json parsing: HF Llama fields and defaults, rope_scaling (4.x),
// rope_parameters (5.x), the RoPE++ rope_config, the family table (unknown
// model_type refused, unread keys reported), and the errors for bad values.
// Every family's parsing is checked end to end against transformers in
// tests/model/test_architectures.cpp.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "model/config.hpp"

using namespace ropescope;
using namespace ropescope::model;
using nlohmann::json;
using theory::ScalingType;

namespace {

json base() {
  return json::parse(R"({"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                         "num_attention_heads": 4})");
}

ModelConfig parse(const json& j, std::vector<std::string>* warnings = nullptr) {
  return parse_model_config(j, "cfg", warnings);
}

void expect_error(const json& j, const std::string& message) {
  try {
    parse(j);
    ADD_FAILURE() << "no error for " << j.dump();
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), message);
  }
}

}  // namespace

TEST(ModelConfig, HfDefaults) {
  const ModelConfig c = parse(base());
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.arch.norm.eps, 1e-6);
  EXPECT_EQ(c.arch.family, "llama");
  EXPECT_EQ(c.arch.block, BlockKind::pre_norm);
  EXPECT_EQ(c.arch.attention.scale, 0.25);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.dtype_in_config);
  EXPECT_EQ(c.rope.base, 10000.0);
  EXPECT_EQ(c.rope.head_dim, 16);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::none);
  EXPECT_EQ(c.variant, Variant::rope);
  EXPECT_FALSE(c.rope_config_variant.has_value());
}

TEST(ModelConfig, AllFields) {
  json j = base();
  j.update(json::parse(R"({"num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
      "max_position_embeddings": 32768, "tie_word_embeddings": true, "attention_bias": true, "mlp_bias": true,
      "torch_dtype": "bfloat16", "partial_rotary_factor": 0.5, "head_dim": 32, "model_type": "llama",
      "hidden_act": "silu"})"));
  const ModelConfig c = parse(j);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rope.head_dim, 32);
  EXPECT_EQ(c.rope.base, 500000.0);
  EXPECT_EQ(c.rope.partial_rotary_factor, 0.5);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_TRUE(c.tie_word_embeddings && c.arch.attention.qkv_bias && c.arch.attention.o_bias && c.arch.mlp.bias);
  EXPECT_EQ(c.dtype, io::Dtype::BF16);
  EXPECT_TRUE(c.dtype_in_config);
  j.erase("torch_dtype");
  j["dtype"] = "float16";  // transformers 5 spelling
  EXPECT_EQ(parse(j).dtype, io::Dtype::F16);
}

TEST(ModelConfig, RopeScalingTransformers4) {
  json j = base();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  auto c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::linear);
  EXPECT_EQ(c.rope.scaling.factor, 4.0);

  j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::dynamic);
  EXPECT_EQ(c.rope.scaling.original_max_position, 2048);  // max_position_embeddings

  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 8.0}, {"original_max_position_embeddings", 4096},
                       {"beta_fast", 16.0}, {"beta_slow", 2.0}, {"attention_factor", 1.2}};
  c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::yarn);
  EXPECT_EQ(c.rope.scaling.original_max_position, 4096);
  EXPECT_EQ(c.rope.scaling.beta_fast, 16.0);
  EXPECT_EQ(c.rope.scaling.beta_slow, 2.0);
  EXPECT_EQ(c.rope.scaling.attention_factor, 1.2);

  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"original_max_position_embeddings", 8192},
                       {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}};
  c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::llama3);
  EXPECT_EQ(c.rope.scaling.original_max_position, 8192);

  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse(j).rope.scaling.type, ScalingType::none);
  j["rope_scaling"] = nullptr;
  EXPECT_EQ(parse(j).rope.scaling.type, ScalingType::none);
}

TEST(ModelConfig, RopeParametersTransformers5) {
  json j = base();
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 500000.0},
                          {"partial_rotary_factor", 0.5}};
  const auto c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::linear);
  EXPECT_EQ(c.rope.base, 500000.0);
  EXPECT_EQ(c.rope.partial_rotary_factor, 0.5);
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  EXPECT_EQ(parse(j).rope.scaling.type, ScalingType::none);
  j["rope_theta"] = 20000.0;
  expect_error(j, "cfg: rope_parameters: \"rope_theta\" is 10000 but the top-level rope_theta is 20000");
  j.erase("rope_theta");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_error(j, "cfg: \"rope_scaling\" and \"rope_parameters\" are both given; expected one (rope_parameters is the transformers 5 form)");
}

TEST(ModelConfig, RopeConfigOfTheReferenceCode) {
  json j = base();
  j["num_key_value_heads"] = 2;
  j["rope_config"] = {{"imag", true}, {"imag_mode", "imag2"}};
  EXPECT_EQ(parse(j).rope_config_variant, Variant::ec);
  EXPECT_EQ(parse(j).variant, Variant::ec);
  j["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}};
  EXPECT_EQ(parse(j).variant, Variant::eh);
  j["rope_config"] = {{"imag", false}, {"imag_mode", "imag1"}};  // imag_mode ignored, as the reference does
  EXPECT_EQ(parse(j).rope_config_variant, Variant::rope);

  j["rope_config"] = {{"imag", true}, {"imag_mode", "imag2"}, {"yarn", true}, {"factor", 8.0}};
  auto c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::yarn_ropepp);
  EXPECT_EQ(c.rope.scaling.factor, 8.0);
  EXPECT_EQ(c.rope.scaling.original_max_position, 4096);
  j["rope_config"] = {{"imag", false}, {"factor", 4.0}};
  c = parse(j);
  EXPECT_EQ(c.rope.scaling.type, ScalingType::linear);
  EXPECT_EQ(c.rope.scaling.factor, 4.0);

  j["rope_config"] = {{"imag", true}, {"imag_mode", "imagh"}};
  expect_error(j, "cfg: rope_config: \"imag_mode\" is \"imagh\", expected \"imag1\" (EH) or \"imag2\" (EC)");
  j["rope_config"] = {{"imag", true}};
  expect_error(j, "cfg: rope_config: \"imag_mode\" is missing (imag is true; expected \"imag1\" (EH) or \"imag2\" (EC))");
  j["rope_config"] = {{"imag", false}, {"yarn", true}};
  expect_error(j, "cfg: rope_config: \"factor\" is missing (yarn is true)");
  j["rope_config"] = {{"imag", false}, {"factor", 2.0}};
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_error(j, "cfg: rope_config: \"factor\" scales positions but rope_scaling also does (linear); expected one");
  j.erase("rope_scaling");
  j["num_key_value_heads"] = 1;
  j["rope_config"] = {{"imag", true}, {"imag_mode", "imag1"}};
  expect_error(j, "cfg: \"rope_config\" asks for EH (imag1), which halves num_attention_heads 4 and "
                  "num_key_value_heads 1; both must be even");
}

TEST(ModelConfig, BadValuesNameTheField) {
  json j = base();
  j.erase("hidden_size");
  expect_error(j, "cfg: \"hidden_size\" is missing (a positive integer is required)");
  j = base();
  j["num_hidden_layers"] = 2.5;
  expect_error(j, "cfg: \"num_hidden_layers\" is 2.5, expected a positive integer");
  j = base();
  j["vocab_size"] = "256";
  expect_error(j, "cfg: \"vocab_size\" is \"256\", expected a positive integer");
  j = base();
  j["num_key_value_heads"] = 3;
  expect_error(j, "cfg: \"num_key_value_heads\" 3 does not divide num_attention_heads 4");
  j = base();
  j["hidden_size"] = 66;
  expect_error(j, "cfg: \"hidden_size\" 66 is not a multiple of num_attention_heads 4 and there is no head_dim");
  j = base();
  j["rms_norm_eps"] = -1;
  expect_error(j, "cfg: \"rms_norm_eps\" is -1, expected a positive number");
  j = base();
  j["tie_word_embeddings"] = "yes";
  expect_error(j, "cfg: \"tie_word_embeddings\" is \"yes\", expected true or false");
  j = base();
  j["torch_dtype"] = "int8";
  expect_error(j, "cfg: \"torch_dtype\" is \"int8\", expected bfloat16, float16 or float32");
  j = base();
  j["hidden_act"] = "relu";
  expect_error(j, "cfg: \"hidden_act\" is \"relu\", expected silu, gelu, gelu_new or gelu_pytorch_tanh");
  j = base();
  j["rope_scaling"] = {{"type", "longrope"}, {"factor", 2.0}, {"original_max_position_embeddings", 16}};
  expect_error(j, "cfg: rope_scaling: \"short_factor\" is missing (longrope needs 8 factors, one per rotating pair)");
  j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", json::array({1, 2})}, {"long_factor", json::array({1, 2})},
                       {"original_max_position_embeddings", 16}};
  expect_error(j, "cfg: rope_scaling: \"short_factor\" has 2 entries, expected a list of 8 numbers (rotary dim / 2)");
  j["rope_scaling"] = {{"type", "frob"}, {"factor", 2.0}};
  expect_error(j, "cfg: rope_scaling: \"type\" is \"frob\", expected one of default, linear, dynamic, yarn, llama3, longrope");
  j["rope_scaling"] = {{"type", "linear"}};
  expect_error(j, "cfg: rope_scaling: \"linear\" scaling needs \"factor\"");
  j["rope_scaling"] = {{"type", "linear"}, {"rope_type", "yarn"}, {"factor", 2.0}};
  expect_error(j, "cfg: rope_scaling: \"type\" is \"linear\" but \"rope_type\" is \"yarn\"");
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 2.0}};
  expect_error(j, "cfg: rope_scaling: \"llama3\" scaling needs \"original_max_position_embeddings\"");
  j = base();
  j["rope_theta"] = 0.5;  // rejected by RopeSpec::validate
  EXPECT_THROW(parse(j), FormatError);
}

TEST(ModelConfig, UnknownKeysWarnUnknownFamiliesAreRefused) {
  json j = base();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}, {"frobnicate", 1}};
  j["my_setting"] = 3;
  j["bos_token_id"] = 1;  // known not to change the numbers: no warning
  std::vector<std::string> warnings;
  parse(j, &warnings);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0], "cfg: rope_scaling: ignoring unknown key \"frobnicate\"");
  EXPECT_EQ(warnings[1], "cfg: key \"my_setting\" is not read by the llama description (ropescope does not know "
                         "whether it changes the numbers)");

  j = base();
  j["model_type"] = "frobnicate";
  try {
    parse(j);
    ADD_FAILURE() << "an unknown model_type was accepted";
  } catch (const FormatError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cfg: model_type \"frobnicate\" is not supported; supported families: llama, mistral, qwen2"),
              std::string::npos) << what;
  }
  j["model_type"] = "qwen3_moe";
  EXPECT_THROW(parse(j), FormatError);
  j.erase("model_type");
  EXPECT_THROW(parse(j), FormatError);
  // A family's own keys: Mistral's window (default 4096 when the key is absent, none when null).
  j = base();
  j["model_type"] = "mistral";
  j["num_key_value_heads"] = 2;  // Mistral's default is 8
  EXPECT_EQ(parse(j).arch.window(0), 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(parse(j).arch.window(1), 0);
  j["sliding_window"] = 0;
  expect_error(j, "cfg: \"sliding_window\" is 0, expected a positive integer");
}

TEST(ModelConfig, ValuesAFamilyDoesNotAllowAreRefused) {
  json j = base();
  j["sliding_window"] = 512;  // Llama has no sliding window
  expect_error(j, "cfg: \"sliding_window\" is 512, but llama has no sliding-window attention (transformers would ignore "
                  "it; refusing a config that may not mean what it says)");
  j = base();
  j["model_type"] = "phi3";
  j["partial_rotary_factor"] = 0.3;  // int(16 * 0.3) = 4 ok; 0.45 gives 7
  EXPECT_EQ(parse(j).rope.rotary_dim(), 4);
  j["partial_rotary_factor"] = 0.45;
  expect_error(j, "cfg: RoPE settings: rotary dimension int(16 * 0.45) = 7 must be even and >= 2");
  j["partial_rotary_factor"] = 0.5;
  j["rope_scaling"] = {{"type", "longrope"}, {"original_max_position_embeddings", 16}, {"short_factor", json::array({1, 2, 3, 4})}};
  expect_error(j, "cfg: rope_scaling: \"long_factor\" is missing (longrope needs 4 factors, one per rotating pair)");
  j = base();
  j["model_type"] = "gemma2";
  j["num_key_value_heads"] = 2;
  j["layer_types"] = {"sliding_attention", "global"};
  expect_error(j, "cfg: \"layer_types\" entry 1 is \"global\", expected \"full_attention\" or \"sliding_attention\"");
}

TEST(ModelConfig, VariantNames) {
  EXPECT_EQ(parse_variant("ec"), Variant::ec);
  EXPECT_EQ(parse_variant("imag1"), Variant::eh);
  EXPECT_EQ(to_string(Variant::eh), "eh");
  EXPECT_THROW(parse_variant("ee"), ArgumentError);
}

// Found with the fuzz_model_config binary on a hand-made input (inputs of the
// fuzzer's length limit nest too shallowly): a deeply nested value (300000
// arrays) overflowed the stack when the error message printed it, and a nested
// text_config would when copied. Refused while parsing.
TEST(ModelConfig, DeeplyNestedTextIsRefusedWhileParsing) {
  const std::size_t depth = 300000;
  std::string text = base().dump();
  text.pop_back();
  text += ", \"rope_scaling\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
  try {
    parse_model_config_text(text, "cfg.json");
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), "cfg.json: arrays and objects nested deeper than 64 levels");
  }
  // Text that parses goes through the same rules as parse_model_config.
  EXPECT_EQ(parse_model_config_text(base().dump(), "cfg.json").hidden_size, 64);
  EXPECT_THROW(parse_model_config_text("{\"model_type\": \"llama\", \"model_type\": \"llama\"}", "cfg.json"), FormatError);
}
