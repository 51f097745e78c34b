// Shared model options and backend selection (see model_options.hpp).
#include "cli/model_options.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#ifdef ROPESCOPE_HAVE_CUDA
#include "kernels/cuda_backend.hpp"
#include "kernels/device_info.hpp"
#endif

namespace ropescope::cli {

void add_model_options(CLI::App* cmd, ModelArgs& args) {
  cmd->add_option("model", args.model_dir, "HF model directory (config.json + *.safetensors)")->required();
  cmd->add_option("-t,--tokens", args.tokens_path, "token file (.npy of int32/int64/uint16/uint32, or raw)")->required();
  cmd->add_flag("--bytes", args.bytes, "treat the token file as raw bytes, one token each (byte-level models)");
  cmd->add_option("--format", args.token_format, "token file format: npy, raw or bytes (default: from --bytes / extension)");
  cmd->add_option("--dtype", args.raw_dtype, "integer type of a raw token file: uint16, uint32, int32, int64")
      ->capture_default_str();
  cmd->add_option("--variant", args.variant, "force the RoPE variant: rope, ec or eh (must agree with the checkpoint)");
  cmd->add_option("--device", args.device, "backend: cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--angles", args.angles, "RoPE angle precision: exact (float128 reduction) or hf (HF's float32)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args.quiet, "no progress on stderr");
}

namespace {

// The model's warnings and the backend's notices, on stderr unless --quiet
// (the sidecars record them either way).
std::unique_ptr<backend::Backend> announced(std::unique_ptr<backend::Backend> backend, bool quiet) {
  if (!quiet) {
    for (const auto& w : backend->model().warnings) fmt::print(stderr, "ropescope: warning: {}\n", w);
    for (const auto& n : backend->notices()) fmt::print(stderr, "ropescope: note: {}\n", n);
  }
  return backend;
}

}  // namespace

std::unique_ptr<backend::Backend> open_backend(const ModelArgs& args) {
  if (args.device != "auto" && args.device != "cpu" && args.device != "cuda")
    throw ArgumentError(fmt::format("--device '{}' is not one of cpu, cuda, auto", args.device));
  model::LoadOptions load;
  if (!args.variant.empty()) load.variant = model::parse_variant(args.variant);
#ifdef ROPESCOPE_HAVE_CUDA
  std::string why_none;
  const bool use_cuda = args.device != "cpu" && !kernels::cuda_devices(&why_none).empty();
  if (args.device == "cuda" && !use_cuda)
    throw ArgumentError(fmt::format("--device cuda: no usable CUDA device ({})", why_none));
  auto model = std::make_shared<const model::Model>(model::load_model(args.model_dir, load));
  if (use_cuda) {
    const auto missing = cuda::unsupported_features(*model);
    if (args.device == "cuda" || missing.empty())
      return announced(std::make_unique<cuda::CudaBackend>(model), args.quiet);
    auto cpu = std::make_unique<cpu::CpuBackend>(model);
    cpu->add_notice(fmt::format("--device auto: running on the CPU: the CUDA backend does not implement yet: {}",
                                fmt::join(missing, "; ")));
    return announced(std::move(cpu), args.quiet);
  }
#else
  if (args.device == "cuda")
    throw ArgumentError("--device cuda: this build has no CUDA backend (built without nvcc); use --device cpu");
  auto model = std::make_shared<const model::Model>(model::load_model(args.model_dir, load));
#endif
  return announced(std::make_unique<cpu::CpuBackend>(model), args.quiet);
}

std::vector<std::int32_t> load_input_tokens(const ModelArgs& args, int vocab_size) {
  io::TokenInput input;
  input.path = args.tokens_path;
  input.raw_dtype = args.raw_dtype;
  if (!args.token_format.empty()) input.format = io::parse_token_format(args.token_format);
  else if (args.bytes) input.format = io::TokenFormat::bytes;
  else if (input.path.extension() == ".npy") input.format = io::TokenFormat::npy;
  else input.format = io::TokenFormat::raw;
  if (args.bytes && input.format != io::TokenFormat::bytes)
    throw ArgumentError("--bytes contradicts --format " + args.token_format);
  return io::load_tokens(input, vocab_size);
}

backend::ForwardOptions base_forward_options(const ModelArgs& args) {
  backend::ForwardOptions o;
  if (args.angles == "exact") o.angles = model::AnglePrecision::exact;
  else if (args.angles == "hf") o.angles = model::AnglePrecision::hf_float32;
  else throw ArgumentError(fmt::format("--angles '{}' is not one of exact, hf", args.angles));
  return o;
}

}  // namespace ropescope::cli
