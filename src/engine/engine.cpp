// Backend selection and the memory check (see engine.hpp).
#include "engine/engine.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "backend/data_parallel.hpp"
#include "backend/tensor_parallel.hpp"
#include "model/tensor_parallel.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#ifdef ROPESCOPE_HAVE_CUDA
#include "kernels/cuda_backend.hpp"
#include "kernels/device_info.hpp"
#ifdef ROPESCOPE_HAVE_NCCL
#include "kernels/nccl_group.hpp"
#endif
#endif

namespace ropescope::engine {

namespace {

model::LoadOptions load_options(const OpenOptions& options) {
  if (options.device != "auto" && options.device != "cpu" && options.device != "cuda")
    throw ArgumentError("device", fmt::format("'{}' is not one of cpu, cuda, auto", options.device));
  model::LoadOptions load;
  if (!options.variant.empty()) {
    try {
      load.variant = model::parse_variant(options.variant);
    } catch (const ArgumentError&) {
      throw ArgumentError("variant", fmt::format("'{}' is not one of rope, ec (imag2), eh (imag1)", options.variant));
    }
  }
  return load;
}

}  // namespace

std::vector<int> parse_device_list(const std::string& text, int available) {
  std::vector<int> list;
  if (text.empty()) return list;
  if (available < 1) throw ArgumentError("devices", fmt::format("'{}': no CUDA device is present", text));
  if (text == "all") {
    for (int d = 0; d < available; ++d) list.push_back(d);
    return list;
  }
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    int d = -1;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), d);
    if (item.empty() || ec != std::errc() || end != item.data() + item.size() || d < 0)
      throw ArgumentError("devices", fmt::format("'{}': '{}' is not a device number (expected all, or 0,1,...)", text, item));
    if (d >= available)
      throw ArgumentError("devices", fmt::format("'{}': device {} does not exist; {} CUDA device{} present (0..{})", text,
                                                 d, available, available == 1 ? " is" : "s are", available - 1));
    if (std::find(list.begin(), list.end(), d) != list.end())
      throw ArgumentError("devices", fmt::format("'{}': device {} is named twice", text, d));
    list.push_back(d);
    at = comma + 1;
  }
  return list;
}

