// The NCCL reduce group of tensor parallel (see nccl_group.hpp).
#include "kernels/nccl_group.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nccl.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "core/error.hpp"

namespace ropescope::cuda {

struct NcclGroup::Comms {
  std::vector<ncclComm_t> comm;  // per rank; nullptr once aborted
  // Per rank, recorded around each all-reduce for its GPU time.
  std::vector<cudaEvent_t> before, after;
};

struct NcclGroup::RankView : backend::BranchReducer {
  NcclGroup& group;
  int rank;
  RankView(NcclGroup& g, int r) : group(g), rank(r) {}
  void all_reduce(int sequence, int layer, backend::Branch branch, std::span<float> values) override {
    (void)branch, (void)values;
    throw Error(fmt::format("tensor parallel: rank {}, sequence {}, layer {}: the NCCL group sums device buffers and "
                            "was handed host memory",
                            rank, sequence, layer));
  }
  void all_reduce_device(int sequence, int layer, backend::Branch branch, float* values, std::size_t count,
                         void* stream) override {
    group.all_reduce(rank, sequence, layer, branch, values, count, stream);
  }
};

namespace {

void check_cuda(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess) throw Error(fmt::format("{}: {}", what, cudaGetErrorString(err)));
}

}  // namespace

NcclGroup::NcclGroup(std::vector<int> devices, std::chrono::milliseconds timeout)
    : devices_(std::move(devices)), timeout_(timeout), comms_(std::make_unique<Comms>()) {
  if (devices_.size() < 2)
    throw ArgumentError("tensor-parallel", fmt::format("an NCCL group needs two devices or more, got {}", devices_.size()));
  for (std::size_t i = 0; i < devices_.size(); ++i)
    if (std::count(devices_.begin(), devices_.end(), devices_[i]) > 1)
      throw ArgumentError("tensor-parallel", fmt::format("device {} named twice", devices_[i]));
  ::setenv("NCCL_NVLS_ENABLE", "0", 1);  // NVLink multicast off (KINDS.md: it can take shared GPUs out of service)
  // Every connection made at init: a connection made lazily, inside the first
  // ncclAllReduce, blocks the host until the peer joins, where no deadline runs.
  ::setenv("NCCL_RUNTIME_CONNECT", "0", 0);
  for (int r = 0; r < ranks(); ++r) views_.push_back(std::make_unique<RankView>(*this, r));
  seconds_.assign(devices_.size(), 0.0);
  comms_->before.assign(devices_.size(), nullptr);
  comms_->after.assign(devices_.size(), nullptr);
  for (int r = 0; r < ranks(); ++r) {
    check_cuda(cudaSetDevice(devices_[r]), fmt::format("NCCL group: device {}", devices_[r]));
    check_cuda(cudaEventCreate(&comms_->before[r]), "cudaEventCreate");
    check_cuda(cudaEventCreate(&comms_->after[r]), "cudaEventCreate");
  }
  make_comms();
}

NcclGroup::~NcclGroup() {
  // After a failure the surviving communicators are aborted, not destroyed:
  // destroying one finalizes it, which may wait on a peer that is gone.
  const bool broken =
      stopped_ || std::any_of(comms_->comm.begin(), comms_->comm.end(), [](ncclComm_t c) { return c == nullptr; });
  for (int r = 0; r < ranks(); ++r) {
    cudaSetDevice(devices_[r]);
    if (comms_->comm[r]) broken ? ncclCommAbort(comms_->comm[r]) : ncclCommDestroy(comms_->comm[r]);
    cudaEventDestroy(comms_->before[r]);
    cudaEventDestroy(comms_->after[r]);
  }
}

