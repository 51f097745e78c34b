// config.json -> ModelConfig: HF Llama fields, rope_scaling (transformers 4.x),
// rope_parameters (transformers 5), and the RoPE++ reference's rope_config.
#include "model/config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "io/strict_json.hpp"

namespace ropescope::model {

namespace {

using nlohmann::json;

class Fields {
 public:
  Fields(const json& object, std::string source) : object_(object), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw FormatError(fmt::format("{}: \"{}\" {}", source_, key, what));
  }
  // Absent and null both mean "not given".
  const json* find(const std::string& key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }

  int positive_int(const std::string& key, std::optional<int> fallback = std::nullopt) const {
    const json* v = find(key);
    if (!v) {
      if (!fallback) fail(key, "is missing (a positive integer is required)");
      return *fallback;
    }
    if (!v->is_number_integer() || v->get<std::int64_t>() < 1 || v->get<std::int64_t>() > 1'000'000'000)
      fail(key, fmt::format("is {}, expected a positive integer", v->dump()));
    return static_cast<int>(v->get<std::int64_t>());
  }
  double number(const std::string& key, double fallback, bool positive = true) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number() || !std::isfinite(v->get<double>()) || (positive && v->get<double>() <= 0))
      fail(key, fmt::format("is {}, expected a {}number", v->dump(), positive ? "positive " : ""));
    return v->get<double>();
  }
  bool boolean(const std::string& key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, fmt::format("is {}, expected true or false", v->dump()));
    return v->get<bool>();
  }
  std::optional<std::string> string(const std::string& key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(key, fmt::format("is {}, expected a string", v->dump()));
    return v->get<std::string>();
  }
  const std::string& source() const { return source_; }
  const json& object() const { return object_; }

 private:
  const json& object_;
  std::string source_;
};

io::Dtype parse_torch_dtype(const Fields& f, const std::string& key, const std::string& name) {
  if (name == "bfloat16") return io::Dtype::BF16;
  if (name == "float16" || name == "half") return io::Dtype::F16;
  if (name == "float32" || name == "float") return io::Dtype::F32;
  f.fail(key, fmt::format("is \"{}\", expected bfloat16, float16 or float32", name));
}

const std::set<std::string> kScalingKeys = {
    "type", "rope_type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
    "mscale_all_dim", "attention_factor", "truncate", "low_freq_factor", "high_freq_factor"};

// A rope_scaling / rope_parameters object -> RopeScaling. `max_position` is
// config.json's max_position_embeddings (HF's default original length).
theory::RopeScaling parse_scaling(const json& object, const std::string& source, int max_position,
                                  const std::set<std::string>& extra_keys, std::vector<std::string>* warnings) {
  const Fields f(object, source);
  const auto type = f.string("type");
  const auto rope_type = f.string("rope_type");
  if (type && rope_type && *type != *rope_type)
    f.fail("type", fmt::format("is \"{}\" but \"rope_type\" is \"{}\"", *type, *rope_type));
  const std::string name = rope_type ? *rope_type : type ? *type : "";
  if (name.empty()) throw FormatError(fmt::format("{}: missing \"rope_type\" (or \"type\")", source));
  theory::RopeScaling s;
  try {
    s.type = theory::parse_scaling_type(name);
  } catch (const ArgumentError&) {
    f.fail(rope_type ? "rope_type" : "type",
           fmt::format("is \"{}\", expected one of default, linear, dynamic, yarn, llama3", name));
  }
  if (s.type == theory::ScalingType::yarn_ropepp)
    f.fail(rope_type ? "rope_type" : "type", "is the RoPE++ YaRN, which config.json spells as rope_config {\"yarn\": true}");
  for (const auto& [key, value] : object.items())
    if (!kScalingKeys.count(key) && !extra_keys.count(key) && warnings)
      warnings->push_back(fmt::format("{}: ignoring unknown key \"{}\"", source, key));
  if (s.type == theory::ScalingType::none) return s;

  if (!f.has("factor")) throw FormatError(fmt::format("{}: \"{}\" scaling needs \"factor\"", source, name));
  s.factor = f.number("factor", 1.0);
  s.original_max_position = f.positive_int("original_max_position_embeddings", max_position);
  s.beta_fast = f.number("beta_fast", s.beta_fast);
  s.beta_slow = f.number("beta_slow", s.beta_slow);
  s.mscale = f.number("mscale", 0.0, false);
  s.mscale_all_dim = f.number("mscale_all_dim", 0.0, false);
  s.attention_factor = f.number("attention_factor", 0.0, false);
  s.truncate = f.boolean("truncate", true);
  s.low_freq_factor = f.number("low_freq_factor", s.low_freq_factor);
  s.high_freq_factor = f.number("high_freq_factor", s.high_freq_factor);
  if (s.type == theory::ScalingType::llama3 && !f.has("original_max_position_embeddings"))
    throw FormatError(fmt::format("{}: \"llama3\" scaling needs \"original_max_position_embeddings\"", source));
  return s;
}

}  // namespace

