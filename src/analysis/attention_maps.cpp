// Attention-map recording over a token window (see attention_maps.hpp).
#include "analysis/attention_maps.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <set>

#include "core/error.hpp"
#include "core/memory.hpp"
#include "io/npy.hpp"

namespace ropescope::analysis {

AttentionMapRecorder::AttentionMapRecorder(const model::Model& model, MapRequest request, long available_tokens)
    : request_(std::move(request)), heads_per_layer_(model.layout.attention_heads) {
  const int layers = model.config.num_hidden_layers;
  if (request_.layers.empty())
    for (int l = 0; l < layers; ++l) request_.layers.push_back(l);
  if (request_.heads.empty())
    for (int h = 0; h < heads_per_layer_; ++h) request_.heads.push_back(h);
  std::set<int> seen;
  for (int l : request_.layers) {
    if (l < 0 || l >= layers)
      throw ArgumentError("layers", fmt::format("layer {} does not exist (the model has layers 0 .. {})", l, layers - 1));
    if (!seen.insert(l).second) throw ArgumentError("layers", fmt::format("layer {} given twice", l));
  }
  seen.clear();
  for (int h : request_.heads) {
    if (h < 0 || h >= heads_per_layer_)
      throw ArgumentError("heads", fmt::format("attention head {} does not exist (the model has heads 0 .. {})", h,
                                      heads_per_layer_ - 1));
    if (!seen.insert(h).second) throw ArgumentError("heads", fmt::format("head {} given twice", h));
  }
  if (request_.start < 0) throw ArgumentError("start", fmt::format("must be >= 0, got {}", request_.start));
  if (request_.length < 1) throw ArgumentError("length", fmt::format("must be >= 1, got {}", request_.length));
  // start + length compared without forming it: both may be near LONG_MAX.
  if (request_.length > available_tokens || request_.start > available_tokens - request_.length)
    throw ArgumentError("length", fmt::format("start {}, length {}: the window needs tokens {} .. {}+{}-1, the input has {} "
                                    "(positions 0 .. {})",
                                    request_.start, request_.length, request_.start, request_.start, request_.length,
                                    available_tokens, available_tokens - 1));
  if (request_.virtual_imaginary && model.layout.variant != model::Variant::rope)
    throw ArgumentError("virtual_imaginary", fmt::format("needs a vanilla RoPE model; this one is {} (its imaginary heads "
                                    "are real heads of the model: select them with heads)",
                                    model::to_string(model.layout.variant)));
  if (request_.virtual_imaginary)
    for (int l : request_.layers)
      if (!model.config.arch.has_rope(l))
        throw ArgumentError("virtual_imaginary", fmt::format("layer {} of this {} model is NoPE (it rotates nothing, "
                                        "so there is no imaginary score to report); leave it out of layers",
                                        l, model.config.arch.family));

  index_.assign(static_cast<std::size_t>(layers) * heads_per_layer_, -1);
  for (int l : request_.layers)
    for (int h : request_.heads) {
      index_[static_cast<std::size_t>(l) * heads_per_layer_ + h] = static_cast<int>(maps_.size());
      maps_.push_back({l, model.layout.head(h)});
    }
}

std::uint64_t AttentionMapRecorder::bytes_needed() const {
  // In long double and saturated: rows x columns of a huge request would wrap in 64 bits.
  const long double bytes = static_cast<long double>(maps_.size()) * request_.rows() * request_.columns() *
                            sizeof(float) * request_.arrays();
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  return bytes >= static_cast<long double>(kMax) ? kMax : static_cast<std::uint64_t>(bytes);
}

void AttentionMapRecorder::allocate() {
  const std::size_t n = maps_.size() * request_.rows() * request_.columns();
  const float masked = -std::numeric_limits<float>::infinity();
  probabilities_.assign(n, 0.0f);
  if (request_.scores) scores_.assign(n, masked);
  if (request_.virtual_imaginary) virtual_imaginary_.assign(n, masked);
}

bool AttentionMapRecorder::observes(int layer, int attention_head) const {
  return index_[static_cast<std::size_t>(layer) * heads_per_layer_ + attention_head] >= 0;
}

bool AttentionMapRecorder::observes_layer(int layer) const {
  return std::any_of(maps_.begin(), maps_.end(), [&](const MapEntry& m) { return m.layer == layer; });
}

void AttentionMapRecorder::on_block(const backend::AttentionBlock& block) {
  if (block.sequence != 0 || !observes(block.layer, block.head.index)) return;
  const long rows = request_.rows(), columns = request_.columns(), key_begin = request_.key_begin();
  const std::size_t map = index_[static_cast<std::size_t>(block.layer) * heads_per_layer_ + block.head.index];
  // Query rows of the window that fall in this block.
  const long first = std::max(block.q_begin, request_.start), last = std::min(block.q_end, request_.key_end());
  // Key columns key_begin .. key_begin+copied-1 exist in the block; any beyond
  // k_end are future keys for every row of the block and keep their masked fill.
  const long copied = std::clamp(block.k_end - key_begin, 0L, columns);
  for (long q = first; q < last; ++q) {
    const std::size_t src = static_cast<std::size_t>(q - block.q_begin) * block.k_end + key_begin;
    const std::size_t dst = (map * rows + (q - request_.start)) * columns;
    std::copy_n(block.probabilities + src, copied, probabilities_.data() + dst);
    if (request_.scores) std::copy_n(block.scores + src, copied, scores_.data() + dst);
    if (request_.virtual_imaginary) std::copy_n(block.virtual_imaginary_scores + src, copied, virtual_imaginary_.data() + dst);
  }
}

std::vector<std::uint64_t> AttentionMaps::shape() const {
  return {maps.size(), static_cast<std::uint64_t>(request.rows()), static_cast<std::uint64_t>(request.columns())};
}

nlohmann::json AttentionMaps::window() const {
  return {{"start", request.start},
          {"length", request.length},
          {"full_rows", request.full_rows},
          {"query_positions", {request.start, request.key_end()}},
          {"key_positions", {request.key_begin(), request.key_end()}}};
}

nlohmann::json AttentionMaps::manifest() const {
  nlohmann::json entries = nlohmann::json::array();
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const auto& m = maps[i];
    entries.push_back({{"index", i}, {"layer", m.layer}, {"head", m.head.index}, {"kind", model::to_string(m.head.kind)},
                       {"query_head", m.head.query_head}, {"kv_head", m.head.kv_head}, {"window", window()}});
  }
  nlohmann::json arrays = {{"probabilities", "attn_probs.npy"}};
  if (request.scores) arrays["scores"] = "attn_scores.npy";
  if (request.virtual_imaginary) arrays["virtual_imaginary"] = "virtual_imaginary.npy";
  return {{"shape", shape()},
          {"layout", "[map, query row, key column]: row i is query position query_positions[0] + i, column j key "
                     "position key_positions[0] + j; keys after the query are masked (probability 0, score -inf)"},
          {"arrays", arrays},
          {"window", window()},
          {"maps", entries}};
}

