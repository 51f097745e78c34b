// The NCCL reduce group of tensor parallel (see nccl_group.hpp).
#include "kernels/nccl_group.hpp"

#include <cuda_runtime.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nccl.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <span>
#include <thread>

#include "core/error.hpp"

namespace ropescope::cuda {

struct NcclGroup::Comms {
  std::vector<ncclComm_t> comm;  // per rank; nullptr once aborted
  // Per rank, recorded around each all-reduce for its GPU time.
  std::vector<cudaEvent_t> before, after;
  std::vector<cudaStream_t> streams;  // per rank, for the group's own collectives (warm-up, gathers)
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

// Device memory on one device, freed on every path.
struct DeviceBytes {
  int device = 0;
  void* data = nullptr;
  DeviceBytes(int d, std::size_t bytes, const std::string& what) : device(d) {
    check_cuda(cudaSetDevice(d), what);
    check_cuda(cudaMalloc(&data, std::max<std::size_t>(bytes, 1)), fmt::format("{}: {} bytes on device {}", what, bytes, d));
  }
  ~DeviceBytes() {
    cudaSetDevice(device);
    cudaFree(data);
  }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
};

}  // namespace

NcclGroup::NcclGroup(std::vector<int> devices, std::chrono::milliseconds timeout)
    : NcclGroup(std::move(devices), timeout, backend::World{}) {}

NcclGroup::NcclGroup(std::vector<int> devices, std::chrono::milliseconds timeout, backend::World world)
    : devices_(std::move(devices)), timeout_(timeout), world_(std::move(world)), comms_(std::make_unique<Comms>()) {
  backend::check_world(world_);
  if (world_.spans_processes()) {
    if (devices_.empty() || world_.ranks != world_.processes * static_cast<int>(devices_.size()))
      throw ArgumentError("tensor-parallel", fmt::format("{} ranks over {} processes: each holds {}, and this one was "
                                                         "given {} devices",
                                                         world_.ranks, world_.processes,
                                                         world_.ranks / world_.processes, devices_.size()));
  } else if (devices_.size() < 2) {
    throw ArgumentError("tensor-parallel", fmt::format("an NCCL group needs two devices or more, got {}", devices_.size()));
  }
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
  comms_->streams.assign(devices_.size(), nullptr);
  for (int r = 0; r < ranks(); ++r) {
    check_cuda(cudaSetDevice(devices_[r]), fmt::format("NCCL group: device {}", devices_[r]));
    check_cuda(cudaEventCreate(&comms_->before[r]), "cudaEventCreate");
    check_cuda(cudaEventCreate(&comms_->after[r]), "cudaEventCreate");
    check_cuda(cudaStreamCreateWithFlags(&comms_->streams[r], cudaStreamNonBlocking), "cudaStreamCreate");
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
    cudaStreamDestroy(comms_->streams[r]);
  }
}

void NcclGroup::make_comms() {
  comms_->comm.assign(devices_.size(), nullptr);
  if (world_.spans_processes()) {
    join_world();
  } else {
    const ncclResult_t made = ncclCommInitAll(comms_->comm.data(), ranks(), devices_.data());
    if (made != ncclSuccess) {
      comms_->comm.assign(devices_.size(), nullptr);
      throw Error(fmt::format("NCCL group over devices {}: ncclCommInitAll: {}", fmt::join(devices_, ","),
                              ncclGetErrorString(made)));
    }
  }
  // One all-reduce of one float on every rank at once, waited for: the group works before any forward relies on it.
  std::vector<std::unique_ptr<DeviceBytes>> one;
  for (int r = 0; r < ranks(); ++r) {
    one.push_back(std::make_unique<DeviceBytes>(devices_[r], sizeof(float), "NCCL group"));
    check_cuda(cudaMemset(one[r]->data, 0, sizeof(float)), "NCCL group: cudaMemset");
  }
  ncclResult_t summed = ncclGroupStart();
  for (int r = 0; r < ranks() && summed == ncclSuccess; ++r) {
    check_cuda(cudaSetDevice(devices_[r]), "NCCL group");
    summed = ncclAllReduce(one[r]->data, one[r]->data, 1, ncclFloat32, ncclSum, comms_->comm[r], comms_->streams[r]);
    if (summed == ncclInProgress) summed = ncclSuccess;
  }
  const ncclResult_t ended = ncclGroupEnd();
  if (summed != ncclSuccess || (ended != ncclSuccess && ended != ncclInProgress))
    throw Error(fmt::format("NCCL group over devices {}: the first all-reduce failed: {}", fmt::join(devices_, ","),
                            ncclGetErrorString(summed != ncclSuccess ? summed : ended)));
  wait_all("the group's first all-reduce");
}

void NcclGroup::join_world() {
  const int first = first_rank();
  const std::string who = fmt::format("tensor parallel, process {} of {} (ranks {}..{} on devices {})", world_.process,
                                      world_.processes, first, first + ranks() - 1, fmt::join(devices_, ","));
  ncclUniqueId id;
  if (world_.process == 0) {
    const ncclResult_t got = ncclGetUniqueId(&id);
    if (got != ncclSuccess) throw Error(fmt::format("{}: ncclGetUniqueId: {}", who, ncclGetErrorString(got)));
    backend::publish_rendezvous(world_, std::as_bytes(std::span(id.internal)));
  } else {
    const auto bytes = backend::await_rendezvous(world_, sizeof(id.internal), timeout_);
    std::memcpy(id.internal, bytes.data(), sizeof(id.internal));
  }
  // Non-blocking communicators: a process that never joins leaves them "in
  // progress", which the deadline below turns into an error.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclResult_t made = ncclGroupStart();
  for (int r = 0; r < ranks() && made == ncclSuccess; ++r) {
    check_cuda(cudaSetDevice(devices_[r]), who);
    made = ncclCommInitRankConfig(&comms_->comm[r], world_.ranks, id, first + r, &config);
    if (made == ncclInProgress) made = ncclSuccess;
  }
  const ncclResult_t ended = ncclGroupEnd();
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](const std::string& why) {
    abort_comms();
    if (world_.process == 0) backend::withdraw_rendezvous(world_);
    throw Error(fmt::format("{}: {}", who, why));
  };
  if (made != ncclSuccess || (ended != ncclSuccess && ended != ncclInProgress))
    fail(fmt::format("ncclCommInitRankConfig: {}", ncclGetErrorString(made != ncclSuccess ? made : ended)));
  for (;;) {
    bool joined = true;
    for (int r = 0; r < ranks(); ++r) {
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comms_->comm[r], &state);
      if (state == ncclInProgress) joined = false;
      else if (state != ncclSuccess) fail(fmt::format("rank {} could not join: {}", first + r, ncclGetErrorString(state)));
    }
    if (joined) break;
    if (std::chrono::steady_clock::now() - start > timeout_)
      fail(fmt::format("the group of {} processes ({} ranks) did not form within {:.0f} s through {}: is every process "
                       "started, with the same file and sizes, and can the hosts reach each other?",
                       world_.processes, world_.ranks, timeout_.count() / 1000.0, world_.rendezvous.string()));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (world_.process == 0) backend::withdraw_rendezvous(world_);  // every process joined: the id is spent
}

