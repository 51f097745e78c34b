// Attention by relative distance D = t - s (query t, key s), exact over every
// query of every window: per (layer, attention head) sums of the attention
// probability and of the pre-softmax score by distance bin, streamed from the
// backend's AttentionBlocks one query block at a time, so memory grows with the
// window length T and never with T^2.
//
// Bins: every distance 0 .. exact_limit-1 is its own bin; above it, integer
// ranges up to the largest distance, log-spaced (a number per decade) or given
// by explicit edges. Every distance 0 .. max_distance lies in exactly one bin.
//
// Derived per-head statistics (all averages are over query rows, every query
// of every window weighing the same; p(t, .) is one row of probabilities):
//   mean probability in bin b = sum of p over all causal (t, s) with t - s in b
//       / number of such pairs (pairs a sliding window masks count, with p = 0,
//       so a windowed layer shows no mass beyond its window);
//   mean score in bin b = the same over the visible pairs only (a masked pair
//       has no score); NaN where a bin has none;
//   mean attention distance = mean over queries of sum_s p(t,s) * (t - s);
//   entropy (nats)          = mean over queries of -sum_s p(t,s) log p(t,s);
//   mass beyond X           = mean over queries of sum_{t - s >= X} p(t,s).
// Aggregates over heads (real heads vs imaginary heads, per layer and over the
// model) are plain means of the per-head curves and statistics.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.hpp"

namespace ropescope::analysis {

class DistanceBins {
 public:
  DistanceBins() = default;  // no bins (a report not yet filled)
  // Exact distances 0 .. exact_limit-1, then bins whose lower edges are the
  // integers ceil(exact_limit * 10^(k / per_decade)), k = 0, 1, ... (repeats
  // dropped), the last one ending at max_distance. Throws ArgumentError for
  // exact_limit < 1, per_decade < 1 or max_distance < 0.
  static DistanceBins log_spaced(long exact_limit, long max_distance, int per_decade);
  // Exact distances 0 .. exact_limit-1, then bins [edges[i], edges[i+1]-1]
  // with edges[0] = exact_limit implied; edges above max_distance are dropped.
  // Edges must be strictly increasing and > exact_limit.
  static DistanceBins from_edges(long exact_limit, long max_distance, const std::vector<long>& edges);

  int size() const { return static_cast<int>(lo_.size()); }
  long exact_limit() const { return exact_limit_; }
  long max_distance() const { return static_cast<long>(table_.size()) - 1; }
  long lo(int bin) const { return lo_[bin]; }  // smallest distance in the bin
  long hi(int bin) const { return hi_[bin]; }  // largest distance in the bin (inclusive)
  // The bin of distance 0 <= d <= max_distance: a precomputed table, O(1).
  int bin_of(long d) const { return table_[d]; }
  bool operator==(const DistanceBins& other) const { return lo_ == other.lo_ && hi_ == other.hi_; }

 private:
  DistanceBins(long exact_limit, long max_distance, const std::vector<long>& upper_edges);
  long exact_limit_ = 0;
  std::vector<long> lo_, hi_;
  std::vector<std::int32_t> table_;  // distance -> bin
};

// The sums of one attention head (or any set of query rows), accumulated in
// double. Mergeable: profiles of the same bins and thresholds add up, so a
// kernel's per-head arrays or per-window partial results fill the same structure.
struct DistanceProfile {
  std::vector<double> prob_sum, score_sum;  // [bins]
  std::vector<std::int64_t> count;          // [bins]: (t, s) pairs with t - s in the bin
  std::vector<std::int64_t> score_count;    // [bins]: those of them visible (not masked by a window)
  std::vector<long> beyond;                 // thresholds X of mass_sum
  std::vector<double> mass_sum;             // [beyond]: sum over queries of sum_{t-s >= X} p
  double distance_sum = 0;                  // sum over queries of sum_s p (t - s)
  double entropy_sum = 0;                   // sum over queries of -sum_s p log p
  std::int64_t queries = 0;

  DistanceProfile() = default;
  DistanceProfile(int bins, std::vector<long> beyond_thresholds);

  // Adds query rows q_begin .. q_end-1 of a row-major block whose row i holds
  // query q_begin + i and whose column j is key j (row stride `stride` floats);
  // only keys 0 .. q are read (the causal part); keys with a score of -inf
  // (masked by a sliding window) add to the pair count, not to the scores.
  void add_rows(const DistanceBins& bins, const float* probabilities, const float* scores, long q_begin, long q_end,
                long stride);
  // Throws std::invalid_argument when the bins or thresholds differ.
  DistanceProfile& operator+=(const DistanceProfile& other);

  // Derived statistics (definitions above); NaN where nothing was counted.
  double mean_prob(int bin) const;
  double mean_score(int bin) const;
  double mean_distance() const;
  double entropy() const;
  double mass_beyond(std::size_t threshold_index) const;
};

// Streams AttentionBlocks into one DistanceProfile per (sequence slot, layer,
// head), all allocated up front: on_block touches only the accumulator of its
// own triple, which the backend never calls concurrently, so there is no lock.
// Backends that reduce by distance themselves (CUDA) get a DistanceSumsRequest
// instead: slots are the bins split at the mass thresholds, so every bin and
// every "mass beyond X" is a sum of whole slots; pair counts per bin are
// exact functions of T.
// Sequences must be no longer than bins.max_distance() + 1 (backends check
// this before a forward: backend::check_forward_request) and have batch
// indices below `sequences`: a block outside that is a caller bug and throws
// std::out_of_range (the CPU backend rethrows it after its parallel region).
class ProfileObserver : public backend::AttentionObserver {
 public:
  // `sequences`: the largest batch one forward call will carry.
  ProfileObserver(const DistanceBins& bins, std::vector<long> beyond, int layers, int heads, int sequences = 1);
  void on_block(const backend::AttentionBlock& block) override;
  const backend::DistanceSumsRequest* distance_sums_request() const override { return &request_; }
  // Throws std::invalid_argument for sums of another slot count, and
  // std::out_of_range like on_block.
  void on_distance_sums(const backend::DistanceSums& sums) override;
  // The profile of (layer, head), merged over the sequence slots. Throws
  // Error naming the head and the sum when any sum is NaN or infinite.
  DistanceProfile result(int layer, int head) const;

 private:
  DistanceBins bins_;
  int layers_, heads_, sequences_;
  std::vector<DistanceProfile> profiles_;  // [sequence][layer][head]
  backend::DistanceSumsRequest request_;
  std::vector<int> bin_of_slot_;       // [slots]
  std::vector<int> first_slot_beyond_; // [thresholds]: the slot starting at the threshold (slots when past the end)

  DistanceProfile& profile(int sequence, int layer, int head);
};

// Plain mean of per-head curves and statistics over a set of heads.
struct ProfileAggregate {
  int heads = 0;
  std::vector<double> mean_prob, mean_score;  // [bins]
  double mean_distance = 0, entropy = 0;
  std::vector<double> mass_beyond;  // [beyond]
};
ProfileAggregate aggregate(const std::vector<const DistanceProfile*>& profiles);

}  // namespace ropescope::analysis
