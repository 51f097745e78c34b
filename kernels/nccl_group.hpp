// Tensor parallel over the GPUs of one host (issue 16): the reduce group of
// backend/tensor_parallel.hpp with one NCCL communicator per rank
// (ncclCommInitAll: one process, one thread per GPU). A rank's branch sum is
// an in-place fp32 ncclAllReduce on its CUDA backend's stream, waited for with
// a deadline: the rank polls its stream, its communicator's async error and
// the group's stop flag, and on a timeout, an NCCL error or another rank's
// failure it aborts its communicator and throws, so a lost peer is an error
// naming the rank and device, never a hang. NVLink multicast stays off
// (NCCL_NVLS_ENABLE=0 is set before any communicator is made).
// Built only with NCCL (ROPESCOPE_HAVE_NCCL); nccl.h stays in the .cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "backend/tensor_parallel.hpp"

namespace ropescope::cuda {

class NcclGroup : public backend::ReduceGroup {
 public:
  // One rank per device, in order. Throws ArgumentError for fewer than two
  // devices or a repeated one, Error for a communicator NCCL cannot make.
  NcclGroup(std::vector<int> devices, std::chrono::milliseconds timeout);
  ~NcclGroup() override;

  int ranks() const override { return static_cast<int>(devices_.size()); }
  backend::BranchReducer& rank(int r) override;
  std::string summation() const override { return "fp32, in place by an NCCL all-reduce, in NCCL's order"; }
  // Fresh communicators when an abort (or a failed collective) took any down.
  void begin() override;
  void abort() override;
  // GPU time inside each rank's all-reduces so far (event to event around
  // the NCCL kernel, so waiting for a slower rank counts), in seconds.
  std::vector<double> reduce_seconds() const override;

 private:
  struct RankView;
  struct Comms;
  void make_comms();
  void all_reduce(int rank, int sequence, int layer, backend::Branch branch, float* values, std::size_t count,
                  void* stream);

  std::vector<int> devices_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Comms> comms_;
  std::vector<std::unique_ptr<RankView>> views_;
  std::vector<double> seconds_;
  std::atomic<bool> stopped_{false};
};

}  // namespace ropescope::cuda
