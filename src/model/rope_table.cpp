// RoPE cos/sin tables (see rope_table.hpp).
#include "model/rope_table.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "theory/exact_angle.hpp"

namespace ropescope::model {

AnglePrecision parse_angle_precision(std::string_view text) {
  if (text == "exact") return AnglePrecision::exact;
  if (text == "hf") return AnglePrecision::hf_float32;
  throw ArgumentError("angles", "'" + std::string(text) + "' is not one of exact, hf");
}

RopeTableKey rope_table_key(const theory::RopeSpec& spec, AnglePrecision angles, long T) {
  // dynamic NTK depends on T itself; longrope only on which side of the original length T falls.
  const auto& sc = spec.scaling;
  long dependence = 0;
  if (sc.type == theory::ScalingType::dynamic) dependence = T;
  if (sc.type == theory::ScalingType::longrope) dependence = T > sc.original_max_position ? 2 : 1;
  return {spec, angles, dependence};
}

RopeTable make_rope_table(const theory::RopeSpec& spec, long positions, AnglePrecision precision,
                          long sequence_length) {
  const theory::RopeFrequencies f = theory::rope_frequencies(spec, sequence_length);
  RopeTable t;
  t.positions = positions;
  t.pairs = static_cast<int>(f.theta.size());
  t.cos.resize(static_cast<std::size_t>(positions) * t.pairs);
  t.sin.resize(t.cos.size());
  for (long p = 0; p < positions; ++p) {
    for (int n = 0; n < t.pairs; ++n) {
      std::size_t i = static_cast<std::size_t>(p) * t.pairs + n;
      if (precision == AnglePrecision::exact) {
        theory::SinCos sc = theory::exact_sincos(static_cast<double>(p), f.theta[n], f.theta_lo[n]);
        t.cos[i] = static_cast<float>(sc.cos * f.magnitude);
        t.sin[i] = static_cast<float>(sc.sin * f.magnitude);
      } else {
        float angle = static_cast<float>(p) * static_cast<float>(f.theta[n]);
        t.cos[i] = std::cos(angle) * static_cast<float>(f.magnitude);
        t.sin[i] = std::sin(angle) * static_cast<float>(f.magnitude);
      }
    }
  }
  return t;
}

void rotate_head(float* x, const RopeTable& rope, long p, HeadKind kind) {
  const int half = rope.pairs;
  for (int n = 0; n < half; ++n) {
    const float c = rope.cos_at(p, n), s = rope.sin_at(p, n);
    const float a = x[n], b = x[n + half];
    if (kind == HeadKind::real) {  // (a c - b s, b c + a s)
      x[n] = a * c - b * s;
      x[n + half] = b * c + a * s;
    } else {  // (a s + b c, b s - a c)
      x[n] = a * s + b * c;
      x[n + half] = b * s - a * c;
    }
  }
}

}  // namespace ropescope::model
