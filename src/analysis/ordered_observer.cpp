// An observer that replays a data-parallel batch in sequence order (see ordered_observer.hpp).
#include "analysis/ordered_observer.hpp"

#include <algorithm>

namespace ropescope::analysis {

void OrderedObserver::on_block(const backend::AttentionBlock& block) {
  Kept k;
  k.sequence = block.sequence;
  k.is_block = true;
  k.block = block;
  const std::size_t n = static_cast<std::size_t>(block.q_end - block.q_begin) * static_cast<std::size_t>(block.k_end);
  k.scores.assign(block.scores, block.scores + n);
  k.probabilities.assign(block.probabilities, block.probabilities + n);
  if (block.virtual_imaginary_scores) k.virtual_scores.assign(block.virtual_imaginary_scores, block.virtual_imaginary_scores + n);
  const std::lock_guard lock(mutex_);
  kept_.push_back(std::move(k));
}

void OrderedObserver::on_distance_sums(const backend::DistanceSums& sums) {
  Kept k;
  k.sequence = sums.sequence;
  k.sums = sums;
  k.prob_sum.assign(sums.prob_sum.begin(), sums.prob_sum.end());
  k.score_sum.assign(sums.score_sum.begin(), sums.score_sum.end());
  const std::lock_guard lock(mutex_);
  kept_.push_back(std::move(k));
}

void OrderedObserver::replay() {
  std::stable_sort(kept_.begin(), kept_.end(), [](const Kept& a, const Kept& b) { return a.sequence < b.sequence; });
  for (auto& k : kept_) {
    if (k.is_block) {
      k.block.sequence = 0;
      k.block.scores = k.scores.data();
      k.block.probabilities = k.probabilities.data();
      k.block.virtual_imaginary_scores = k.virtual_scores.empty() ? nullptr : k.virtual_scores.data();
      inner_.on_block(k.block);
    } else {
      k.sums.sequence = 0;
      k.sums.prob_sum = k.prob_sum;
      k.sums.score_sum = k.score_sum;
      inner_.on_distance_sums(k.sums);
    }
  }
  kept_.clear();
}

}  // namespace ropescope::analysis
