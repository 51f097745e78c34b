// The RoPE variants of tests/golden/gen_decay.py, as RopeSpecs (same names).
#pragma once

#include <map>
#include <string>

#include "theory/rope_frequencies.hpp"

namespace ropescope::testing {

struct GoldenCase {
  theory::RopeSpec spec;
  long sequence_length = 0;
};

inline std::map<std::string, GoldenCase> golden_cases() {
  using theory::ScalingType;
  auto make = [](int d, double base, ScalingType type = ScalingType::none, double factor = 1.0, int original = 4096) {
    theory::RopeSpec s;
    s.head_dim = d;
    s.base = base;
    s.scaling.type = type;
    s.scaling.factor = factor;
    s.scaling.original_max_position = original;
    return GoldenCase{s, 0};
  };
  std::map<std::string, GoldenCase> c;
  c["rope_d128_b1e4"] = make(128, 1e4);
  c["rope_d64_b5e5"] = make(64, 5e5);
  c["rope_d16_b100"] = make(16, 100);
  c["linear_s4"] = make(128, 1e4, ScalingType::linear, 4);
  c["partial_half"] = make(128, 1e4);
  c["partial_half"].spec.partial_rotary_factor = 0.5;
  c["yarn_ropepp_s8"] = make(128, 1e4, ScalingType::yarn_ropepp, 8, 4096);
  c["llama3_s8"] = make(128, 5e5, ScalingType::llama3, 8, 8192);
  c["yarn_hf_s8"] = make(128, 1e4, ScalingType::yarn, 8, 4096);
  c["dynamic_s2"] = make(128, 1e4, ScalingType::dynamic, 2, 4096);
  c["dynamic_s2"].sequence_length = 16384;
  return c;
}

}  // namespace ropescope::testing
