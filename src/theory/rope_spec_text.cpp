// RoPE specs and numbers from text (see rope_spec_text.hpp).
#include "theory/rope_spec_text.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/error.hpp"

namespace ropescope::theory {

double parse_number(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw ArgumentError(fmt::format("{}: '{}' is not a number", what, text));
}

long parse_integer(const std::string& text, const std::string& what) {
  double v = parse_number(text, what);
  if (v != std::floor(v) || std::abs(v) > 9e15) throw ArgumentError(fmt::format("{}: '{}' is not an integer", what, text));
  return static_cast<long>(v);
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

namespace {

// The pairs of `text` applied to `spec`; messages name the key, not the parameter.
RopeSpecText apply_pairs(const std::string& text, RopeSpec& spec, bool shape_keys) {
  RopeSpecText result;
  auto& sc = spec.scaling;
  for (const auto& item : split(text, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) throw ArgumentError(fmt::format("'{}' is not key=value", item));
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const std::string& what = key;
    if (key == "type") sc.type = theory::parse_scaling_type(value);
    else if (key == "label") result.label = value;
    else if (key == "base") spec.base = parse_number(value, what);
    else if (key == "factor") sc.factor = parse_number(value, what);
    else if (key == "partial") spec.partial_rotary_factor = parse_number(value, what);
    else if (key == "original") sc.original_max_position = static_cast<int>(parse_integer(value, what)), result.original_given = true;
    else if (key == "beta_fast") sc.beta_fast = parse_number(value, what);
    else if (key == "beta_slow") sc.beta_slow = parse_number(value, what);
    else if (key == "low") sc.low_freq_factor = parse_number(value, what);
    else if (key == "high") sc.high_freq_factor = parse_number(value, what);
    else if (key == "mscale") sc.mscale = parse_number(value, what);
    else if (key == "mscale_all_dim") sc.mscale_all_dim = parse_number(value, what);
    else if (key == "attention_factor") sc.attention_factor = parse_number(value, what);
    else if (key == "truncate") sc.truncate = value == "true" || value == "1";
    else if (shape_keys && (key == "d" || key == "head_dim")) spec.head_dim = static_cast<int>(parse_integer(value, what));
    else if (shape_keys && key == "seq") result.sequence_length = parse_integer(value, what);
    else
      throw ArgumentError(fmt::format(
          "unknown key '{}' (keys: type, label, base, factor, partial, original, beta_fast, beta_slow, low, high, "
          "mscale, mscale_all_dim, attention_factor, truncate{})",
          key, shape_keys ? ", d, seq" : ""));
  }
  if (sc.type == theory::ScalingType::none && sc.factor != 1.0)
    throw ArgumentError("factor given without a scaling type (type=linear, ...)");
  if (result.sequence_length < 0) throw ArgumentError("seq must be >= 0");
  spec.validate();
  return result;
}

}  // namespace

RopeSpecText apply_rope_spec_text(const std::string& text, const std::string& parameter, RopeSpec& spec,
                                  bool shape_keys) {
  try {
    return apply_pairs(text, spec, shape_keys);
  } catch (const ArgumentError& e) {
    throw ArgumentError(parameter, fmt::format("'{}': {}", text, e.what()));
  }
}

}  // namespace ropescope::theory
