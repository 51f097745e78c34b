// The interface every backend (CPU reference, CUDA) implements, and the hooks
// the analyses need: an attention observer, query noise, head ablation. An
// analysis is written against this header only and never knows which backend
// runs it.
#pragma once

#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "model/head_layout.hpp"
#include "model/rope_table.hpp"
#include "model/weights.hpp"

namespace ropescope::backend {

// Row-major float matrix: rows are tokens (T), columns features.
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// One block of queries of one attention head, as the forward pass computes it.
// All arrays are row-major [q_end - q_begin, k_end]: row i is query position
// q_begin + i, column j key position j. Keys after the query are masked:
// scores there are -infinity and probabilities 0.
struct AttentionBlock {
  int sequence = 0;  // index within the batch
  int layer = 0;
  model::AttentionHead head;  // index, kind (real / imaginary), query head, KV head
  long q_begin = 0, q_end = 0, k_end = 0;
  const float* scores = nullptr;         // pre-softmax: q.k times the layer's scale, softcapped where the model
                                         // does, after noise; -inf where masked (future keys, outside a window)
  const float* probabilities = nullptr;  // softmax of scores
  // Vanilla RoPE models only, when the observer asks: the discarded imaginary
  // scores (query rotated by -pi/2), which do not affect the model's output.
  const float* virtual_imaginary_scores = nullptr;
};

// Sums by relative distance D = t - s (query t, key s) of one attention head
// over one whole sequence: what a distance profile needs, reduced by the
// backend itself instead of handed over as score blocks (the CUDA backend does
// this with no T x T matrix; the CPU backend always calls on_block).
// Distances are grouped in slots: slot_of_distance[D] for D = 0 .. max, with
// slot numbers 0 .. slots-1 nondecreasing in D.
struct DistanceSumsRequest {
  std::vector<std::int32_t> slot_of_distance;
  int slots = 0;
};
struct DistanceSums {
  int sequence = 0;
  int layer = 0;
  model::AttentionHead head;
  long T = 0;                                  // the sequence's tokens: every query 0 .. T-1 counted
  std::span<const double> prob_sum;            // [slots]: sum of p(t, s) over pairs with t - s in the slot
  std::span<const double> score_sum;           // [slots]: the same for the scaled pre-softmax score
  double distance_sum = 0;                     // sum over pairs of p(t, s) * (t - s)
  double entropy_sum = 0;                      // sum over pairs of -p log p (natural log)
  long window = 0;  // the layer's sliding window W (0: none): pairs with t - s >= W are masked, p = 0, no score
};

class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  // Called once per block of queries for every observed head. May be called
  // concurrently for different (sequence, layer, head) triples, never for the same one.
  virtual void on_block(const AttentionBlock& block) = 0;
  virtual bool observes(int layer, int attention_head) const {
    (void)layer;
    (void)attention_head;
    return true;
  }
  // Whether any head of `layer` is observed (observes(layer, h) for some h;
  // by default every layer is). A forward read only by its observer runs up
  // to the last such layer (decoder.hpp's decoder_extent). The answer must not
  // depend on which heads a tensor-parallel rank holds.
  virtual bool observes_layer(int layer) const {
    (void)layer;
    return true;
  }
  virtual bool wants_virtual_imaginary() const { return false; }
  // An observer that needs only sums by distance returns its request here; a
  // backend that reduces them itself then calls on_distance_sums, once per
  // (sequence, layer, observed head), instead of on_block. Backends without
  // such a reduction ignore this and call on_block.
  virtual const DistanceSumsRequest* distance_sums_request() const { return nullptr; }
  virtual void on_distance_sums(const DistanceSums& sums) { (void)sums; }
};

