// Data parallel over devices: one Backend per device (replicas of one model),
// behind the Backend interface. forward() hands the sequences of a batch out
// round-robin, sequence b to replica b mod N, each replica running its share on
// its own thread; every sequence runs whole on one device, so its result is
// bitwise the one that device alone gives.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"

namespace ropescope::backend {

class DataParallelBackend : public Backend {
 public:
  // Throws ArgumentError for fewer than two replicas or replicas that do not
  // share one model (the same model::Model object, as open_backend makes them).
  explicit DataParallelBackend(std::vector<std::unique_ptr<Backend>> replicas);

  std::string name() const override;
  std::string precision() const override;
  const model::Model& model() const override { return replicas_.front()->model(); }
  // The results in batch order. Observer calls carry the batch's sequence
  // numbers and may come from every replica at once (for different sequences).
  // When sequences fail, the exception of the lowest-numbered one is rethrown
  // after every replica has stopped.
  std::vector<ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                     const ForwardOptions& options) override;
  std::uint64_t forward_bytes(long T, const ForwardOptions& options) const override;
  void check_memory(long T, const ForwardOptions& options) const override;
  std::vector<std::string> kernel_choices() const override;
  int concurrent_sequences() const override { return static_cast<int>(replicas_.size()); }

 private:
  std::vector<std::unique_ptr<Backend>> replicas_;
};

}  // namespace ropescope::backend
