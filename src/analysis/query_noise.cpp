// Query-noise checks (see query_noise.hpp).
#include "analysis/query_noise.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/error.hpp"

namespace ropescope::analysis {

std::uint64_t checked_seed(long long seed) {
  if (seed < 0) throw ArgumentError("seed", fmt::format("must be >= 0, got {}", seed));
  return static_cast<std::uint64_t>(seed);
}

void check_noise_std(const std::string& parameter, double std) {
  if (!std::isfinite(std) || std < 0)
    throw ArgumentError(parameter, fmt::format("std must be finite and >= 0, got {}", std));
}

backend::QueryNoise checked_query_noise(const std::string& parameter, double std, model::HeadKind component,
                                        const model::Model& model, long long seed) {
  check_noise_std(parameter, std);
  if (component == model::HeadKind::imaginary && model.layout.variant == model::Variant::rope)
    throw ArgumentError(parameter, "the model is vanilla RoPE and has no imaginary query component");
  return backend::QueryNoise{component, std, checked_seed(seed)};
}

}  // namespace ropescope::analysis
