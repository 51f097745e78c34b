// Backend selection and the memory check (see engine.hpp).
#include "engine/engine.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#ifdef ROPESCOPE_HAVE_CUDA
#include "kernels/cuda_backend.hpp"
#include "kernels/device_info.hpp"
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

std::unique_ptr<backend::Backend> open_backend(const std::filesystem::path& model_dir, const OpenOptions& options) {
  const model::LoadOptions load = load_options(options);
#ifdef ROPESCOPE_HAVE_CUDA
  std::string why_none;
  const bool use_cuda = options.device != "cpu" && !kernels::cuda_devices(&why_none).empty();
  if (options.device == "cuda" && !use_cuda)
    throw ArgumentError("device", fmt::format("cuda: no usable CUDA device ({})", why_none));
  auto model = std::make_shared<const model::Model>(model::load_model(model_dir, load));
  if (use_cuda) {
    const auto missing = cuda::unsupported_features(*model);
    if (options.device == "cuda" || missing.empty()) return std::make_unique<cuda::CudaBackend>(model);
    auto cpu = std::make_unique<cpu::CpuBackend>(model);
    cpu->add_notice(fmt::format("device auto: running on the CPU: the CUDA backend does not implement yet: {}",
                                fmt::join(missing, "; ")));
    return cpu;
  }
#else
  if (options.device == "cuda")
    throw ArgumentError("device", "cuda: this build has no CUDA backend (built without nvcc); use cpu");
  auto model = std::make_shared<const model::Model>(model::load_model(model_dir, load));
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
