// RoPE specs and numbers from text, for every front end: `decay --variant`,
// `ppl --scaling` and the Python keywords describe a RoPE variant as
// comma-separated key=value pairs applied on top of a starting spec.
#pragma once

#include <string>
#include <vector>

#include "theory/rope_frequencies.hpp"

namespace ropescope::theory {

// A finite number / an integer; ArgumentError "<what>: '<text>' is not ..." otherwise.
double parse_number(const std::string& text, const std::string& what);
long parse_integer(const std::string& text, const std::string& what);
std::vector<std::string> split(const std::string& text, char separator);

struct RopeSpecText {
  std::string label;             // label=..., empty if not given
  long sequence_length = 0;      // seq=... (dynamic NTK), shape keys only
  bool original_given = false;   // original=... was given
};

// Applies `text` ("type=yarn,factor=8,original=4096") to `spec` and validates
// the result. Keys: type, label, base, factor, partial, original, beta_fast,
// beta_slow, low, high, mscale, mscale_all_dim, attention_factor, truncate; with
// `shape_keys` also d (head dim) and seq (sequence length for dynamic NTK).
// Errors are ArgumentErrors naming `parameter`, with the detail "'<text>': ...".
RopeSpecText apply_rope_spec_text(const std::string& text, const std::string& parameter, RopeSpec& spec,
                                  bool shape_keys);

}  // namespace ropescope::theory