// Gaussian noise added to the rotated query of every attention head of one
// kind (the paper's noise experiment). Element (sequence-independent) noise is
// a pure function of (seed, layer, head, position, dim), so results do not
// depend on blocking, threading or batch composition.
struct QueryNoise {
  model::HeadKind component = model::HeadKind::imaginary;
  double std = 0.0;
  std::uint64_t seed = 0;
  // The model's number of this backend's attention head 0: the values are
  // keyed by the model's head numbers, so a tensor-parallel rank (which holds
  // heads first_head, first_head + 1, ...) draws the one-backend noise.
  int first_head = 0;
};

// Zeroes the attention output of chosen heads before o_proj.
struct HeadAblation {
  bool all_real = false;
  bool all_imaginary = false;
  std::vector<std::pair<int, int>> heads;  // (layer, attention head)
  bool ablates(int layer, const model::AttentionHead& head) const;
  bool empty() const { return !all_real && !all_imaginary && heads.empty(); }
};

// Sums a decoder branch's output over the ranks of a tensor-parallel group
// (backend/tensor_parallel.hpp): a rank's attention or MLP branch gives a
// partial [T, hidden] that only the sum over ranks makes the model's.
enum class Branch { attention, mlp };
class BranchReducer {
 public:
  virtual ~BranchReducer() = default;
  // Replaces `values` (host memory, [T, hidden] row-major) by the sum of every
  // rank's values for the same (sequence, layer, branch); blocks until all
  // ranks have called. Throws when the group stops (another rank failed).
  virtual void all_reduce(int sequence, int layer, Branch branch, std::span<float> values) = 0;
  // The same for `count` floats in device memory (a CUDA backend's buffer on
  // its device), the sum enqueued on `stream` (a cudaStream_t) and finished
  // before it returns. A reducer of host memory refuses it.
  virtual void all_reduce_device(int sequence, int layer, Branch branch, float* values, std::size_t count,
                                 void* stream);
};

struct ForwardOptions {
  AttentionObserver* observer = nullptr;
  std::optional<QueryNoise> noise;
  HeadAblation ablation;
  bool keep_logits = false;  // logits [T, V]; off by default (T x V can be large)
  bool keep_hidden = false;  // the residual stream after every layer, [T, hidden] each
  bool loss = true;          // false: skip the LM head (nll empty; logits only if keep_logits), e.g. for analyses of attention
  model::AnglePrecision angles = model::AnglePrecision::exact;
  std::optional<theory::RopeSpec> rope_override;  // inference-time base / scaling change of the model's main
                                                  // (global) table; local tables and NoPE layers are unchanged
  // The number of the batch's first sequence in observer calls and error messages (the
  // others follow): a data-parallel caller that hands out one batch in parts keeps the
  // whole batch's numbering.
  int first_sequence = 0;
  // Tensor parallel: each branch output is summed over the group (before any
  // post-branch norm and the residual add). Set by TensorParallelBackend for
  // its ranks; a backend that cannot honour it refuses it.
  BranchReducer* branch_reducer = nullptr;
  // Run every layer whole though this call's only reader is its observer: a
  // tensor-parallel rank whose group's first rank computes the loss, logits
  // or hidden states (the ranks sum every layer's branches together).
  bool whole_forward = false;
};

// Whether a forward's only reader is its observer: it has one, and nothing
// reads the residual stream after the layers (no loss, logits or hidden
// states; not whole_forward). Such a forward runs only the layers its
// observer looks at (decoder.hpp's decoder_extent).
inline bool observer_only(const ForwardOptions& options) {
  return options.observer && !options.loss && !options.keep_logits && !options.keep_hidden && !options.whole_forward;
}

struct ForwardResult {
  std::vector<double> nll;     // [T-1]: -log p(token[t+1] | tokens[0..t]); empty when !loss
  Matrix logits;               // [T, V] when keep_logits
  std::vector<Matrix> hidden;  // per layer when keep_hidden
};

