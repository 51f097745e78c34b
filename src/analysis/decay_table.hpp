// The decay analysis (theory/decay.hpp) as library calls, for every front end (`ropescope decay`,
// Python's ropescope.decay / ropescope.bounds): RoPE variants from key=value
// text on top of a head dim and base, their curves at chosen distances (the
// CSV table and the sidecar's description of each variant), and the
// sign-change and base-for-context reports. Errors name the parameter
// (head_dim, base, bound_max, context) or the option the variant text came from.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "theory/decay.hpp"
#include "theory/rope_frequencies.hpp"

namespace ropescope::analysis {

// Largest scan of `bound_max` and largest `context`: far beyond any use; each
// would take minutes or more (the scans and the base search test every integer distance).
inline constexpr long kMaxBoundScan = 100'000'000;
inline constexpr long kMaxContext = 10'000'000;

struct DecayVariant {
  std::string label;
  theory::RopeSpec spec;
  long sequence_length = 0;  // for dynamic NTK
};

// Refuses (ArgumentError "head_dim" / "base") a head dim that is odd or outside
// 2 .. theory::RopeSpec::kMaxHeadDim, and a base that is not > 1.
void check_decay_spec(int head_dim, double base);

// A variant: comma-separated key=value pairs (theory/rope_spec_text.hpp, with
// d and seq) on top of `head_dim` and `base`; `option` names where the text
// came from in errors. Without label=, the label says what differs from plain
// RoPE at that head dim and base ("yarn s=8 base=5e+05").
DecayVariant decay_variant(const std::string& text, int head_dim, double base, const std::string& option);
// `texts` as variants; none: plain RoPE labelled "RoPE".
std::vector<DecayVariant> decay_variants(const std::vector<std::string>& texts, int head_dim, double base,
                                         const std::string& option);

// The curves of one variant at every distance.
struct DecayCurves {
  std::string label;
  nlohmann::json description;  // head dim, rotary dim, bases, scaling, magnitude, profile pieces, theta
  std::vector<double> distance, re_integral, im_integral, re_discrete, im_discrete, relative_bound;
};

struct DecayTable {
  std::vector<DecayCurves> curves;  // one per variant, in order
  // variant,distance,re_integral,im_integral,re_discrete,im_discrete,relative_bound; %.17g.
  std::string csv() const;
  nlohmann::json variants() const;  // the descriptions, as the sidecar's "variants"
  static const nlohmann::json& columns();  // what each CSV column is
};

// Every variant at every distance. The distances' checks are DecayModel's
// (>= 0, finite, at most theory::kMaxExactDistance).
DecayTable decay_table(const std::vector<DecayVariant>& variants, const std::vector<double>& distances);

// Where a variant's sums first turn negative and, with a context, the smallest
// base keeping c_re >= 0 below it.
struct DecayBound {
  std::string label;
  theory::FirstNegative first_negative;
  std::optional<theory::BaseForContext> base_for_context;
};

struct DecayBounds {
  long bound_max = 0, context = 0;  // context 0: no base search
  std::vector<DecayBound> entries;
  std::string text() const;          // the table `decay --bound` prints
  nlohmann::json json() const;       // the sidecar's "bounds"
  static const char* const kMethod;  // the sidecar's "bounds_method"
};

// Refuses (ArgumentError) bound_max outside 1 .. kMaxBoundScan and a context
// that is neither 0 nor 2 .. kMaxContext.
void check_decay_bounds_request(long bound_max, long context);
DecayBounds decay_bounds(const std::vector<DecayVariant>& variants, long bound_max, long context);

}  // namespace ropescope::analysis
