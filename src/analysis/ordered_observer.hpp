// An observer for a data-parallel batch: it keeps the observer calls of every
// sequence, as they come from the devices at once, and replays them into the
// real observer after the batch in sequence order, each sequence as sequence 0.
// The real observer so adds the sums of window w after those of window w - 1,
// exactly as a one-device run adds them: the result is the same bit for bit.
#pragma once

#include <mutex>
#include <vector>

#include "backend/backend.hpp"

namespace ropescope::analysis {

class OrderedObserver : public backend::AttentionObserver {
 public:
  explicit OrderedObserver(backend::AttentionObserver& inner) : inner_(inner) {}

  void on_block(const backend::AttentionBlock& block) override;
  void on_distance_sums(const backend::DistanceSums& sums) override;
  bool observes(int layer, int attention_head) const override { return inner_.observes(layer, attention_head); }
  bool wants_virtual_imaginary() const override { return inner_.wants_virtual_imaginary(); }
  const backend::DistanceSumsRequest* distance_sums_request() const override { return inner_.distance_sums_request(); }

  // Hands the kept calls to the real observer, sequence by sequence (within a
  // sequence in the order they came: one (layer, head) is never called
  // concurrently, so its own calls keep their order), then forgets them.
  void replay();

 private:
  struct Kept {
    int sequence = 0;
    bool is_block = false;
    backend::AttentionBlock block;
    backend::DistanceSums sums;
    std::vector<float> scores, probabilities, virtual_scores;  // the block's arrays, copied
    std::vector<double> prob_sum, score_sum;                    // the sums' arrays, copied
  };
  backend::AttentionObserver& inner_;
  std::mutex mutex_;
  std::vector<Kept> kept_;
};

}  // namespace ropescope::analysis
