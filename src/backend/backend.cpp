// Backend-independent pieces of the interface (see backend.hpp).
#include "backend/backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

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
  const DistanceSumsRequest* request = options.observer ? options.observer->distance_sums_request() : nullptr;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const auto& tokens = sequences[i];
    const long s = options.first_sequence + static_cast<long>(i);  // the sequence's number in the caller's batch
    if (tokens.empty()) throw ArgumentError(fmt::format("sequence {} is empty", s));
    for (std::size_t p = 0; p < tokens.size(); ++p)
      if (tokens[p] < 0 || tokens[p] >= c.vocab_size)
        throw ArgumentError(fmt::format("token id {} at position {} of sequence {} is outside the vocabulary [0, {})",
                                        tokens[p], p, s, c.vocab_size));
    if (request && tokens.size() > request->slot_of_distance.size())
      throw ArgumentError(fmt::format("sequence {} of {} tokens reaches distance {}, beyond the {} distances the "
                                      "observer's distance slots cover",
                                      s, tokens.size(), tokens.size() - 1, request->slot_of_distance.size()));
  }
}

Error non_finite_activations(int sequence, const std::string& where, const ForwardOptions& options) {
  std::string cause;
  if (options.noise && options.noise->std > 0) {
    const double std = options.noise->std;
    const char* component = options.noise->component == model::HeadKind::real ? "real" : "imaginary";
    cause = std * 8 > std::numeric_limits<float>::max()
                ? fmt::format("the query noise std {} on the {} component is beyond float32's range (max {:.3g}): the "
                              "noised queries overflow; use a smaller std",
                              std, component, std::numeric_limits<float>::max())
                : fmt::format("the query noise (std {} on the {} component) is the likely cause: the attention scores it "
                              "gives overflow float32; use a smaller std",
                              std, component);
  } else {
    cause = "the activations overflowed float32 (weights of extreme magnitude, or a RoPE override or ablation that "
            "drives the model out of range)";
  }
  return Error(fmt::format("non-finite activations (NaN or infinity) in sequence {} {}: {}", sequence, where, cause));
}

void BranchReducer::all_reduce_device(int sequence, int layer, Branch branch, float* values, std::size_t count,
                                      void* stream) {
  (void)values, (void)count, (void)stream, (void)branch;
  throw Error(fmt::format("tensor parallel: sequence {}, layer {}: this group sums host memory and was handed a "
                          "device buffer (a CUDA rank needs an NCCL group)",
                          sequence, layer));
}

void Backend::adopt_notices(const std::vector<std::unique_ptr<Backend>>& members) {
  for (const auto& m : members)
    for (const auto& notice : m->notices())
      if (std::find(notices_.begin(), notices_.end(), notice) == notices_.end()) add_notice(notice);
}

std::string joined_names(const std::vector<std::unique_ptr<Backend>>& members) {
  std::string names;
  for (const auto& m : members) names += (names.empty() ? "" : ", ") + m->name();
  return names;
}

}  // namespace ropescope::backend
