// The cos/sin table a forward pass rotates with: for positions p and rotating
// pairs n, cos(p theta_n) and sin(p theta_n) times the scaling magnitude.
//
// Two angle paths:
//  - exact (default): theta_n from rope_frequencies (float128 -> double-double),
//    p*theta_n reduced mod 2pi in float128, cos/sin in double, stored as float.
//    Correct to float rounding at any position (tested to 1e7).
//  - hf_float32: what HF transformers computes: inv_freq rounded to float32,
//    angle = float32(p) * inv_freq in float32, cosf/sinf. At position p the
//    angle error is about p * 2^-24 rad (1e-2 rad at p = 1e5): use it only to
//    reproduce HF numerics; the two agree to ~1e-6 below p ~ 64.
#pragma once

#include <vector>

#include <string_view>

#include "model/head_layout.hpp"
#include "theory/rope_frequencies.hpp"

namespace ropescope::model {

enum class AnglePrecision { exact, hf_float32 };
// "exact" or "hf" (the --angles / angles= spelling); ArgumentError("angles", ..) otherwise.
AnglePrecision parse_angle_precision(std::string_view text);

struct RopeTable {
  long positions = 0;
  int pairs = 0;           // rotating pairs r/2
  std::vector<float> cos;  // [positions, pairs], row-major
  std::vector<float> sin;
  float cos_at(long p, int n) const { return cos[static_cast<std::size_t>(p) * pairs + n]; }
  float sin_at(long p, int n) const { return sin[static_cast<std::size_t>(p) * pairs + n]; }
};

// Which table a forward of T tokens rotates with: the spec, the angle path,
// and what of T the frequencies depend on (dynamic NTK: T itself; longrope: 1
// on the short path, 2 on the long path; else 0). A table
// built for more positions serves every shorter sequence with the same key;
// both backends cache their tables by it.
struct RopeTableKey {
  theory::RopeSpec spec;
  AnglePrecision angles = AnglePrecision::exact;
  long dynamic_length = 0;
  bool operator==(const RopeTableKey&) const = default;
};
RopeTableKey rope_table_key(const theory::RopeSpec& spec, AnglePrecision angles, long T);

// Table for positions 0 .. positions-1. `sequence_length` drives dynamic NTK.
RopeTable make_rope_table(const theory::RopeSpec& spec, long positions, AnglePrecision precision,
                          long sequence_length);

// Rotates one head's vector x (d floats; dims from 2 * pairs on pass through) at position p in place, as a real
// query / key (HF's x cos + rotate_half(x) sin) or as an imaginary query
// (x sin - rotate_half(x) cos: the real rotation at angle - pi/2).
// Pairs are HF's rotate_half pairs: for the r = 2 * pairs rotating dims, pair
// n = (x[n], x[n + r/2]). The d - r pass-through dims of a partial-rotary head
// are left as they are for both kinds, as HF's partial rotary does (q_pass is
// concatenated unchanged), so they add a position-independent term to real and
// imaginary scores alike (theory/decay.hpp counts it in both curves).
void rotate_head(float* x, const RopeTable& rope, long p, HeadKind kind);

}  // namespace ropescope::model
