// config.json -> ModelConfig: one parser per family (ARCHITECTURES.md section
// 2), sharing the readers of sizes, RoPE (transformers 4 rope_scaling /
// rope_theta, transformers 5 rope_parameters, nested per layer type) and
// layer types. Defaults are each family's configuration class defaults in
// transformers 5.24, because v5 save_pretrained omits keys equal to them.
#include "model/config.hpp"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "core/error.hpp"
#include "io/dtype.hpp"
#include "io/mapped_file.hpp"
#include "io/strict_json.hpp"

namespace ropescope::model {

namespace {

using nlohmann::json;

// Reads keys of one JSON object and remembers which were read, so the keys
// nobody read can be reported.
class Fields {
 public:
  Fields(const json& object, std::string source) : object_(object), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw FormatError(fmt::format("{}: \"{}\" {}", source_, key, what));
  }
  // Absent and null both mean "not given".
  const json* find(const std::string& key) const {
    read_.insert(key);
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }
  bool present(const std::string& key) const {  // given, possibly as null
    read_.insert(key);
    return object_.contains(key);
  }

  int nonnegative_int(const std::string& key, int fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 || v->get<std::int64_t>() > 1'000'000'000)
      fail(key, fmt::format("is {}, expected a non-negative integer", v->dump()));
    return static_cast<int>(v->get<std::int64_t>());
  }
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
  std::optional<double> optional_number(const std::string& key, std::optional<double> fallback) const {
    if (present(key) && !has(key)) return std::nullopt;  // explicit null disables
    if (!has(key)) return fallback;
    return number(key, 0.0);
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
  const json* object(const std::string& key) const {
    const json* v = find(key);
    if (v && !v->is_object()) fail(key, fmt::format("is {}, expected an object", v->dump()));
    return v;
  }
  const std::string& source() const { return source_; }
  const json& json_object() const { return object_; }
  std::vector<std::string> unread() const {
    std::vector<std::string> keys;
    for (const auto& [key, value] : object_.items())
      if (!read_.count(key)) keys.push_back(key);
    return keys;
  }

 private:
  const json& object_;
  std::string source_;
  mutable std::set<std::string> read_;
};

// Keys that do not change a forward pass's numbers (token ids, training-only
// settings, generation defaults, bookkeeping). Any other unread key is a warning.
const std::set<std::string> kInertKeys = {
    "architectures", "model_type", "transformers_version", "_name_or_path", "bos_token_id", "eos_token_id",
    "pad_token_id", "sep_token_id", "decoder_start_token_id", "use_cache", "initializer_range", "attention_dropout",
    "hidden_dropout", "embedding_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "residual_dropout",
    "classifier_dropout", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
    "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder",
    "pruned_heads", "id2label", "label2id", "problem_type", "tokenizer_class", "prefix", "task_specific_params",
    "finetuning_task", "cross_attention_hidden_size", "bad_words_ids", "begin_suppress_tokens", "do_sample",
    "early_stopping", "max_length", "min_length", "num_beams", "num_return_sequences", "repetition_penalty",
    "temperature", "top_k", "top_p", "typical_p", "length_penalty", "no_repeat_ngram_size", "use_bfloat16",
    "_attn_implementation_autoset", "auto_map", "image_token_index", "boi_token_index", "eoi_token_index",
    "image_token_id", "boi_token_id", "eoi_token_id", "mm_tokens_per_image", "vision_config", "_sliding_window_pattern",
    "pretraining_tp",  // transformers 5 no longer splits the projections by it (it never changed the math)
    "output_router_logits", "router_aux_loss_coef", "router_z_loss_coef", "use_return_dict",
};

io::Dtype parse_torch_dtype(const Fields& f, const std::string& key, const std::string& name) {
  if (name == "bfloat16") return io::Dtype::BF16;
  if (name == "float16" || name == "half") return io::Dtype::F16;
  if (name == "float32" || name == "float") return io::Dtype::F32;
  f.fail(key, fmt::format("is \"{}\", expected bfloat16, float16 or float32", name));
}

const std::set<std::string> kScalingKeys = {
    "type", "rope_type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
    "mscale_all_dim", "attention_factor", "truncate", "low_freq_factor", "high_freq_factor", "short_factor",
    "long_factor", "rope_theta", "partial_rotary_factor"};

std::vector<double> factor_list(const Fields& f, const std::string& key, int pairs) {
  const json* v = f.find(key);
  if (!v) f.fail(key, fmt::format("is missing (longrope needs {} factors, one per rotating pair)", pairs));
  if (!v->is_array() || static_cast<int>(v->size()) != pairs)
    f.fail(key, fmt::format("has {} entries, expected a list of {} numbers (rotary dim / 2)",
                            v->is_array() ? v->size() : 0, pairs));
  std::vector<double> out;
  for (const auto& x : *v) {
    if (!x.is_number() || !(x.get<double>() > 0) || !std::isfinite(x.get<double>()))
      f.fail(key, fmt::format("has entry {}, expected positive numbers", x.dump()));
    out.push_back(x.get<double>());
  }
  return out;
}

// A rope_scaling / rope_parameters object -> RopeScaling. `max_position` is
// config.json's max_position_embeddings (HF's default original length);
// `original_default` a top-level original_max_position_embeddings (Phi-3).
// The spec's rotary dim must already be set (longrope lists are per pair).
theory::RopeScaling parse_scaling(const json& object, const std::string& source, int max_position,
                                  std::optional<int> original_default, const theory::RopeSpec& spec,
                                  std::vector<std::string>* warnings) {
  const Fields f(object, source);
  const auto type = f.string("type");
  const auto rope_type = f.string("rope_type");
  if (type && rope_type && *type != *rope_type)
    f.fail("type", fmt::format("is \"{}\" but \"rope_type\" is \"{}\"", *type, *rope_type));
  std::string name = rope_type ? *rope_type : type ? *type : "";
  if (name.empty()) throw FormatError(fmt::format("{}: missing \"rope_type\" (or \"type\")", source));
  const std::string name_key = rope_type ? "rope_type" : "type";
  for (const auto& [key, value] : object.items())
    if (!kScalingKeys.count(key) && warnings)
      warnings->push_back(fmt::format("{}: ignoring unknown key \"{}\"", source, key));
  theory::RopeScaling s;
  if (name == "longrope" || name == "su") {
    s.type = theory::ScalingType::longrope;
    s.original_max_position = f.positive_int("original_max_position_embeddings", original_default);
    const int pairs = spec.rotary_dim() / 2;
    s.short_factor = factor_list(f, "short_factor", pairs);
    s.long_factor = factor_list(f, "long_factor", pairs);
    // HF: factor defaults to max_position_embeddings / original; attention factor from it.
    s.factor = f.number("factor", static_cast<double>(max_position) / s.original_max_position);
    s.attention_factor = f.number("attention_factor", 0.0, false);
    return s;
  }
  try {
    s.type = theory::parse_scaling_type(name);
  } catch (const ArgumentError&) {
    f.fail(name_key, fmt::format("is \"{}\", expected one of default, linear, dynamic, yarn, llama3, longrope", name));
  }
  if (s.type == theory::ScalingType::yarn_ropepp)
    f.fail(name_key, "is the RoPE++ YaRN, which config.json spells as rope_config {\"yarn\": true}");
  if (s.type == theory::ScalingType::none) return s;

  if (!f.has("factor")) throw FormatError(fmt::format("{}: \"{}\" scaling needs \"factor\"", source, name));
  s.factor = f.number("factor", 1.0);
  s.original_max_position = f.positive_int("original_max_position_embeddings", original_default.value_or(max_position));
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

// What differs between families in the shared readers.
struct FamilyRules {
  std::optional<int> default_kv_heads = std::nullopt;  // nullopt: H
  bool kv_heads_key = true;                 // false: KV = H always (GPT-NeoX has no GQA; transformers ignores the key)
  std::optional<int> default_head_dim = std::nullopt;  // when the key is absent (nullopt: hidden / H)
  bool head_dim_key = true;                 // false: D = hidden / H always (a different head_dim key is an error)
  int default_max_position = 2048;
  bool default_tied = false;
  double default_theta = 10000.0;
  std::string theta_key = "rope_theta";
  double default_partial = 1.0;
  std::string partial_key = "partial_rotary_factor";
  bool nested_rope = false;                 // per-layer-type rope_parameters (Gemma 3, OLMo 3)
  std::optional<double> default_local_theta = std::nullopt;  // Gemma 3's rope_local_base_freq default
  bool allows_rope_config = false;          // the RoPE++ reference's rope_config (Llama files only)
  bool has_windows = false;                 // sliding-window attention exists in this family
};

Activation parse_activation(const Fields& f, const std::string& key, const std::string& fallback,
                            bool gelu_means_tanh = false) {
  const std::string name = f.string(key).value_or(fallback);
  if (name == "silu" || name == "swish") return Activation::silu;
  if (name == "gelu") return gelu_means_tanh ? Activation::gelu_tanh : Activation::gelu_erf;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return Activation::gelu_tanh;
  f.fail(key, fmt::format("is \"{}\", expected silu, gelu, gelu_new or gelu_pytorch_tanh", name));
}

// Sizes, dtype and tying: the keys every family shares (with its defaults).
void parse_sizes(const Fields& f, const FamilyRules& rules, ModelConfig& c) {
  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_hidden_layers = f.positive_int("num_hidden_layers");
  c.num_attention_heads = f.positive_int("num_attention_heads");
  c.num_key_value_heads = rules.kv_heads_key
                              ? f.positive_int("num_key_value_heads", rules.default_kv_heads.value_or(c.num_attention_heads))
                              : c.num_attention_heads;
  if (!rules.kv_heads_key) (void)f.present("num_key_value_heads");  // written by transformers, never used
  const bool divisible = c.hidden_size % c.num_attention_heads == 0;
  if (rules.head_dim_key && f.has("head_dim")) {
    c.head_dim = f.positive_int("head_dim");
  } else if (rules.head_dim_key && rules.default_head_dim) {
    c.head_dim = *rules.default_head_dim;
  } else {
    if (!divisible)
      f.fail("hidden_size", fmt::format("{} is not a multiple of num_attention_heads {} and there is no head_dim",
                                        c.hidden_size, c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
    if (!rules.head_dim_key && f.has("head_dim") && f.positive_int("head_dim") != c.head_dim)
      f.fail("head_dim", fmt::format("is {}, but this family always uses hidden_size / num_attention_heads = {}",
                                     f.positive_int("head_dim"), c.head_dim));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", c.num_key_value_heads,
                                              c.num_attention_heads));
  c.max_position_embeddings = f.positive_int("max_position_embeddings", rules.default_max_position);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", rules.default_tied);

  const auto torch_dtype = f.string("torch_dtype");
  const auto dtype = f.string("dtype");
  if (torch_dtype && dtype && *torch_dtype != *dtype)
    f.fail("dtype", fmt::format("is \"{}\" but \"torch_dtype\" is \"{}\"", *dtype, *torch_dtype));
  if (torch_dtype || dtype) {
    c.dtype = parse_torch_dtype(f, torch_dtype ? "torch_dtype" : "dtype", torch_dtype ? *torch_dtype : *dtype);
    c.dtype_in_config = true;
  }
  if (const json* q = f.find("quantization_config"))
    f.fail("quantization_config", fmt::format("is {}: quantized checkpoints are not supported", q->dump()));
}

void validate_rope(const Fields& f, const theory::RopeSpec& spec, const std::string& what) {
  try {
    spec.validate();
  } catch (const ArgumentError& e) {
    throw FormatError(fmt::format("{}: {}: {}", f.source(), what, e.what()));
  }
}

// One rope_parameters object (v5, possibly one of the nested per-type ones)
// applied on top of `spec`: rope_theta, partial_rotary_factor, scaling.
void apply_rope_parameters(const json& object, const std::string& where, const ModelConfig& c,
                           std::optional<int> original_default, theory::RopeSpec& spec,
                           std::vector<std::string>* warnings) {
  const Fields p(object, where);
  if (p.has("partial_rotary_factor")) spec.partial_rotary_factor = p.number("partial_rotary_factor", 1.0);
  if (p.has("rope_theta")) spec.base = p.number("rope_theta", 0.0);
  spec.scaling = parse_scaling(object, where, c.max_position_embeddings, original_default, spec, warnings);
}

// RoPE: the main table into c.rope and, for families with local layers, the
// local table into c.arch.local_rope.
void parse_rope(const Fields& f, const FamilyRules& rules, ModelConfig& c, std::vector<std::string>* warnings) {
  theory::RopeSpec& spec = c.rope;
  spec.head_dim = c.head_dim;
  spec.base = f.number(rules.theta_key, rules.default_theta);
  spec.partial_rotary_factor = f.number(rules.partial_key, rules.default_partial);
  if (rules.partial_key != "partial_rotary_factor" && f.has("partial_rotary_factor")) {
    const double v5 = f.number("partial_rotary_factor", 1.0);
    if (f.has(rules.partial_key) && v5 != spec.partial_rotary_factor)
      f.fail("partial_rotary_factor", fmt::format("is {} but \"{}\" is {}", v5, rules.partial_key, spec.partial_rotary_factor));
    spec.partial_rotary_factor = v5;
  }
  const std::optional<int> original_default =
      f.has("original_max_position_embeddings") ? std::optional<int>(f.positive_int("original_max_position_embeddings"))
                                                : std::nullopt;
  const json* rope_scaling = f.find("rope_scaling");
  const json* rope_parameters = f.find("rope_parameters");
  if (rope_scaling && rope_parameters)
    f.fail("rope_scaling", "and \"rope_parameters\" are both given; expected one (rope_parameters is the transformers 5 form)");
  if (rope_scaling && !rope_scaling->is_object())
    f.fail("rope_scaling", fmt::format("is {}, expected an object", rope_scaling->dump()));
  if (rope_parameters && !rope_parameters->is_object())
    f.fail("rope_parameters", fmt::format("is {}, expected an object", rope_parameters->dump()));

  std::optional<theory::RopeSpec> local;
  if (rules.nested_rope) {
    local = spec;  // sliding layers: the local base, never the scaling
    local->base = rules.default_local_theta ? f.number("rope_local_base_freq", *rules.default_local_theta) : spec.base;
  }
  if (rope_scaling)
    spec.scaling = parse_scaling(*rope_scaling, f.source() + ": rope_scaling", c.max_position_embeddings,
                                 original_default, spec, warnings);
  if (rope_parameters) {
    const std::string where = f.source() + ": rope_parameters";
    const bool nested = rope_parameters->contains("full_attention") || rope_parameters->contains("sliding_attention");
    if (nested && !rules.nested_rope)
      f.fail("rope_parameters", "is nested per layer type, which this family does not use");
    const double top_theta = spec.base;
    const double top_partial = spec.partial_rotary_factor;
    if (nested) {
      const Fields p(*rope_parameters, where);
      for (const auto& [key, value] : rope_parameters->items())
        if (key != "full_attention" && key != "sliding_attention")
          p.fail(key, "is not a layer type (expected full_attention and sliding_attention)");
      if (const json* full = p.object("full_attention"))
        apply_rope_parameters(*full, where + ".full_attention", c, original_default, spec, warnings);
      if (const json* sliding = p.object("sliding_attention")) {
        apply_rope_parameters(*sliding, where + ".sliding_attention", c, original_default, *local, warnings);
      }
    } else {
      apply_rope_parameters(*rope_parameters, where, c, original_default, spec, warnings);
      if (f.has(rules.theta_key) && spec.base != top_theta)
        Fields(*rope_parameters, where)
            .fail("rope_theta", fmt::format("is {} but the top-level {} is {}", spec.base, rules.theta_key, top_theta));
      if (f.has(rules.partial_key) && spec.partial_rotary_factor != top_partial)
        Fields(*rope_parameters, where)
            .fail("partial_rotary_factor",
                  fmt::format("is {} but the top-level value is {}", spec.partial_rotary_factor, top_partial));
    }
  }
  validate_rope(f, spec, "RoPE settings");
  if (local) {
    validate_rope(f, *local, "local (sliding-window layer) RoPE settings");
    c.arch.local_rope = local;
  }
}

// layer_types if given (validated), else the family's default rule.
std::vector<bool> sliding_layers(const Fields& f, int layers, const std::function<bool(int)>& default_rule) {
  std::vector<bool> sliding(layers);
  if (const json* types = f.find("layer_types")) {
    if (!types->is_array() || static_cast<int>(types->size()) != layers)
      f.fail("layer_types", fmt::format("is {}, expected a list of {} layer types", types->dump(), layers));
    for (int i = 0; i < layers; ++i) {
      const json& t = (*types)[i];
      if (t == "sliding_attention") sliding[i] = true;
      else if (t != "full_attention")
        f.fail("layer_types", fmt::format("entry {} is {}, expected \"full_attention\" or \"sliding_attention\"", i, t.dump()));
    }
    return sliding;
  }
  for (int i = 0; i < layers; ++i) sliding[i] = default_rule(i);
  return sliding;
}

// Windows on the sliding layers; `window` nullopt means the family has none set.
void set_windows(const Fields& f, ModelConfig& c, const std::vector<bool>& sliding, std::optional<long> window) {
  c.arch.layers.assign(c.num_hidden_layers, LayerSpec{});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    if (!sliding[i]) continue;
    if (!window) continue;  // a sliding layer type without a window attends fully (HF: sliding_window None)
    if (*window < 1) f.fail("sliding_window", fmt::format("is {}, expected a positive integer", *window));
    c.arch.layers[i].window = *window;
  }
}

std::optional<long> optional_window(const Fields& f, std::optional<long> fallback) {
  if (f.present("sliding_window") && !f.has("sliding_window")) return std::nullopt;
  if (!f.has("sliding_window")) return fallback;
  return f.positive_int("sliding_window");
}

void all_layers_window(const Fields& f, ModelConfig& c, std::optional<long> window) {
  set_windows(f, c, std::vector<bool>(c.num_hidden_layers, true), window);
}

// ---- the families ----------------------------------------------------------

void llama_like(const Fields& f, ModelConfig& c, bool biases) {
  auto& a = c.arch;
  a.norm = {NormKind::rms, f.number("rms_norm_eps", 1e-6)};
  a.mlp = {true, parse_activation(f, "hidden_act", "silu"), biases && f.boolean("mlp_bias", false)};
  a.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  const bool attention_bias = biases && f.boolean("attention_bias", false);
  a.attention.qkv_bias = a.attention.o_bias = attention_bias;
  a.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void llama(const Fields& f, ModelConfig& c) { llama_like(f, c, true); }

void mistral(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  all_layers_window(f, c, optional_window(f, 4096));
}

// Qwen2 / Qwen3: windows only with use_sliding_window, on layers >= max_window_layers.
void qwen_windows(const Fields& f, ModelConfig& c) {
  const bool use = f.boolean("use_sliding_window", false);
  const std::optional<long> window = use ? optional_window(f, 4096) : std::nullopt;
  if (!use) (void)f.present("sliding_window");  // read and ignored, as transformers does
  const int first = f.nonnegative_int("max_window_layers", 28);
  set_windows(f, c, sliding_layers(f, c.num_hidden_layers, [&](int i) { return window && i >= first; }), window);
}

void qwen2(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  c.arch.attention.qkv_bias = true;  // always; there is no key for it
  qwen_windows(f, c);
}

void qwen3(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  const bool bias = f.boolean("attention_bias", false);
  c.arch.attention.qkv_bias = c.arch.attention.o_bias = bias;
  c.arch.attention.qk_norm = QkNormKind::per_head;
  c.arch.attention.qk_norm_spec = c.arch.norm;
  qwen_windows(f, c);
}

void granite(const Fields& f, ModelConfig& c) {
  llama_like(f, c, true);
  auto& a = c.arch;
  a.embedding_multiplier = f.number("embedding_multiplier", 1.0);
  a.attention.scale = f.number("attention_multiplier", 1.0);
  a.residual_multiplier = f.number("residual_multiplier", 1.0);
  a.logit_multiplier = 1.0 / f.number("logits_scaling", 1.0);
}

void smollm3(const Fields& f, ModelConfig& c) {
  llama_like(f, c, true);
  const int L = c.num_hidden_layers;
  std::vector<bool> rope(L);
  if (const json* list = f.find("no_rope_layers")) {
    (void)f.present("no_rope_layer_interval");  // only the default list is built from it
    if (!list->is_array() || static_cast<int>(list->size()) != L)
      f.fail("no_rope_layers", fmt::format("is {}, expected a list of {} entries (1 = RoPE, 0 = NoPE)", list->dump(), L));
    for (int i = 0; i < L; ++i) {
      if ((*list)[i] != 0 && (*list)[i] != 1) f.fail("no_rope_layers", fmt::format("entry {} is {}, expected 0 or 1", i, (*list)[i].dump()));
      rope[i] = (*list)[i] == 1;
    }
  } else {
    const int interval = f.positive_int("no_rope_layer_interval", 4);
    for (int i = 0; i < L; ++i) rope[i] = (i + 1) % interval != 0;
  }
  // Quirk (transformers): the window applies only to NoPE layers, and only with use_sliding_window.
  const bool use = f.boolean("use_sliding_window", false);
  const std::optional<long> window = use ? optional_window(f, std::nullopt) : std::nullopt;
  if (!use) (void)f.present("sliding_window");
  set_windows(f, c, sliding_layers(f, L, [&](int i) { return window && !rope[i]; }), use ? window : std::nullopt);
  for (int i = 0; i < L; ++i)
    if (!rope[i]) c.arch.layers[i].rope = LayerRope::none;
}

void gemma_common(const Fields& f, ModelConfig& c) {
  if (f.boolean("use_bidirectional_attention", false))
    f.fail("use_bidirectional_attention", "is true (EmbeddingGemma): bidirectional attention is not a causal LM");
  auto& a = c.arch;
  a.norm = {NormKind::rms_offset, f.number("rms_norm_eps", 1e-6)};
  const bool bias = f.boolean("attention_bias", false);
  a.attention.qkv_bias = a.attention.o_bias = bias;
  // sqrt(hidden) as a tensor of the embedding dtype (a bf16 model multiplies by bf16(sqrt(h))): rounded at load.
  a.embedding_multiplier = std::sqrt(static_cast<double>(c.hidden_size));
  a.embedding_multiplier_in_weight_dtype = true;
}

void gemma(const Fields& f, ModelConfig& c) {
  gemma_common(f, c);
  c.arch.mlp = {true, parse_activation(f, "hidden_act", "gelu_pytorch_tanh", /*gelu_means_tanh=*/true), false};
  c.arch.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  c.arch.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void gemma2_common(const Fields& f, ModelConfig& c, int pattern, std::optional<double> attn_softcap_default,
                   std::optional<double> final_softcap_default) {
  gemma_common(f, c);
  auto& a = c.arch;
  a.block = BlockKind::sandwich;
  a.mlp = {true, parse_activation(f, "hidden_activation", "gelu_pytorch_tanh"), false};
  a.attention.scale = 1.0 / std::sqrt(f.number("query_pre_attn_scalar", 256.0));
  a.final_softcap = f.optional_number("final_logit_softcapping", final_softcap_default);
  const std::optional<long> window = optional_window(f, 4096);
  set_windows(f, c, sliding_layers(f, c.num_hidden_layers, [&](int i) { return (i + 1) % pattern != 0; }), window);
  if (attn_softcap_default) a.attention.softcap = f.optional_number("attn_logit_softcapping", attn_softcap_default);
}

void gemma2(const Fields& f, ModelConfig& c) { gemma2_common(f, c, 2, 50.0, 30.0); }

void gemma3_text(const Fields& f, ModelConfig& c) {
  gemma2_common(f, c, f.positive_int("sliding_window_pattern", 6), std::nullopt, std::nullopt);
  (void)f.present("attn_logit_softcapping");  // read and ignored: transformers' Gemma 3 never applies it
  c.arch.attention.qk_norm = QkNormKind::per_head;
  c.arch.attention.qk_norm_spec = c.arch.norm;
  for (auto& l : c.arch.layers) l.rope = l.window ? LayerRope::local : LayerRope::global;
}

void phi3(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  c.arch.norm.eps = f.number("rms_norm_eps", 1e-5);
  all_layers_window(f, c, optional_window(f, std::nullopt));
}

void olmo2_common(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  auto& a = c.arch;
  a.norm.eps = f.number("rms_norm_eps", 1e-5);
  a.block = BlockKind::post_norm;
  const bool bias = f.boolean("attention_bias", false);
  a.attention.qkv_bias = a.attention.o_bias = bias;
  a.attention.qk_norm = QkNormKind::full_width;
  a.attention.qk_norm_spec = a.norm;
}

void olmo2(const Fields& f, ModelConfig& c) {
  olmo2_common(f, c);
  c.arch.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void olmo3(const Fields& f, ModelConfig& c) {
  olmo2_common(f, c);
  set_windows(f, c, sliding_layers(f, c.num_hidden_layers, [](int i) { return (i + 1) % 4 != 0; }),
              optional_window(f, 4096));
  for (auto& l : c.arch.layers) l.rope = l.window ? LayerRope::local : LayerRope::global;
}

void gpt_neox(const Fields& f, ModelConfig& c) {
  auto& a = c.arch;
  a.norm = {NormKind::layer_norm, f.number("layer_norm_eps", 1e-5), true};
  a.block = f.boolean("use_parallel_residual", true) ? BlockKind::parallel_two_norms : BlockKind::pre_norm;
  a.mlp = {false, parse_activation(f, "hidden_act", "gelu"), true};
  const bool bias = f.boolean("attention_bias", true);
  a.attention.qkv_bias = a.attention.o_bias = bias;
  a.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  a.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void stablelm(const Fields& f, ModelConfig& c) {
  auto& a = c.arch;
  a.norm = {NormKind::layer_norm, f.number("layer_norm_eps", 1e-5), true};
  a.block = f.boolean("use_parallel_residual", false) ? BlockKind::parallel_shared_norm : BlockKind::pre_norm;
  a.mlp = {true, parse_activation(f, "hidden_act", "silu"), false};
  a.attention.qkv_bias = f.boolean("use_qkv_bias", false);
  a.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  if (f.boolean("qk_layernorm", false)) {
    a.attention.qk_norm = QkNormKind::per_head_weights;
    a.attention.qk_norm_spec = {NormKind::layer_norm, a.norm.eps, false};
  }
  a.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void starcoder2(const Fields& f, ModelConfig& c) {
  auto& a = c.arch;
  a.norm = {NormKind::layer_norm, f.number("norm_epsilon", 1e-5), true};
  const bool bias = f.boolean("use_bias", true);
  a.mlp = {false, parse_activation(f, "hidden_act", "gelu_pytorch_tanh"), bias};
  a.attention.qkv_bias = a.attention.o_bias = bias;
  a.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  all_layers_window(f, c, optional_window(f, std::nullopt));
}

void cohere_common(const Fields& f, ModelConfig& c) {
  auto& a = c.arch;
  a.norm = {NormKind::layer_norm, f.number("layer_norm_eps", 1e-5), false};
  a.block = BlockKind::parallel_shared_norm;
  a.mlp = {true, parse_activation(f, "hidden_act", "silu"), false};
  const bool bias = f.boolean("attention_bias", false);
  a.attention.qkv_bias = a.attention.o_bias = bias;
  a.attention.scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  a.logit_multiplier = f.number("logit_scale", 0.0625);
  a.interleaved_rotary = true;
}

void cohere(const Fields& f, ModelConfig& c) {
  cohere_common(f, c);
  if (f.boolean("use_qk_norm", false)) {
    c.arch.attention.qk_norm = QkNormKind::per_head_weights;
    c.arch.attention.qk_norm_spec = {NormKind::layer_norm, c.arch.norm.eps, false};
  }
  c.arch.layers.assign(c.num_hidden_layers, LayerSpec{});
}

void cohere2(const Fields& f, ModelConfig& c) {
  cohere_common(f, c);
  const int pattern = f.positive_int("sliding_window_pattern", 4);
  set_windows(f, c, sliding_layers(f, c.num_hidden_layers, [&](int i) { return (i + 1) % pattern != 0; }),
              optional_window(f, 4096));
  // RoPE only on the sliding layers; the full-attention layers are NoPE.
  for (int i = 0; i < c.num_hidden_layers; ++i)
    if (!c.arch.layers[i].window) c.arch.layers[i].rope = LayerRope::none;
}

void glm_common(const Fields& f, ModelConfig& c) {
  llama_like(f, c, false);
  c.arch.norm.eps = f.number("rms_norm_eps", 1.5625e-7);
  c.arch.attention.qkv_bias = f.boolean("attention_bias", true);
  c.arch.interleaved_rotary = true;
}

void glm(const Fields& f, ModelConfig& c) { glm_common(f, c); }

void glm4(const Fields& f, ModelConfig& c) {
  glm_common(f, c);
  c.arch.block = BlockKind::sandwich;
}

struct Family {
  FamilyRules rules;
  std::function<void(const Fields&, ModelConfig&)> parse;
};

const std::map<std::string, Family>& families() {
  static const std::map<std::string, Family> table = [] {
    std::map<std::string, Family> t;
    FamilyRules llama_rules;
    llama_rules.allows_rope_config = true;
    t["llama"] = {llama_rules, llama};
    t["mistral"] = {{.default_kv_heads = 8, .default_max_position = 131072, .has_windows = true}, mistral};
    t["qwen2"] = {{.default_kv_heads = 32, .default_max_position = 32768, .has_windows = true}, qwen2};
    t["qwen3"] = {{.default_kv_heads = 32, .default_head_dim = 128, .default_max_position = 32768, .has_windows = true}, qwen3};
    t["granite"] = {{}, granite};
    t["smollm3"] = {{.default_kv_heads = 4, .default_max_position = 32768, .default_tied = true, .default_theta = 2e6,
                     .has_windows = true},
                    smollm3};
    t["gemma"] = {{.default_kv_heads = 16, .default_head_dim = 256, .default_max_position = 8192, .default_tied = true},
                  gemma};
    t["gemma2"] = {{.default_kv_heads = 4, .default_head_dim = 256, .default_max_position = 8192, .default_tied = true,
                    .has_windows = true},
                   gemma2};
    t["gemma3_text"] = {{.default_kv_heads = 4, .default_head_dim = 256, .default_max_position = 131072,
                         .default_tied = true, .default_theta = 1e6, .nested_rope = true,
                         .default_local_theta = 10000.0, .has_windows = true},
                        gemma3_text};
    t["phi3"] = {{.default_max_position = 4096, .has_windows = true}, phi3};
    t["olmo2"] = {{}, olmo2};
    t["olmo3"] = {{.default_theta = 5e5, .nested_rope = true, .has_windows = true}, olmo3};
    t["gpt_neox"] = {{.kv_heads_key = false, .head_dim_key = false, .theta_key = "rotary_emb_base", .default_partial = 0.25,
                      .partial_key = "rotary_pct"},
                     gpt_neox};
    t["stablelm"] = {{.default_kv_heads = 32, .head_dim_key = false, .default_max_position = 4096, .default_partial = 0.25},
                     stablelm};
    t["starcoder2"] = {{.default_kv_heads = 2, .default_max_position = 4096, .default_tied = true, .has_windows = true}, starcoder2};
    t["cohere"] = {{.default_max_position = 8192, .default_tied = true, .default_theta = 5e5}, cohere};
    t["cohere2"] = {{.head_dim_key = false, .default_max_position = 8192, .default_tied = true, .has_windows = true}, cohere2};
    t["glm"] = {{.default_kv_heads = 2, .default_head_dim = 128, .default_max_position = 131072, .default_partial = 0.5},
                glm};
    t["glm4"] = {{.default_kv_heads = 2, .default_head_dim = 128, .default_max_position = 131072, .default_partial = 0.5},
                 glm4};
    return t;
  }();
  return table;
}

// Families with their own reason to be refused.
const std::map<std::string, std::string> kRefused = {
    {"qwen3_moe", "mixture-of-experts MLPs are not modelled"},
    {"qwen2_moe", "mixture-of-experts MLPs are not modelled"},
    {"mixtral", "mixture-of-experts MLPs are not modelled"},
    {"olmoe", "mixture-of-experts MLPs are not modelled"},
    {"phi", "Phi-1/2 (lm_head bias, gelu_new parallel block) is not modelled"},
    {"olmo", "OLMo 1 (parameter-free LayerNorm, clip_qkv) is not modelled"},
    {"llama4", "Llama 4 (chunked attention, NoPE temperature, MoE) is not modelled"},
    {"llama4_text", "Llama 4 (chunked attention, NoPE temperature, MoE) is not modelled"},
    {"gpt_oss", "gpt-oss (attention sinks, MoE) is not modelled"},
    {"gemma3n", "Gemma 3n is not modelled"},
    {"granitemoehybrid", "Granite 4 (Mamba-2 hybrid) is not modelled"},
};

void parse_rope_config(const Fields& f, ModelConfig& c) {
  const json* rc = f.object("rope_config");
  if (!rc) return;
  const Fields r(*rc, f.source() + ": rope_config");
  if (r.boolean("imag", false)) {
    const auto mode = r.string("imag_mode");
    if (!mode) r.fail("imag_mode", "is missing (imag is true; expected \"imag1\" (EH) or \"imag2\" (EC))");
    if (*mode == "imag1") c.rope_config_variant = Variant::eh;
    else if (*mode == "imag2") c.rope_config_variant = Variant::ec;
    else r.fail("imag_mode", fmt::format("is \"{}\", expected \"imag1\" (EH) or \"imag2\" (EC)", *mode));
  } else {
    (void)r.present("imag_mode");  // ignored when imag is false, as the reference code does
    c.rope_config_variant = Variant::rope;
  }
  const bool yarn = r.boolean("yarn", false);
  if (yarn && !r.has("factor")) r.fail("factor", "is missing (yarn is true)");
  if (yarn || r.has("factor")) {
    if (c.rope.scaling.type != theory::ScalingType::none)
      r.fail(yarn ? "yarn" : "factor", fmt::format("scales positions but {} also does ({}); expected one",
                                                   f.has("rope_scaling") ? "rope_scaling" : "rope_parameters",
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
  for (const auto& key : r.unread()) r.fail(key, "is not a rope_config key (expected imag, imag_mode, yarn, factor)");
  if (c.rope_config_variant == Variant::eh && (c.num_attention_heads % 2 || c.num_key_value_heads % 2))
    f.fail("rope_config", fmt::format("asks for EH (imag1), which halves num_attention_heads {} and num_key_value_heads {}; "
                                      "both must be even", c.num_attention_heads, c.num_key_value_heads));
  validate_rope(f, c.rope, "RoPE settings");
}

ModelConfig parse_family(const json& config, const std::string& source, const std::string& model_type,
                         std::vector<std::string>* warnings) {
  const Fields f(config, source);
  (void)f.present("model_type");
  const auto& table = families();
  const auto it = table.find(model_type);
  if (it == table.end()) {
    const auto refused = kRefused.find(model_type);
    throw FormatError(fmt::format("{}: model_type \"{}\" is not supported{}; supported families: {}", source,
                                  model_type, refused != kRefused.end() ? " (" + refused->second + ")" : "",
                                  fmt::join(supported_families(), ", ")));
  }
  const FamilyRules& rules = it->second.rules;
  ModelConfig c;
  c.model_type = model_type;
  c.arch.family = model_type;
  parse_sizes(f, rules, c);
  parse_rope(f, rules, c, warnings);
  it->second.parse(f, c);
  if (!rules.has_windows && (f.has("sliding_window") || f.boolean("use_sliding_window", false)))
    f.fail(f.has("sliding_window") ? "sliding_window" : "use_sliding_window",
           fmt::format("is {}, but {} has no sliding-window attention (transformers would ignore it; refusing a "
                       "config that may not mean what it says)",
                       f.find(f.has("sliding_window") ? "sliding_window" : "use_sliding_window")->dump(), model_type));
  if (rules.allows_rope_config) parse_rope_config(f, c);
  c.variant = c.rope_config_variant.value_or(Variant::rope);
  if (c.rope.scaling.type == theory::ScalingType::longrope && c.arch.local_rope)
    f.fail("rope_parameters", "longrope on a family with local and global tables is not modelled");

  if (warnings)
    for (const auto& key : f.unread())
      if (!kInertKeys.count(key))
        warnings->push_back(fmt::format("{}: key \"{}\" is not read by the {} description (ropescope does not know "
                                        "whether it changes the numbers)", source, key, model_type));
  return c;
}

}  // namespace

const std::vector<std::string>& supported_families() {
  static const std::vector<std::string> names = {"llama",   "mistral",  "qwen2",      "qwen3",   "granite",
                                                 "smollm3", "gemma",    "gemma2",     "gemma3_text", "gemma3",
                                                 "phi3",    "olmo2",    "olmo3",      "gpt_neox", "stablelm",
                                                 "starcoder2", "cohere", "cohere2",   "glm",     "glm4"};
  return names;
}

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
  const auto model_type = f.string("model_type");
  if (!model_type)
    f.fail("model_type", fmt::format("is missing; supported families: {}", fmt::join(supported_families(), ", ")));
  if (*model_type != "gemma3") return parse_family(config, source, *model_type, warnings);

  // Gemma 3 multimodal: the language model is text_config (a gemma3_text
  // config) under the tensor prefix language_model.; the vision tower and
  // projector are never read by a text analysis.
  const json* text = f.object("text_config");
  if (!text) f.fail("text_config", "is missing (a gemma3 multimodal config nests its language model there)");
  json text_config = *text;
  if (!text_config.contains("model_type")) text_config["model_type"] = "gemma3_text";
  if (text_config["model_type"] != "gemma3_text")
    f.fail("text_config", fmt::format("has model_type {}, expected \"gemma3_text\"", text_config["model_type"].dump()));
  // The outer dtype applies to the whole checkpoint when the text part has none.
  for (const char* key : {"torch_dtype", "dtype"})
    if (f.has(key) && !text_config.contains(key)) text_config[key] = *f.find(key);
  ModelConfig c = parse_family(text_config, source + ": text_config", "gemma3_text", warnings);
  c.model_type = "gemma3";
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", c.tie_word_embeddings);
  c.tensor_prefix = "language_model.";
  c.ignored_tensor_prefixes = {"vision_tower.", "multi_modal_projector."};
  if (warnings)
    for (const auto& key : f.unread())
      if (!kInertKeys.count(key))
        warnings->push_back(fmt::format("{}: key \"{}\" is not read by the gemma3 description", source, key));
  return c;
}

ModelConfig parse_model_config_text(std::string_view text, const std::string& source, std::vector<std::string>* warnings) {
  return parse_model_config(io::parse_json_strict(text, source), source, warnings);
}

ModelConfig load_model_config(const std::filesystem::path& path, std::vector<std::string>* warnings) {
  return parse_model_config_text(io::read_regular_file(path, "config"), path.string(), warnings);
}

}  // namespace ropescope::model