// The checks every backend makes before a forward pass: noise std >= 0 and no
// imaginary noise on a vanilla RoPE model, a RoPE override of the model's head
// dim, no empty sequence, every token id inside the vocabulary (the error names
// the sequence and position), and an observer's distance slots (when it asks
// for distance sums) covering every distance of every sequence. Throws ArgumentError.
void check_forward_request(const model::Model& model, const std::vector<std::vector<std::int32_t>>& sequences,
                           const ForwardOptions& options);

// The error for non-finite activations (NaN or infinity) that a backend's
// per-layer check found in sequence `sequence` at `where` ("after the
// attention branch of layer 3 (first at position 17)"), saying what may
// cause it: the query noise of `options` when there is any, else values out
// of float32's range. Backends throw it (an Error: no analysis may turn NaN
// into a number).
Error non_finite_activations(int sequence, const std::string& where, const ForwardOptions& options);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::string precision() const = 0;  // the precision path, for sidecars
  virtual const model::Model& model() const = 0;
  // One forward pass per sequence (positions 0 .. T-1 each). Throws
  // ArgumentError naming the sequence and position of an out-of-vocabulary id
  // (check_forward_request), and for a sequence whose forward_bytes do not
  // fit the memory available to it, before any work. Throws Error (from
  // non_finite_activations) when the activations after a layer's attention
  // or MLP branch, the attention of a layer run for its observer alone
  // (decoder_extent), or the logits / losses, hold a NaN or an infinity: no
  // result is returned then.
  virtual std::vector<ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                             const ForwardOptions& options) = 0;
  // The memory, in bytes, that forward()'s own buffers take for one sequence
  // of T tokens with `options`: host RAM on the CPU backend (activations,
  // score blocks in flight, kept logits and hidden states), device memory on
  // the CUDA backend (its workspace, noised queries, the observer's device
  // buffers, the RoPE table). Not counted: the weights (already loaded) and
  // what the caller or its observer allocate. forward() refuses a sequence
  // whose estimate exceeds what is available (CPU: core/memory.hpp's
  // available_memory; CUDA: free device memory); a caller that allocates per
  // token itself (an attention map) adds its own bytes to this estimate to
  // size its request against the same limit.
  virtual std::uint64_t forward_bytes(long T, const ForwardOptions& options) const = 0;
  // Refuses (ArgumentError naming the bytes needed and available) a sequence
  // of T tokens whose forward_bytes do not fit the memory available now:
  // what a caller runs once, before its first forward pass, so that a run
  // too large fails before any work. The CPU backend checks host memory
  // (core/memory.hpp); the CUDA backend checks free device memory at each
  // forward, before its first kernel, and does nothing here.
  virtual void check_memory(long T, const ForwardOptions& options) const {
    (void)T;
    (void)options;
  }

  // How many sequences of one forward() call run at once (data parallel over devices:
  // one per device); callers batch at least this many when they can.
  virtual int concurrent_sequences() const { return 1; }

  // The kernels the last forward ran and why (kernel, tile shape, the reason),
  // as recorded in every sidecar; empty before the first forward.
  virtual std::vector<std::string> kernel_choices() const = 0;
  // Counters of the forwards run so far that a sidecar records (null: none),
  // e.g. a tensor-parallel group's time in its all-reduces.
  virtual nlohmann::json statistics() const { return nullptr; }

  // What a run on this backend must show and record besides the model's own
  // warnings: why it was chosen (e.g. a CUDA fallback and the features behind it).
  const std::vector<std::string>& notices() const { return notices_; }
  void add_notice(std::string notice) { notices_.push_back(std::move(notice)); }
  // The notices of the backends a group (data or tensor parallel) runs on,
  // each once (they are alike, so usually the same notices).
  void adopt_notices(const std::vector<std::unique_ptr<Backend>>& members);

 private:
  std::vector<std::string> notices_;
};

// "a, b, ...": the names of a group's backends, for its own name.
std::string joined_names(const std::vector<std::unique_ptr<Backend>>& members);

}  // namespace ropescope::backend
