// Tensor parallel (issue 16): one model split over N ranks by attention heads
// and MLP rows (model/tensor_parallel.hpp), each rank a backend over its shard,
// all running every sequence at once, one host thread each. After each
// decoder branch the ranks' partial outputs are summed (one all-reduce per
// attention branch and per MLP branch); then every rank holds the same
// residual stream, and the first rank's final norm, LM head and loss are the
// result.
//
// The ranks may span processes (and hosts: backend/rendezvous.hpp): each of
// P processes then runs the same command and holds N / P of the ranks, and
// its TensorParallelBackend drives those. Every process computes the head on
// its first rank (the summed residual stream is the same bits on every
// rank), and after each forward the processes exchange their observer calls
// (the heads each holds), so every process ends with the same results; the
// front end lets process 0 alone write them.
//
// The sum is a ReduceGroup: HostAllReduce for CPU ranks (host memory, ranks
// added in rank order, so deterministic), kernels/nccl_group.hpp for CUDA
// ranks (an NCCL all-reduce on device buffers, with a timeout).
// Observers see the model's head numbers (each rank's heads are offset); an
// ablation list is split among the ranks; query noise is drawn by the model's
// head numbers (QueryNoise::first_head), so it is the one-backend noise.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "backend/backend.hpp"
#include "backend/rendezvous.hpp"
#include "core/error.hpp"
#include "model/tensor_parallel.hpp"

namespace ropescope::backend {

// The sum behind a tensor-parallel group: one BranchReducer per rank, and a
// way to stop them all when one rank fails.
class ReduceGroup {
 public:
  // What a rank released by abort() throws.
  struct Stopped : Error {
    using Error::Error;
  };
  virtual ~ReduceGroup() = default;
  virtual int ranks() const = 0;
  virtual BranchReducer& rank(int r) = 0;
  // How the sum is made, for the precision path ("in rank order on the host, fp32").
  virtual std::string summation() const = 0;
  // Before each forward: makes the group usable again after an earlier abort.
  virtual void begin() = 0;
  // A rank failed: every rank waiting in an all-reduce, and every later
  // call until begin(), throws Stopped (none may wait for the failed rank).
  virtual void abort() = 0;
  // Per rank, the time its all-reduces took so far, in seconds (empty when the group does not measure it).
  virtual std::vector<double> reduce_seconds() const { return {}; }
  // The processes the group spans: this process holds ranks first_rank() ..
  // first_rank() + ranks() - 1 of world().ranks (one process: all of them).
  virtual World world() const {
    World one;
    one.ranks = ranks();
    return one;
  }
  int first_rank() const { return world().process * ranks(); }
  // Every process's bytes in process order, this process's own included;
  // called once per forward by one thread of every process.
  virtual std::vector<std::vector<std::byte>> gather_processes(std::vector<std::byte> mine) { return {std::move(mine)}; }
};

// The all-reduce of a group of `ranks` threads in one process, in host memory.
// Each rank calls through its own view (rank(r)); the last to arrive adds the
// ranks' values in rank order into every rank's buffer and releases them.
class HostAllReduce : public ReduceGroup {
 public:
  explicit HostAllReduce(int ranks);
  ~HostAllReduce() override;
  int ranks() const override { return ranks_; }
  BranchReducer& rank(int r) override;
  std::string summation() const override { return "fp32, added in rank order on the host"; }
  void begin() override;
  void abort() override;

 private:
  struct RankView;
  using Key = std::tuple<int, int, int>;  // sequence, layer, branch
  struct Round {
    std::vector<std::span<float>> parts;
    int arrived = 0, left = 0;
    bool done = false;
  };
  void all_reduce(int rank, const Key& key, std::span<float> values);

  int ranks_;
  std::vector<std::unique_ptr<RankView>> views_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<Key, Round> rounds_;
  bool aborted_ = false;
};

class TensorParallelBackend : public Backend {
 public:
  // ranks[r] runs shard group->first_rank() + r of `model`
  // (model::shard_model(*model, that, N), N = group->world().ranks), summing
  // through group->rank(r) (default: a HostAllReduce over these ranks);
  // throws ArgumentError for fewer than two ranks in all, a rank whose model
  // is not its shard's size, or a group of another size.
  TensorParallelBackend(std::shared_ptr<const model::Model> model, std::vector<std::unique_ptr<Backend>> ranks,
                        std::unique_ptr<ReduceGroup> group = nullptr);

  std::string name() const override;
  std::string precision() const override;
  const model::Model& model() const override { return *model_; }
  // The first rank's results (on every process the same). When ranks fail,
  // the first failure is rethrown after every rank of this process has
  // stopped (the others are released from their all-reduce).
  std::vector<ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                     const ForwardOptions& options) override;
  std::uint64_t forward_bytes(long T, const ForwardOptions& options) const override;
  void check_memory(long T, const ForwardOptions& options) const override;
  std::vector<std::string> kernel_choices() const override;
  // {"ranks", "forward_seconds" (wall time of every forward so far),
  //  "all_reduce_seconds" (per rank of this process, when the group measures
  //  it); over processes also "processes", "process", "first_rank"}.
  nlohmann::json statistics() const override;

 private:
  // The options rank r runs with (its reducer, ablation part and observer).
  ForwardOptions rank_options(std::size_t r, const ForwardOptions& options, AttentionObserver* observer) const;

  std::shared_ptr<const model::Model> model_;
  std::vector<model::TensorParallelShard> shards_;
  std::vector<std::unique_ptr<Backend>> ranks_;
  std::unique_ptr<ReduceGroup> group_;
  double forward_seconds_ = 0;
};

}  // namespace ropescope::backend
