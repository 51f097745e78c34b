// Attention maps of chosen layers and heads over a token window (the paper's
// Figure 5: real vs imaginary heads on the first 16 tokens). An observer keeps
// query rows start .. start+length-1 and either the square window of keys
// start .. start+length-1 or, with full_rows, every key 0 .. start+length-1,
// for probabilities and optionally raw scores and (vanilla RoPE) the virtual
// imaginary scores. Maps are stacked [n_maps, rows, columns] in the order of
// `maps()`: layers in the requested order, and within a layer heads in the
// requested order. Keys after the query are masked: probability 0, score -inf.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

#include "analysis/progress.hpp"
#include "analysis/run_record.hpp"
#include "backend/backend.hpp"
#include "io/atomic_file.hpp"

namespace ropescope::analysis {

struct MapRequest {
  std::vector<int> layers;  // empty: every layer
  std::vector<int> heads;   // attention heads; empty: every head
  long start = 0, length = 16;
  bool full_rows = false;   // keep keys 0 .. start+length-1 instead of start .. start+length-1
  bool scores = false;      // also keep the pre-softmax scores
  bool virtual_imaginary = false;  // also keep the virtual imaginary scores (vanilla RoPE only)

  long key_begin() const { return full_rows ? 0 : start; }
  long key_end() const { return start + length; }
  long rows() const { return length; }
  long columns() const { return key_end() - key_begin(); }
  int arrays() const { return 1 + scores + virtual_imaginary; }
};

struct MapEntry {
  int layer = 0;
  model::AttentionHead head;
};

class AttentionMapRecorder : public backend::AttentionObserver {
 public:
  // Resolves empty layer / head lists to all. Throws ArgumentError naming the
  // offending value for a layer or head out of range, a repeated one, an empty
  // window, a window past `available_tokens`, or virtual_imaginary on a model
  // that is not vanilla RoPE. Allocates nothing: check bytes_needed() first,
  // then call allocate().
  AttentionMapRecorder(const model::Model& model, MapRequest request, long available_tokens);
  // Bytes the stacked arrays need: n_maps * rows * columns * 4 * arrays.
  std::uint64_t bytes_needed() const;
  void allocate();

  bool observes(int layer, int attention_head) const override;
  bool observes_layer(int layer) const override;
  bool wants_virtual_imaginary() const override { return request_.virtual_imaginary; }
  // Records blocks of sequence 0 (the forward runs tokens 0 .. start+length-1 as one sequence).
  void on_block(const backend::AttentionBlock& block) override;

  const MapRequest& request() const { return request_; }
  const std::vector<MapEntry>& maps() const { return maps_; }
  const std::vector<float>& probabilities() const { return probabilities_; }
  const std::vector<float>& scores() const { return scores_; }
  const std::vector<float>& virtual_imaginary() const { return virtual_imaginary_; }
  // Hands the recorded arrays over (the recorder is empty afterwards).
  std::vector<float> take_probabilities() { return std::move(probabilities_); }
  std::vector<float> take_scores() { return std::move(scores_); }
  std::vector<float> take_virtual_imaginary() { return std::move(virtual_imaginary_); }

 private:
  MapRequest request_;
  int heads_per_layer_ = 0;
  std::vector<MapEntry> maps_;
  std::vector<int> index_;  // [layer * heads_per_layer + head] -> map index, -1 when not kept
  std::vector<float> probabilities_, scores_, virtual_imaginary_;
};

// The maps of one run and their description.
struct AttentionMaps {
  MapRequest request;             // resolved: every layer and head listed
  std::vector<MapEntry> maps;     // [map]: layer and head of each
  std::vector<float> probabilities, scores, virtual_imaginary;  // [maps, rows, columns] each (the last two when asked)
  std::vector<std::uint64_t> shape() const;  // {maps, rows, columns}
  // The query and key positions the maps cover.
  nlohmann::json window() const;
  // The manifest of `ropescope attn`: shape, layout, the arrays' file names, the window, and every map's layer,
  // head, kind, query head and KV head.
  nlohmann::json manifest() const;

  // Every file `ropescope attn --out DIR` writes for `request`: DIR/attn_probs.npy (+ attn_scores.npy,
  // virtual_imaginary.npy with scores / virtual_imaginary), a JSON sidecar beside each array, DIR/manifest.json.
  static std::vector<std::filesystem::path> output_targets(const std::filesystem::path& directory,
                                                           const MapRequest& request);
  // Stages those files in `outputs` (which declared output_targets), the sidecars from `record` with the window,
  // map count and shape added; `token_text` (when not null) goes into the manifest. The caller commits.
  void write(io::OutputTransaction& outputs, const std::filesystem::path& directory, RunRecord& record,
             const nlohmann::json& token_text = nullptr) const;
};

// Runs the model over tokens 0 .. start+length-1 (one sequence: positions
// before the window shape it) and keeps the maps of `request`. Refuses
// (ArgumentError naming "max_memory") maps above `max_bytes`, and maps plus
// the forward's own host buffers above the memory available, before any work.
AttentionMaps record_attention_maps(backend::Backend& backend, std::span<const std::int32_t> tokens,
                                    const MapRequest& request, std::uint64_t max_bytes,
                                    model::AnglePrecision angles = model::AnglePrecision::exact,
                                    const ProgressCallback& progress = {});

}  // namespace ropescope::analysis