std::string to_string(Variant variant) {
  switch (variant) {
    case Variant::rope: return "rope";
    case Variant::ec: return "ec";
    case Variant::eh: return "eh";
  }
  return "?";
}

Variant parse_variant(const std::string& name) {
  if (name == "rope") return Variant::rope;
  if (name == "ec" || name == "imag2") return Variant::ec;
  if (name == "eh" || name == "imag1") return Variant::eh;
  throw ArgumentError(fmt::format("unknown RoPE variant \"{}\" (expected rope, ec or eh)", name));
}

ModelConfig parse_model_config(const json& config, const std::string& source, std::vector<std::string>* warnings) {
  if (!config.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", source));
  const Fields f(config, source);
  ModelConfig c;

  if (auto type = f.string("model_type")) {
    c.model_type = *type;
    if (*type != "llama" && warnings)
      warnings->push_back(fmt::format("{}: model_type is \"{}\"; reading it as a Llama model", source, *type));
  }
  if (auto act = f.string("hidden_act"); act && *act != "silu")
    f.fail("hidden_act", fmt::format("is \"{}\", expected \"silu\" (the Llama SwiGLU MLP)", *act));

  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_hidden_layers = f.positive_int("num_hidden_layers");
  c.num_attention_heads = f.positive_int("num_attention_heads");
  c.num_key_value_heads = f.positive_int("num_key_value_heads", c.num_attention_heads);
  if (!f.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    f.fail("hidden_size", fmt::format("{} is not a multiple of num_attention_heads {} and there is no head_dim",
                                      c.hidden_size, c.num_attention_heads));
  c.head_dim = f.positive_int("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", c.num_key_value_heads,
                                              c.num_attention_heads));
  c.rms_norm_eps = f.number("rms_norm_eps", c.rms_norm_eps);
  c.max_position_embeddings = f.positive_int("max_position_embeddings", c.max_position_embeddings);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);

  const auto torch_dtype = f.string("torch_dtype");
  const auto dtype = f.string("dtype");
  if (torch_dtype && dtype && *torch_dtype != *dtype)
    f.fail("dtype", fmt::format("is \"{}\" but \"torch_dtype\" is \"{}\"", *dtype, *torch_dtype));
  if (torch_dtype || dtype) {
    c.dtype = parse_torch_dtype(f, torch_dtype ? "torch_dtype" : "dtype", torch_dtype ? *torch_dtype : *dtype);
    c.dtype_in_config = true;
  }

  // RoPE: base, partial rotary, scaling (rope_scaling 4.x or rope_parameters 5.x).
  c.rope.head_dim = c.head_dim;
  c.rope.base = f.number("rope_theta", 10000.0);
  c.rope.partial_rotary_factor = f.number("partial_rotary_factor", 1.0);
  const json* rope_scaling = f.find("rope_scaling");
  const json* rope_parameters = f.find("rope_parameters");
  if (rope_scaling && rope_parameters)
    f.fail("rope_scaling", "and \"rope_parameters\" are both given; expected one (rope_parameters is the transformers 5 form)");
  if (rope_scaling) {
    if (!rope_scaling->is_object()) f.fail("rope_scaling", fmt::format("is {}, expected an object", rope_scaling->dump()));
    c.rope.scaling = parse_scaling(*rope_scaling, source + ": rope_scaling", c.max_position_embeddings, {}, warnings);
  }
  if (rope_parameters) {
    if (!rope_parameters->is_object())
      f.fail("rope_parameters", fmt::format("is {}, expected an object", rope_parameters->dump()));
    const std::string where = source + ": rope_parameters";
    c.rope.scaling = parse_scaling(*rope_parameters, where, c.max_position_embeddings,
                                   {"rope_theta", "partial_rotary_factor"}, warnings);
    const Fields p(*rope_parameters, where);
    if (p.has("rope_theta")) {
      const double theta = p.number("rope_theta", 0.0);
      if (f.has("rope_theta") && theta != c.rope.base)
        p.fail("rope_theta", fmt::format("is {} but the top-level rope_theta is {}", theta, c.rope.base));
      c.rope.base = theta;
    }
    if (p.has("partial_rotary_factor")) {
      const double factor = p.number("partial_rotary_factor", 1.0);
      if (f.has("partial_rotary_factor") && factor != c.rope.partial_rotary_factor)
        p.fail("partial_rotary_factor",
               fmt::format("is {} but the top-level value is {}", factor, c.rope.partial_rotary_factor));
      c.rope.partial_rotary_factor = factor;
    }
  }

  // The RoPE++ reference's rope_config: {imag, imag_mode, yarn, factor}.
  if (const json* rc = f.find("rope_config")) {
    if (!rc->is_object()) f.fail("rope_config", fmt::format("is {}, expected an object", rc->dump()));
    const Fields r(*rc, source + ": rope_config");
    if (r.boolean("imag", false)) {
      const auto mode = r.string("imag_mode");
      if (!mode) r.fail("imag_mode", "is missing (imag is true; expected \"imag1\" (EH) or \"imag2\" (EC))");
      if (*mode == "imag1") c.rope_config_variant = Variant::eh;
      else if (*mode == "imag2") c.rope_config_variant = Variant::ec;
      else r.fail("imag_mode", fmt::format("is \"{}\", expected \"imag1\" (EH) or \"imag2\" (EC)", *mode));
    } else {
      c.rope_config_variant = Variant::rope;
    }
    const bool yarn = r.boolean("yarn", false);
    if (yarn && !r.has("factor")) r.fail("factor", "is missing (yarn is true)");
    if (yarn || r.has("factor")) {
      if (c.rope.scaling.type != theory::ScalingType::none)
        r.fail(yarn ? "yarn" : "factor", fmt::format("scales positions but {} also does ({}); expected one",
                                                     rope_scaling ? "rope_scaling" : "rope_parameters",
                                                     theory::to_string(c.rope.scaling.type)));
      c.rope.scaling = theory::RopeScaling{};
      c.rope.scaling.factor = r.number("factor", 1.0);
      if (yarn) {
        c.rope.scaling.type = theory::ScalingType::yarn_ropepp;
        c.rope.scaling.original_max_position = 4096;  // hard-coded in the reference code
      } else {
        c.rope.scaling.type = theory::ScalingType::linear;
      }
    }
  }
  if (c.rope_config_variant == Variant::eh && (c.num_attention_heads % 2 || c.num_key_value_heads % 2))
    f.fail("rope_config", fmt::format("asks for EH (imag1), which halves num_attention_heads {} and num_key_value_heads {}; "
                                      "both must be even", c.num_attention_heads, c.num_key_value_heads));
  c.variant = c.rope_config_variant.value_or(Variant::rope);

  try {
    c.rope.validate();
  } catch (const ArgumentError& e) {
    throw FormatError(fmt::format("{}: RoPE settings: {}", source, e.what()));
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& path, std::vector<std::string>* warnings) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_model_config(io::parse_json_strict(text.str(), path.string()), path.string(), warnings);
}

}  // namespace ropescope::model