void NcclGroup::wait_all(const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](const std::string& why) {
    abort_comms();
    stopped_ = true;
    throw Error(fmt::format("tensor parallel over devices {}: {}: {}", fmt::join(devices_, ","), what, why));
  };
  for (;;) {
    bool done = true;
    for (int r = 0; r < ranks(); ++r) {
      if (!comms_->comm[r]) fail(fmt::format("rank {}'s communicator was aborted", first_rank() + r));
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comms_->comm[r], &state);
      if (state == ncclInProgress) {
        done = false;
        continue;
      }
      if (state != ncclSuccess) fail(fmt::format("rank {}: NCCL: {}", first_rank() + r, ncclGetErrorString(state)));
      cudaSetDevice(devices_[r]);
      const cudaError_t q = cudaStreamQuery(comms_->streams[r]);
      if (q == cudaErrorNotReady) done = false;
      else if (q != cudaSuccess) fail(fmt::format("rank {}: {}", first_rank() + r, cudaGetErrorString(q)));
    }
    if (done) return;
    if (std::chrono::steady_clock::now() - start > timeout_)
      fail(fmt::format("did not complete within {:.1f} s: a peer is lost or stalled", timeout_.count() / 1000.0));
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void NcclGroup::abort_comms() {
  for (int r = 0; r < ranks(); ++r)
    if (comms_->comm[r]) {
      cudaSetDevice(devices_[r]);
      ncclCommAbort(comms_->comm[r]);
      comms_->comm[r] = nullptr;
    }
}

backend::BranchReducer& NcclGroup::rank(int r) { return *views_.at(r); }

void NcclGroup::begin() {
  const bool broken = std::any_of(comms_->comm.begin(), comms_->comm.end(), [](ncclComm_t c) { return c == nullptr; });
  if (broken && world_.spans_processes())
    throw Error(fmt::format("tensor parallel, process {} of {}: the group lost its communicators in an earlier failure; "
                            "a group over processes forms once (through its rendezvous file): start every process again",
                            world_.process, world_.processes));
  if (broken) {
    abort_comms();
    make_comms();
  }
  stopped_ = false;
}

void NcclGroup::abort() { stopped_ = true; }

std::vector<double> NcclGroup::reduce_seconds() const { return seconds_; }

backend::World NcclGroup::world() const {
  if (world_.spans_processes()) return world_;
  backend::World one;
  one.ranks = ranks();
  return one;
}

