// The decay analysis as library calls (see decay_table.hpp).
#include "analysis/decay_table.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "io/csv.hpp"
#include "theory/rope_spec_text.hpp"

namespace ropescope::analysis {

using theory::DecayModel;
using theory::RopeSpec;
using theory::RopeSpecText;
using theory::ScalingType;

void check_decay_spec(int head_dim, double base) {
  if (head_dim < 2 || head_dim % 2 || head_dim > RopeSpec::kMaxHeadDim)
    throw ArgumentError("head_dim", fmt::format("must be even, 2 .. {}, got {}", RopeSpec::kMaxHeadDim, head_dim));
  if (!(base > 1.0)) throw ArgumentError("base", fmt::format("must be > 1, got {:g}", base));
}

DecayVariant decay_variant(const std::string& text, int head_dim, double base, const std::string& option) {
  DecayVariant v;
  v.spec.head_dim = head_dim;
  v.spec.base = base;
  const RopeSpecText given = theory::apply_rope_spec_text(text, option, v.spec, true);
  // llama3's original length defaults to HF's Llama 3.1 value when not given.
  if (v.spec.scaling.type == ScalingType::llama3 && !given.original_given) v.spec.scaling.original_max_position = 8192;
  v.label = given.label;
  v.sequence_length = given.sequence_length;
  const auto& sc = v.spec.scaling;
  if (v.label.empty()) {
    v.label = sc.type == ScalingType::none ? "RoPE" : to_string(sc.type);
    if (sc.type != ScalingType::none) v.label += fmt::format(" s={:g}", sc.factor);
    if (v.spec.head_dim != head_dim) v.label += fmt::format(" d={}", v.spec.head_dim);
    if (v.spec.base != base) v.label += fmt::format(" base={:g}", v.spec.base);
    if (v.spec.partial_rotary_factor != 1.0) v.label += fmt::format(" partial={:g}", v.spec.partial_rotary_factor);
    if (sc.type == ScalingType::dynamic) v.label += fmt::format(" T={}", v.sequence_length);
  }
  return v;
}

std::vector<DecayVariant> decay_variants(const std::vector<std::string>& texts, int head_dim, double base,
                                         const std::string& option) {
  check_decay_spec(head_dim, base);
  std::vector<DecayVariant> variants;
  for (const auto& text : texts) variants.push_back(decay_variant(text, head_dim, base, option));
  if (variants.empty()) variants.push_back(decay_variant("label=RoPE", head_dim, base, option));
  return variants;
}

namespace {

nlohmann::json describe(const DecayVariant& v, const DecayModel& model) {
  const auto& sc = v.spec.scaling;
  nlohmann::json pieces = nlohmann::json::array();
  for (const auto& p : model.profile().pieces())
    pieces.push_back({{"x0", p.x0}, {"x1", p.x1}, {"form", p.exponential ? "exponential (Si/Ci)" : "ramp (quadrature)"},
                      {"scale", p.exponential ? nlohmann::json(p.scale) : nlohmann::json(nullptr)}});
  double m = model.frequencies().magnitude;
  return {{"label", v.label},
          {"head_dim", v.spec.head_dim},
          {"rotary_dim", v.spec.rotary_dim()},
          {"partial_rotary_factor", v.spec.partial_rotary_factor},
          {"base", v.spec.base},
          {"effective_base", model.profile().effective_base()},
          {"scaling",
           {{"type", to_string(sc.type)}, {"factor", sc.factor}, {"original_max_position", sc.original_max_position},
            {"beta_fast", sc.beta_fast}, {"beta_slow", sc.beta_slow}, {"low_freq_factor", sc.low_freq_factor},
            {"high_freq_factor", sc.high_freq_factor}, {"sequence_length", v.sequence_length}}},
          {"magnitude", m},
          {"score_scale", m * m},
          {"profile_pieces", pieces},
          {"theta", model.frequencies().theta}};
}

}  // namespace

DecayTable decay_table(const std::vector<DecayVariant>& variants, const std::vector<double>& distances) {
  DecayTable table;
  for (const auto& v : variants) {
    DecayModel model(v.spec, v.sequence_length);
    DecayCurves c;
    c.label = v.label;
    c.description = describe(v, model);
    for (double D : distances) {
      const auto in = model.integral(D);
      const auto di = model.discrete(D);
      c.distance.push_back(D);
      c.re_integral.push_back(in.re);
      c.im_integral.push_back(in.im);
      c.re_discrete.push_back(di.re);
      c.im_discrete.push_back(di.im);
      c.relative_bound.push_back(model.relative_bound(D));
    }
    table.curves.push_back(std::move(c));
  }
  return table;
}

std::string DecayTable::csv() const {
  std::string csv = "variant,distance,re_integral,im_integral,re_discrete,im_discrete,relative_bound\n";
  for (const auto& c : curves)
    for (std::size_t i = 0; i < c.distance.size(); ++i)
      csv += fmt::format("{},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g},{:.17g}\n", io::csv_quote(c.label), c.distance[i],
                         c.re_integral[i], c.im_integral[i], c.re_discrete[i], c.im_discrete[i], c.relative_bound[i]);
  return csv;
}

nlohmann::json DecayTable::variants() const {
  nlohmann::json described = nlohmann::json::array();
  for (const auto& c : curves) described.push_back(c.description);
  return described;
}

const nlohmann::json& DecayTable::columns() {
  static const nlohmann::json columns = {
      {"variant", "label of the RoPE variant"},
      {"distance", "relative distance D = t - s"},
      {"re_integral", "[Ci(D)-Ci(D/B)]/ln B and its generalisation: real expected score, d -> infinity"},
      {"im_integral", "[Si(D)-Si(D/B)]/ln B and its generalisation: imaginary expected score"},
      {"re_discrete", "(2/d) sum_n cos(theta_n D)"},
      {"im_discrete", "(2/d) sum_n sin(theta_n D)"},
      {"relative_bound", "RoFormer relative upper bound (1/(d/2)) sum_j |S_j|"}};
  return columns;
}

void check_decay_bounds_request(long bound_max, long context) {
  if (bound_max < 1) throw ArgumentError("bound_max", fmt::format("must be >= 1, got {}", bound_max));
  if (bound_max > kMaxBoundScan)
    throw ArgumentError("bound_max", fmt::format("{} is above {:g}: the scan checks every integer distance", bound_max,
                                                 double(kMaxBoundScan)));
  if (context != 0 && (context < 2 || context > kMaxContext))
    throw ArgumentError("context", fmt::format("must be 2 .. {:g} (each base tried checks every distance below it), got {}",
                                               double(kMaxContext), context));
}

DecayBounds decay_bounds(const std::vector<DecayVariant>& variants, long bound_max, long context) {
  check_decay_bounds_request(bound_max, context);
  DecayBounds bounds;
  bounds.bound_max = bound_max;
  bounds.context = context;
  for (const auto& v : variants) {
    DecayBound entry{v.label, theory::first_negative_distance(v.spec, bound_max, v.sequence_length), std::nullopt};
    if (context > 0) entry.base_for_context = theory::smallest_base_for_context(v.spec, context);
    bounds.entries.push_back(std::move(entry));
  }
  return bounds;
}

std::string DecayBounds::text() const {
  std::string text = fmt::format("{:<32} {:>22} {:>22} {:>12}\n", "variant", "first D: c_re < 0", "first D: c_im < 0",
                                 "searched to");
  auto show = [](const std::optional<long>& d) { return d ? std::to_string(*d) : std::string("none"); };
  for (const auto& e : entries) {
    const auto& fn = e.first_negative;
    text += fmt::format("{:<32} {:>22} {:>22} {:>12}\n", e.label, show(fn.re), show(fn.im), fn.searched_to);
    if (const auto& b = e.base_for_context)
      text += fmt::format(
          "  base keeping c_re >= 0 for all D < {}: threshold {:.6g} by bisection (fails at {:.6g}); lowest "
          "passing base on a 0.1% grid down to {:.6g}: {:.6g}\n",
          context, b->base, b->failing_base, b->grid_floor, b->lowest_passing_on_grid);
  }
  return text;
}

nlohmann::json DecayBounds::json() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : entries) {
    const auto& fn = e.first_negative;
    nlohmann::json entry = {{"variant", e.label}, {"first_negative_re", fn.re ? nlohmann::json(*fn.re) : nullptr},
                            {"first_negative_im", fn.im ? nlohmann::json(*fn.im) : nullptr},
                            {"searched_to", fn.searched_to}};
    if (const auto& b = e.base_for_context) {
      entry["context"] = context;
      entry["smallest_base"] = b->base;
      entry["failing_base"] = b->failing_base;
      entry["lowest_passing_base_on_grid"] = b->lowest_passing_on_grid;
      entry["grid_floor"] = b->grid_floor;
    }
    out.push_back(entry);
  }
  return out;
}

const char* const DecayBounds::kMethod =
    "scan of every integer D with exact confirmation of each sign change; base threshold by "
    "bisection over log(base) (relative 1e-4), then every base on a 0.1% geometric grid down to "
    "0.8x the threshold is tested, since passing is not monotone in the base";

}  // namespace ropescope::analysis
