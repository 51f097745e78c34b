// Query-noise settings checked alike by every analysis that takes them
// (profile, perplexity): a std finite and >= 0, an imaginary component only
// on a RoPE++ model, a seed 0 .. 2^63-1. ArgumentError names the parameter.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.hpp"

namespace ropescope::analysis {

void check_noise_std(const std::string& parameter, double std);
std::uint64_t checked_seed(long long seed);
backend::QueryNoise checked_query_noise(const std::string& parameter, double std, model::HeadKind component,
                                        const model::Model& model, long long seed);

}  // namespace ropescope::analysis