std::vector<std::vector<std::byte>> NcclGroup::gather_processes(std::vector<std::byte> mine) {
  if (!world_.spans_processes()) return {std::move(mine)};
  const int n = ranks(), all = world_.ranks;
  const std::string what = "gathering the processes' observer calls";
  // Every rank sends one size (its process's on its first rank, 0 on the others).
  std::vector<std::unique_ptr<DeviceBytes>> sizes_out, sizes_in;
  for (int r = 0; r < n; ++r) {
    sizes_out.push_back(std::make_unique<DeviceBytes>(devices_[r], sizeof(std::int64_t), what));
    sizes_in.push_back(std::make_unique<DeviceBytes>(devices_[r], all * sizeof(std::int64_t), what));
    const std::int64_t size = r == 0 ? static_cast<std::int64_t>(mine.size()) : 0;
    check_cuda(cudaMemcpy(sizes_out[r]->data, &size, sizeof size, cudaMemcpyHostToDevice), what);
  }
  auto all_gather = [&](const std::vector<std::unique_ptr<DeviceBytes>>& out,
                        const std::vector<std::unique_ptr<DeviceBytes>>& in, std::size_t count, ncclDataType_t type) {
    ncclResult_t queued = ncclGroupStart();
    for (int r = 0; r < n && queued == ncclSuccess; ++r) {
      if (!comms_->comm[r]) throw Error(fmt::format("{}: rank {}'s communicator was aborted", what, first_rank() + r));
      cudaSetDevice(devices_[r]);
      queued = ncclAllGather(out[r]->data, in[r]->data, count, type, comms_->comm[r], comms_->streams[r]);
      if (queued == ncclInProgress) queued = ncclSuccess;
    }
    const ncclResult_t ended = ncclGroupEnd();
    if (queued != ncclSuccess || (ended != ncclSuccess && ended != ncclInProgress))
      throw Error(fmt::format("{}: ncclAllGather: {}", what, ncclGetErrorString(queued != ncclSuccess ? queued : ended)));
    wait_all(what);
  };
  all_gather(sizes_out, sizes_in, 1, ncclInt64);
  std::vector<std::int64_t> sizes(all);
  check_cuda(cudaSetDevice(devices_[0]), what);
  check_cuda(cudaMemcpy(sizes.data(), sizes_in[0]->data, all * sizeof(std::int64_t), cudaMemcpyDeviceToHost), what);
  const auto most = static_cast<std::size_t>(*std::max_element(sizes.begin(), sizes.end()));
  std::vector<std::vector<std::byte>> out(world_.processes);
  out[world_.process] = std::move(mine);
  if (most == 0) return out;
  std::vector<std::unique_ptr<DeviceBytes>> bytes_out, bytes_in;
  for (int r = 0; r < n; ++r) {
    bytes_out.push_back(std::make_unique<DeviceBytes>(devices_[r], most, what));
    bytes_in.push_back(std::make_unique<DeviceBytes>(devices_[r], all * most, what));
  }
  const auto& own = out[world_.process];
  check_cuda(cudaSetDevice(devices_[0]), what);
  check_cuda(cudaMemcpy(bytes_out[0]->data, own.data(), own.size(), cudaMemcpyHostToDevice), what);
  all_gather(bytes_out, bytes_in, most, ncclUint8);
  std::vector<std::byte> gathered(all * most);
  check_cuda(cudaSetDevice(devices_[0]), what);
  check_cuda(cudaMemcpy(gathered.data(), bytes_in[0]->data, gathered.size(), cudaMemcpyDeviceToHost), what);
  for (int p = 0; p < world_.processes; ++p) {
    if (p == world_.process) continue;
    const std::size_t at = static_cast<std::size_t>(p) * n * most;  // process p's first rank, p * n
    out[p].assign(gathered.begin() + at, gathered.begin() + at + sizes[p * n]);
  }
  return out;
}

void NcclGroup::all_reduce(int rank, int sequence, int layer, backend::Branch branch, float* values, std::size_t count,
                           void* stream_handle) {
  const int device = devices_[rank];
  const char* which = branch == backend::Branch::attention ? "attention" : "MLP";
  auto where = [&] {
    return fmt::format("tensor parallel, rank {} (device {}): the all-reduce of sequence {}, layer {}'s {} branch",
                       first_rank() + rank, device, sequence, layer, which);
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
  ncclResult_t queued = ncclAllReduce(values, values, count, ncclFloat32, ncclSum, comm, stream);
  // A non-blocking communicator (over processes) may still be queueing it: it is on the stream once that settles.
  const auto queueing = std::chrono::steady_clock::now();
  while (queued == ncclInProgress) {
    ncclCommGetAsyncError(comm, &queued);
    if (queued == ncclInProgress && std::chrono::steady_clock::now() - queueing > timeout_) {
      give_up();
      stopped_ = true;
      throw Error(fmt::format("{} was not queued within {:.1f} s: a peer is lost or stalled; the group was stopped",
                              where(), timeout_.count() / 1000.0));
    }
  }
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
