// Backend-independent pieces of the interface (see backend.hpp).
#include "backend/backend.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.hpp"

namespace ropescope::backend {

bool HeadAblation::ablates(int layer, const model::AttentionHead& head) const {
  if (all_real && head.kind == model::HeadKind::real) return true;
  if (all_imaginary && head.kind == model::HeadKind::imaginary) return true;
  return std::find(heads.begin(), heads.end(), std::make_pair(layer, head.index)) != heads.end();
}

void check_forward_request(const model::Model& model, const std::vector<std::vector<std::int32_t>>& sequences,
                           const ForwardOptions& options) {
  const auto& c = model.config;
  if (options.noise) {
    if (!(options.noise->std >= 0.0))
      throw ArgumentError(fmt::format("noise std must be >= 0, got {}", options.noise->std));
    if (options.noise->component == model::HeadKind::imaginary && model.layout.variant == model::Variant::rope)
      throw ArgumentError("noise on the imaginary query component needs a RoPE++ model (ec or eh); this one is rope");
  }
  if (options.rope_override && options.rope_override->head_dim != c.head_dim)
    throw ArgumentError(fmt::format("RoPE override has head_dim {}, the model {}", options.rope_override->head_dim,
                                    c.head_dim));
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const auto& tokens = sequences[s];
    if (tokens.empty()) throw ArgumentError(fmt::format("sequence {} is empty", s));
    for (std::size_t p = 0; p < tokens.size(); ++p)
      if (tokens[p] < 0 || tokens[p] >= c.vocab_size)
        throw ArgumentError(fmt::format("token id {} at position {} of sequence {} is outside the vocabulary [0, {})",
                                        tokens[p], p, s, c.vocab_size));
  }
}

}  // namespace ropescope::backend