std::vector<std::filesystem::path> AttentionMaps::output_targets(const std::filesystem::path& directory,
                                                                 const MapRequest& request) {
  std::vector<std::filesystem::path> arrays{directory / "attn_probs.npy"};
  if (request.scores) arrays.push_back(directory / "attn_scores.npy");
  if (request.virtual_imaginary) arrays.push_back(directory / "virtual_imaginary.npy");
  auto targets = with_sidecars(arrays);
  targets.push_back(directory / "manifest.json");
  return targets;
}

void AttentionMaps::write(io::OutputTransaction& outputs, const std::filesystem::path& directory, RunRecord& record,
                          const nlohmann::json& token_text) const {
  const auto array_shape = shape();
  record.fields()["window"] = window();
  record.fields()["maps"] = maps.size();
  record.fields()["shape"] = array_shape;
  auto write_array = [&](const std::string& name, const std::vector<float>& data) {
    const auto path = directory / name;
    io::write_npy<float>(outputs.output(path), data, array_shape);
    record.write_sidecar(outputs, path);
  };
  write_array("attn_probs.npy", probabilities);
  if (request.scores) write_array("attn_scores.npy", scores);
  if (request.virtual_imaginary) write_array("virtual_imaginary.npy", virtual_imaginary);
  nlohmann::json document = manifest();
  if (!token_text.is_null()) document["token_text"] = token_text;
  outputs.write(directory / "manifest.json", document.dump(2) + "\n");
}

AttentionMaps record_attention_maps(backend::Backend& backend, std::span<const std::int32_t> tokens,
                                    const MapRequest& request, std::uint64_t max_bytes, model::AnglePrecision angles,
                                    const ProgressCallback& progress) {
  AttentionMapRecorder recorder(backend.model(), request, static_cast<long>(tokens.size()));
  const auto& r = recorder.request();
  if (recorder.bytes_needed() > max_bytes)
    throw ArgumentError("max_memory", fmt::format("the maps would need {} ({} maps x {} x {} x 4 bytes x {} array(s)), "
                                                  "above the limit of {}: choose fewer layers / heads or a shorter window",
                                                  format_bytes(recorder.bytes_needed()), recorder.maps().size(), r.rows(),
                                                  r.columns(), r.arrays(), format_bytes(max_bytes)));
  // The maps live in host memory beside the forward's own buffers (host ones on the CPU backend).
  backend::ForwardOptions options;
  options.angles = angles;
  options.loss = false;  // only the attention is needed
  options.observer = &recorder;
  const std::uint64_t forward_host = backend.name() == "cpu" ? backend.forward_bytes(r.key_end(), options) : 0;
  const auto available = available_memory();
  if (recorder.bytes_needed() > available.bytes || forward_host > available.bytes - recorder.bytes_needed())
    throw ArgumentError(fmt::format("the maps ({}) and the forward pass over {} tokens ({}) need {}, more than the {} "
                                    "available ({}): choose fewer layers / heads or a shorter window",
                                    format_bytes(recorder.bytes_needed()), r.key_end(), format_bytes(forward_host),
                                    format_bytes(recorder.bytes_needed() + forward_host), format_bytes(available.bytes),
                                    available.source));
  recorder.allocate();
  ProgressCounter counter(1, progress);
  backend.forward({std::vector<std::int32_t>(tokens.begin(), tokens.begin() + r.key_end())}, options);
  counter.advance(r.key_end());
  return {r, recorder.maps(), recorder.take_probabilities(), recorder.take_scores(), recorder.take_virtual_imaginary()};
}

}  // namespace ropescope::analysis
