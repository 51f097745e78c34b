// Observer calls kept to be handed on later, or elsewhere. Two users:
//  - a data-parallel batch (analysis/profile_report.cpp): the calls of every
//    sequence come from the devices at once; replay_in_sequence_order() hands
//    them to the real observer after the batch, sequence by sequence, each as
//    sequence 0, so window w's sums are added after window w - 1's exactly as
//    a one-device run adds them: the result is the same bit for bit;
//  - tensor parallel over processes (tensor_parallel.hpp): a process's calls
//    for its own heads go to the other processes as bytes (to_bytes /
//    from_bytes, exact: every float and double is copied bit for bit), which
//    replay them into their own observer.
// What the observer asks (observes, wants_virtual_imaginary,
// distance_sums_request) is answered by the observer the recording stands for.
#pragma once

#include <cstddef>
#include <mutex>
#include <span>
#include <vector>

#include "backend/backend.hpp"

namespace ropescope::backend {

class ObserverRecording : public AttentionObserver {
 public:
  explicit ObserverRecording(const AttentionObserver& like) : like_(like) {}

  // Kept with copies of their arrays; thread-safe.
  void on_block(const AttentionBlock& block) override;
  void on_distance_sums(const DistanceSums& sums) override;
  bool observes(int layer, int attention_head) const override { return like_.observes(layer, attention_head); }
  bool observes_layer(int layer) const override { return like_.observes_layer(layer); }
  bool wants_virtual_imaginary() const override { return like_.wants_virtual_imaginary(); }
  const DistanceSumsRequest* distance_sums_request() const override { return like_.distance_sums_request(); }

  // Hands the kept calls to `into` in the order they came, then forgets them.
  void replay(AttentionObserver& into);
  // Sequence by sequence (within one in the order they came: one (layer,
  // head) is never called concurrently, so its own calls keep their order),
  // each as sequence 0; then forgets them.
  void replay_in_sequence_order(AttentionObserver& into);

  bool empty() const { return kept_.empty(); }
  // The kept calls as bytes (host byte order: the processes of one group run
  // one build on one kind of machine), and back. from_bytes adds the calls in
  // `bytes` to this recording; it throws FormatError for bytes that are not
  // such a recording (`from` names their source in the message).
  std::vector<std::byte> to_bytes() const;
  void from_bytes(std::span<const std::byte> bytes, const std::string& from);

 private:
  struct Kept {
    bool is_block = false;
    AttentionBlock block;
    DistanceSums sums;
    std::vector<float> scores, probabilities, virtual_scores;  // the block's arrays, copied
    std::vector<double> prob_sum, score_sum;                    // the sums' arrays, copied
  };
  static void hand_on(Kept& k, AttentionObserver& into);

  const AttentionObserver& like_;
  std::mutex mutex_;
  std::vector<Kept> kept_;
};

}  // namespace ropescope::backend
