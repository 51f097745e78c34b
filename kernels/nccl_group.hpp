// Tensor parallel over GPUs (issue 16): the reduce group of
// backend/tensor_parallel.hpp with one NCCL communicator per rank. In one
// process, one thread per GPU (ncclCommInitAll). Over processes (and hosts),
// each process holds its GPUs' ranks and the communicators are made with
// ncclCommInitRankConfig from the id that process 0 publishes in the
// rendezvous file (backend/rendezvous.hpp), non-blocking, so that a process
// that never joins is an error after the timeout, not a hang; the processes'
// observer calls travel by ncclAllGather. A rank's branch sum is
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
  // This process's ranks of a group over processes: world.process holds
  // ranks world.process * D .. + D - 1 (D = devices.size(), world.ranks = P D)
  // on `devices`. Joins through the rendezvous file; throws Error naming the
  // file, process and ranks when the group does not form within `timeout`.
  NcclGroup(std::vector<int> devices, std::chrono::milliseconds timeout, backend::World world);
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
  backend::World world() const override;
  // Two ncclAllGathers over every rank (the sizes, then the bytes padded to
  // the largest), through device memory; rank 0 of each process carries it.
  std::vector<std::vector<std::byte>> gather_processes(std::vector<std::byte> mine) override;

 private:
  struct RankView;
  struct Comms;
  void make_comms();
  void join_world();
  // Aborts every communicator still up (its pending kernels exit) and forgets it.
  void abort_comms();
  // Waits for every local rank's stream (and communicator) with the deadline;
  // on a failure aborts them all and throws naming `what`.
  void wait_all(const std::string& what);
  void all_reduce(int rank, int sequence, int layer, backend::Branch branch, float* values, std::size_t count,
                  void* stream);

  std::vector<int> devices_;
  std::chrono::milliseconds timeout_;
  backend::World world_;  // one process unless the constructor was given one
  std::unique_ptr<Comms> comms_;
  std::vector<std::unique_ptr<RankView>> views_;
  std::vector<double> seconds_;
  std::atomic<bool> stopped_{false};
};

}  // namespace ropescope::cuda
