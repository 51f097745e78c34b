// Opening a model on a backend: the one place that turns a device name (cpu,
// cuda, auto) into a Backend, for every front end (the CLI, the Python module,
// a second program).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/rendezvous.hpp"

namespace ropescope::engine {

struct OpenOptions {
  // cpu | cuda | auto. auto: CUDA when this build has it, a device is present
  // and the backend implements every feature of the model; else the CPU, with
  // a notice saying why (Backend::notices).
  std::string device = "auto";
  // rope | ec (imag2) | eh (imag1), forced; must agree with the checkpoint.
  // Empty: from config.json and the weights' shapes.
  std::string variant;
  // CUDA devices, "all" or numbers "0,1,...": two or more make a data-parallel
  // backend (backend/data_parallel.hpp), one a CUDA backend on that device.
  // Empty: one backend as `device` says. Needs device cuda or auto.
  std::string devices;
  // Ranks of a tensor-parallel split (backend/tensor_parallel.hpp): 0 or 1
  // none (on CUDA: unless the weights do not fit one GPU, automatic_tensor_parallel);
  // N >= 2 splits heads and MLP rows over N ranks: N CUDA devices (`devices`,
  // or 0 .. N-1) summed by NCCL, in a build with NCCL; on device cpu N CPU
  // ranks sharing the cores (the split's reference, not a speed-up).
  int tensor_parallel = 0;
  // A tensor-parallel group over processes (and hosts): this process is
  // world.process of world.processes, all started with the same command and
  // rendezvous file (backend/rendezvous.hpp). It holds tensor_parallel /
  // processes of the ranks, on `devices` (as many) or CUDA devices 0, 1, ...
  // (world.ranks is set from tensor_parallel.) Needs CUDA and NCCL.
  backend::World world;
};

// Loads the HF model directory `model_dir` (config.json + *.safetensors) and
// creates the backend `options.device` names. Throws ArgumentError naming the
// parameter ("device", "variant") for a value that is not one of the above or a
// device this build or machine cannot provide; FormatError for a malformed checkpoint.
std::unique_ptr<backend::Backend> open_backend(const std::filesystem::path& model_dir, const OpenOptions& options = {});

// The bytes a CUDA backend holds for `model`'s weights: its parameters in
// their stored dtype (F64 held as f32).
std::uint64_t weight_bytes(const model::Model& model);

// The ranks open_backend splits a model over on CUDA when none are asked
// for: 0 when its weights take at most 90 % of device 0's memory; else the
// fewest N >= 2 of the devices (memory in bytes, device order) whose shards
// (model/tensor_parallel.hpp) fit each of devices 0 .. N-1 so. Throws
// ArgumentError naming the sizes when no split fits (a model that does not
// fit even when split).
int automatic_tensor_parallel(const model::Model& model, const std::vector<std::uint64_t>& device_memory);

// The device numbers `text` names ("all", or numbers "0,2" without repeats)
// among `available` CUDA devices; empty for an empty text. Throws
// ArgumentError("devices", ...) naming a device that does not exist.
std::vector<int> parse_device_list(const std::string& text, int available);

// The devices open_backend can use on this machine now: "cpu", then "cuda"
// when this build has the CUDA backend and a usable device is present.
std::vector<std::string> available_devices();

// One line for humans on the CUDA backend: "compiled in; 1 device: NVIDIA H200
// (sm_90, 139.8 GiB)", "compiled in; no device (reason)" or "not compiled in (...)".
std::string describe_cuda_backend();

}  // namespace ropescope::engine