void NcclGroup::make_comms() {
  comms_->comm.assign(devices_.size(), nullptr);
  const ncclResult_t made = ncclCommInitAll(comms_->comm.data(), ranks(), devices_.data());
  if (made != ncclSuccess) {
    comms_->comm.assign(devices_.size(), nullptr);
    throw Error(fmt::format("NCCL group over devices {}: ncclCommInitAll: {}", fmt::join(devices_, ","),
                            ncclGetErrorString(made)));
  }
  // One all-reduce of one float on every rank at once, waited for: the group works before any forward relies on it.
  std::vector<float*> one(devices_.size(), nullptr);
  for (int r = 0; r < ranks(); ++r) {
    check_cuda(cudaSetDevice(devices_[r]), "NCCL group");
    check_cuda(cudaMalloc(reinterpret_cast<void**>(&one[r]), sizeof(float)), "NCCL group: cudaMalloc");
    check_cuda(cudaMemset(one[r], 0, sizeof(float)), "NCCL group: cudaMemset");
  }
  ncclResult_t summed = ncclGroupStart();
  for (int r = 0; r < ranks() && summed == ncclSuccess; ++r) {
    check_cuda(cudaSetDevice(devices_[r]), "NCCL group");
    summed = ncclAllReduce(one[r], one[r], 1, ncclFloat32, ncclSum, comms_->comm[r], cudaStreamPerThread);
  }
  const ncclResult_t ended = ncclGroupEnd();
  for (int r = 0; r < ranks(); ++r) {
    cudaSetDevice(devices_[r]);
    cudaStreamSynchronize(cudaStreamPerThread);
    cudaFree(one[r]);
  }
  if (summed != ncclSuccess || ended != ncclSuccess)
    throw Error(fmt::format("NCCL group over devices {}: the first all-reduce failed: {}", fmt::join(devices_, ","),
                            ncclGetErrorString(summed != ncclSuccess ? summed : ended)));
}

backend::BranchReducer& NcclGroup::rank(int r) { return *views_.at(r); }

void NcclGroup::begin() {
  const bool broken = std::any_of(comms_->comm.begin(), comms_->comm.end(), [](ncclComm_t c) { return c == nullptr; });
  if (broken) {
    for (int r = 0; r < ranks(); ++r)
      if (comms_->comm[r]) {
        cudaSetDevice(devices_[r]);
        ncclCommAbort(comms_->comm[r]);
      }
    make_comms();
  }
  stopped_ = false;
}

void NcclGroup::abort() { stopped_ = true; }

std::vector<double> NcclGroup::reduce_seconds() const { return seconds_; }

void NcclGroup::all_reduce(int rank, int sequence, int layer, backend::Branch branch, float* values, std::size_t count,
                           void* stream_handle) {
  const int device = devices_[rank];
  const char* which = branch == backend::Branch::attention ? "attention" : "MLP";
  auto where = [&] {
    return fmt::format("tensor parallel, rank {} (device {}): the all-reduce of sequence {}, layer {}'s {} branch",
                       rank, device, sequence, layer, which);
  };
  ncclComm_t& comm = comms_->comm[rank];
  // Takes this rank's communicator down (its pending kernel exits) before throwing.
  auto give_up = [&] {
    if (comm) ncclCommAbort(comm);
    comm = nullptr;
  };
  if (stopped_ || !comm) throw Stopped(where() + " was not started: another rank failed");
  auto stream = static_cast<cudaStream_t>(stream_handle);
  check_cuda(cudaEventRecord(comms_->before[rank], stream), where());
  const ncclResult_t queued = ncclAllReduce(values, values, count, ncclFloat32, ncclSum, comm, stream);
  if (queued != ncclSuccess) {
    give_up();
    stopped_ = true;
    throw Error(fmt::format("{}: ncclAllReduce: {}", where(), ncclGetErrorString(queued)));
  }
  check_cuda(cudaEventRecord(comms_->after[rank], stream), where());
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t state = cudaEventQuery(comms_->after[rank]);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady) {
      give_up();
      stopped_ = true;
      throw Error(fmt::format("{}: {}", where(), cudaGetErrorString(state)));
    }
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      give_up();
      stopped_ = true;
      throw Error(fmt::format("{}: NCCL: {}", where(), ncclGetErrorString(async)));
    }
    if (stopped_) {
      give_up();
      throw Stopped(where() + " was stopped: another rank failed");
    }
    if (std::chrono::steady_clock::now() - start > timeout_) {
      give_up();
      stopped_ = true;
      throw Error(fmt::format("{} did not complete within {:.1f} s: a peer is lost or stalled; the group was stopped",
                              where(), timeout_.count() / 1000.0));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  float ms = 0;
  check_cuda(cudaEventElapsedTime(&ms, comms_->before[rank], comms_->after[rank]), where());
  seconds_[rank] += ms / 1000.0;
}

}  // namespace ropescope::cuda