namespace {

// How long a rank waits for one all-reduce (its own branch's kernels
// included) before it declares a peer lost: far above any branch's time.
[[maybe_unused]] constexpr std::chrono::milliseconds kCollectiveTimeout{600'000};

#ifdef ROPESCOPE_HAVE_CUDA
// CUDA ranks over shards of one model on `devices`, summed by NCCL: all N of
// them, or over processes this process's N / P (world).
std::unique_ptr<backend::Backend> cuda_tensor_parallel(std::shared_ptr<const model::Model> model,
                                                       const std::vector<int>& devices, const backend::World& world = {}) {
#ifdef ROPESCOPE_HAVE_NCCL
  const int local = static_cast<int>(devices.size());
  const int all = world.spans_processes() ? world.ranks : local, first = world.spans_processes() ? world.process * local : 0;
  std::vector<std::unique_ptr<backend::Backend>> ranks;
  for (int r = 0; r < local; ++r)
    ranks.push_back(std::make_unique<cuda::CudaBackend>(
        std::make_shared<const model::Model>(model::shard_model(*model, first + r, all)), devices[r]));
  auto group = world.spans_processes() ? std::make_unique<cuda::NcclGroup>(devices, kCollectiveTimeout, world)
                                       : std::make_unique<cuda::NcclGroup>(devices, kCollectiveTimeout);
  return std::make_unique<backend::TensorParallelBackend>(std::move(model), std::move(ranks), std::move(group));
#else
  (void)model, (void)world;
  throw ArgumentError("tensor-parallel",
                      fmt::format("over {} GPUs needs NCCL, and this build has none (configure with NCCL_ROOT set to "
                                  "an NCCL install); --device cpu runs the split on CPU ranks",
                                  devices.size()));
#endif
}
#endif

// N CPU ranks over shards of one model.
std::unique_ptr<backend::Backend> cpu_tensor_parallel(std::shared_ptr<const model::Model> model, int ranks) {
  std::vector<std::unique_ptr<backend::Backend>> shards;
  for (int r = 0; r < ranks; ++r)
    shards.push_back(
        std::make_unique<cpu::CpuBackend>(std::make_shared<const model::Model>(model::shard_model(*model, r, ranks))));
  return std::make_unique<backend::TensorParallelBackend>(std::move(model), std::move(shards));
}

}  // namespace

std::uint64_t weight_bytes(const model::Model& model) {
  const io::Dtype stored = model.weights.embed_tokens.dtype();
  const std::uint64_t element = stored == io::Dtype::F32 || stored == io::Dtype::F64 ? 4 : 2;  // F64 held as f32
  return model.parameters.total() * element;
}

int automatic_tensor_parallel(const model::Model& model, const std::vector<std::uint64_t>& device_memory) {
  constexpr double kUsable = 0.9;  // of a device's memory, for weights; activations are checked per forward
  auto fits = [&](std::uint64_t bytes, std::size_t devices) {
    for (std::size_t d = 0; d < devices; ++d)
      if (bytes > kUsable * static_cast<double>(device_memory[d])) return false;
    return true;
  };
  const std::uint64_t whole = weight_bytes(model);
  if (device_memory.empty() || fits(whole, 1)) return 0;
  constexpr double GiB = 1073741824.0;
  std::vector<std::string> tried;
  for (int n = 2; n <= static_cast<int>(device_memory.size()); ++n) {
    try {
      model::plan_tensor_parallel(model, 0, n);
    } catch (const ArgumentError&) {
      tried.push_back(fmt::format("{}: the heads or MLP rows do not divide", n));
      continue;
    }
    std::uint64_t most = 0;
    for (int r = 0; r < n; ++r) most = std::max(most, weight_bytes(model::shard_model(model, r, n)));
    if (fits(most, static_cast<std::size_t>(n))) return n;
    tried.push_back(fmt::format("{}: {:.1f} GiB a GPU", n, most / GiB));
  }
  throw ArgumentError("tensor-parallel",
                      fmt::format("{}: its weights ({:.1f} GiB) fit neither one GPU ({:.1f} GiB, {:.0f} % for weights) "
                                  "nor a split over the {} present ({})",
                                  model.directory.string(), whole / GiB, device_memory.front() / GiB, 100 * kUsable,
                                  device_memory.size(), tried.empty() ? "no other device" : fmt::format("{}", fmt::join(tried, "; "))));
}

std::unique_ptr<backend::Backend> open_backend(const std::filesystem::path& model_dir, const OpenOptions& options) {
  const model::LoadOptions load = load_options(options);
  if (!options.devices.empty() && options.device == "cpu")
    throw ArgumentError("devices", "names CUDA devices; device cpu takes none (the CPU backend uses every core)");
  if (options.tensor_parallel < 0)
    throw ArgumentError("tensor-parallel", fmt::format("{} ranks (0 or 1: no split; N >= 2)", options.tensor_parallel));
  const bool split = options.tensor_parallel >= 2;
  backend::World world = options.world;
  world.ranks = options.tensor_parallel;
  if (world.spans_processes() && !split)
    throw ArgumentError("tensor-parallel", fmt::format("a group over {} processes splits the model: give the ranks of "
                                                       "all processes together, N >= 2",
                                                       world.processes));
  backend::check_world(world);
  if (world.spans_processes() && options.device == "cpu")
    throw ArgumentError("world", "a tensor-parallel group over processes runs on CUDA ranks through NCCL; device cpu "
                                 "runs the split in one process (--tensor-parallel N without --world)");
#ifdef ROPESCOPE_HAVE_CUDA
  std::string why_none;  // the CUDA runtime is asked only when the device may be CUDA
  const std::vector<kernels::CudaDevice> cuda_present =
      options.device == "cpu" ? std::vector<kernels::CudaDevice>{} : kernels::cuda_devices(&why_none);
  const int cuda_count = static_cast<int>(cuda_present.size());
  const std::vector<int> listed = parse_device_list(options.devices, cuda_count);  // empty without devices
  const bool use_cuda = cuda_count > 0;
  if (options.device == "cuda" && !use_cuda)
    throw ArgumentError("device", fmt::format("cuda: no usable CUDA device ({})", why_none));
  if (world.spans_processes()) {
    if (!use_cuda) throw ArgumentError("world", fmt::format("a group over processes needs CUDA devices: {}", why_none));
    // This process's ranks: --devices when given (as many), else devices 0 .. N/P - 1.
    const int local = world.ranks / world.processes;
    std::vector<int> devices = listed;
    if (devices.empty())
      for (int d = 0; d < local; ++d) devices.push_back(d);
    if (static_cast<int>(devices.size()) != local || cuda_count < local)
      throw ArgumentError("tensor-parallel", fmt::format("{} ranks over {} processes: {} CUDA devices for each; this "
                                                         "process has {} listed, {} present",
                                                         world.ranks, world.processes, local, listed.size(), cuda_count));
    return cuda_tensor_parallel(std::make_shared<const model::Model>(model::load_model(model_dir, load)), devices, world);
  }
  if (split && (use_cuda || !listed.empty())) {
    // The ranks' devices: --devices when given (as many as ranks), else 0 .. N-1.
    const int n = options.tensor_parallel;
    std::vector<int> devices = listed;
    if (devices.empty())
      for (int d = 0; d < n; ++d) devices.push_back(d);
    if (static_cast<int>(devices.size()) != n || cuda_count < n)
      throw ArgumentError("tensor-parallel", fmt::format("{} ranks need {} CUDA devices: {} listed, {} present", n, n,
                                                         listed.size(), cuda_count));
    return cuda_tensor_parallel(std::make_shared<const model::Model>(model::load_model(model_dir, load)), devices);
  }
  if (split && !options.devices.empty())
    throw ArgumentError("tensor-parallel", "with --devices needs the CUDA backend");
  auto model = std::make_shared<const model::Model>(model::load_model(model_dir, load));
  if (split) return cpu_tensor_parallel(std::move(model), options.tensor_parallel);
  // Listed devices: the CUDA backend on each (its constructor refuses what it does not implement).
  if (listed.size() == 1) return std::make_unique<cuda::CudaBackend>(model, listed.front());
  if (listed.size() > 1) {
    std::vector<std::unique_ptr<backend::Backend>> replicas;
    for (int d : listed) replicas.push_back(std::make_unique<cuda::CudaBackend>(model, d));
    return std::make_unique<backend::DataParallelBackend>(std::move(replicas));
  }
  if (use_cuda) {
    const auto missing = cuda::unsupported_features(*model);
    if (options.device == "cuda" || missing.empty()) {
      // Weights too large for one GPU: split over the fewest that hold them (device auto: else the CPU).
      std::vector<std::uint64_t> memory;
      for (const auto& d : cuda_present) memory.push_back(d.memory_bytes);
      try {
        if (const int n = automatic_tensor_parallel(*model, memory); n >= 2) {
          std::vector<int> devices(n);
          for (int d = 0; d < n; ++d) devices[d] = d;
          auto split_backend = cuda_tensor_parallel(model, devices);
          split_backend->add_notice(fmt::format("the weights ({:.1f} GiB) do not fit one GPU: split over {} GPUs "
                                                "(tensor parallel)",
                                                weight_bytes(*model) / 1073741824.0, n));
          return split_backend;
        }
      } catch (const ArgumentError& e) {
        if (options.device == "cuda") throw;
        auto cpu = std::make_unique<cpu::CpuBackend>(model);
        cpu->add_notice(fmt::format("device auto: running on the CPU: {}", e.what()));
        return cpu;
      }
      return std::make_unique<cuda::CudaBackend>(model);
    }
    auto cpu = std::make_unique<cpu::CpuBackend>(model);
    cpu->add_notice(fmt::format("device auto: running on the CPU: the CUDA backend does not implement yet: {}",
                                fmt::join(missing, "; ")));
    return cpu;
  }
#else
  if (world.spans_processes())
    throw ArgumentError("world", "a group over processes runs on CUDA ranks: this build has no CUDA backend");
  if (options.device == "cuda" || !options.devices.empty())
    throw ArgumentError(options.device == "cuda" ? "device" : "devices",
                        "cuda: this build has no CUDA backend (built without nvcc); use cpu");
  auto model = std::make_shared<const model::Model>(model::load_model(model_dir, load));
  if (split) return cpu_tensor_parallel(std::move(model), options.tensor_parallel);
#endif
  return std::make_unique<cpu::CpuBackend>(model);
}

std::vector<std::string> available_devices() {
  std::vector<std::string> devices{"cpu"};
#ifdef ROPESCOPE_HAVE_CUDA
  if (!kernels::cuda_devices().empty()) devices.push_back("cuda");
#endif
  return devices;
}

std::string describe_cuda_backend() {
#ifdef ROPESCOPE_HAVE_CUDA
  return "compiled in; " + kernels::describe_cuda_devices();
#else
  return "not compiled in (configure with -DROPESCOPE_CUDA=ON and nvcc on PATH)";
#endif
}

}  // namespace ropescope::engine
