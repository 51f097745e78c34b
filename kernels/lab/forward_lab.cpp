// Whole-forward timing of the CUDA backend (kernels/cuda_backend.hpp) on a
// random RoPE++ EC checkpoint of one of the paper's shapes (written once into
// DIR): Backend::forward from tokens in to per-token NLL out, host to host,
// on one random sequence of T tokens; with --profile also the forward that
// produces exact distance profiles (ProfileObserver with the defaults of
// `ropescope profile`: 1024 exact distances, 16 log bins per decade, mass
// beyond 64 / 256 / 1024; no LM head, as the CLI runs it), checked for
// sum_t sum_s p = T per head.
// With --check-cpu, the first length is also run through the CPU backend
// (float32 reference) and per-token NLL and every layer's residual stream are
// compared, worst element named with its layer and position.
// With --dir naming an existing HF checkpoint (config.json present), that
// model is timed instead, whatever its architecture (bench/gpu_8b.py's
// transformers-written 8B-class checkpoints); the load to the GPU is timed
// and reported in GB/s of stored weights.
// Usage: forward_lab [--shape 376m|776m] [--dir DIR] [--tokens T1,T2,..] [--reps N] [--warmups N] [--profile]
//                    [--check-cpu]
// Prints one line per measurement, starting "load", "forward" or "profile",
// that bench/gpu_targets.py and bench/gpu_8b.py read; device memory in use
// after each run (the backend's weights and workspace) is printed as used_gib.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "analysis/distance_profile.hpp"
#include "cpu/cpu_backend.hpp"
#include "kernels/cuda_backend.hpp"
#include "kernels/lab/random_checkpoint.hpp"
#include "model/weights.hpp"

namespace rs = ropescope;

namespace {

rs::kernels::lab::RandomModelShape shape_named(const std::string& name) {
  rs::kernels::lab::RandomModelShape s;  // the 376M EC defaults
  if (name == "776m") {
    s.hidden = 1536;
    s.layers = 12;
    s.heads = 12;
    s.kv_heads = 6;
    s.intermediate = 5376;
  } else if (name != "376m") {
    throw std::invalid_argument("--shape must be 376m or 776m, got " + name);
  }
  return s;
}

// Median wall time (ms) of `reps` calls after `warmups`.
template <class F>
double median_ms(int warmups, int reps, F&& f) {
  for (int i = 0; i < warmups; ++i) f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device memory in use (GiB): total minus free, as cudaMemGetInfo reports it.
double used_gib() {
  std::size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return -1;
  return static_cast<double>(total_bytes - free_bytes) / 1073741824.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape_name = "376m", dir;
  std::vector<long> lengths{4096};
  int reps = 10, warmups = 2;  // profile runs: reps / 2 after min(warmups, 1)
  bool profile = false, check_cpu = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--shape") {
      shape_name = value();
    } else if (arg == "--dir") {
      dir = value();
    } else if (arg == "--tokens") {
      lengths.clear();
      std::string list = value();
      for (std::size_t p = 0; p <= list.size();) {
        const std::size_t q = std::min(list.find(',', p), list.size());
        lengths.push_back(std::stol(list.substr(p, q - p)));
        p = q + 1;
      }
    } else if (arg == "--reps") {
      reps = std::stoi(value());
    } else if (arg == "--warmups") {
      warmups = std::stoi(value());
    } else if (arg == "--profile") {
      profile = true;
    } else if (arg == "--check-cpu") {
      check_cpu = true;
    } else {
      throw std::invalid_argument("unknown argument " + arg);
    }
  }
  const std::filesystem::path path = dir.empty() ? "/tmp/ropescope_" + shape_name + "_ec" : dir;
  if (!std::filesystem::exists(path / "config.json")) {
    const auto t0 = std::chrono::steady_clock::now();
    rs::kernels::lab::write_random_checkpoint(path, shape_named(shape_name));
    fmt::print("wrote {} in {:.1f} s\n", path.string(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  } else if (!dir.empty()) {
    shape_name = path.filename().string();
  }
  const auto load0 = std::chrono::steady_clock::now();
  auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(path));
  rs::cuda::CudaBackend backend(model);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load0).count();
  const auto counts = rs::model::count_parameters(*model);
  std::uintmax_t stored = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path))
    if (entry.path().extension() == ".safetensors") stored += entry.file_size();
  fmt::print("{}: {} parameters\n{}\n", shape_name, counts.total(), backend.precision());
  fmt::print("load shape={} seconds={:.2f} bytes={} gb_per_s={:.2f} used_gib={:.2f}\n", shape_name, load_s, stored,
             stored / load_s / 1e9, used_gib());
  const auto& c = model->config;
  const auto& L = model->layout;

  for (const long T : lengths) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<std::int32_t> id(0, c.vocab_size - 1);
    std::vector<std::vector<std::int32_t>> tokens(1, std::vector<std::int32_t>(T));
    for (auto& t : tokens[0]) t = id(rng);
    if (check_cpu && T == lengths.front()) {
      rs::backend::ForwardOptions keep;
      keep.keep_hidden = true;
      const auto t0 = std::chrono::steady_clock::now();
      const auto cpu = rs::cpu::CpuBackend(model).forward(tokens, keep)[0];
      const double cpu_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const auto gpu = backend.forward(tokens, keep)[0];
      double nll_max = 0, nll_mean = 0;
      long nll_at = 0;
      for (std::size_t t = 0; t < cpu.nll.size(); ++t) {
        const double diff = std::abs(gpu.nll[t] - cpu.nll[t]);
        nll_mean += diff / static_cast<double>(cpu.nll.size());
        if (diff > nll_max) nll_max = diff, nll_at = static_cast<long>(t);
      }
      fmt::print("check_cpu T={} cpu_s={:.1f} nll_max_abs_diff={:.3e} at position {} (cpu {:.5f}, cuda {:.5f}) "
                 "nll_mean_abs_diff={:.3e}\n",
                 T, cpu_s, nll_max, nll_at, cpu.nll[nll_at], gpu.nll[nll_at], nll_mean);
      for (std::size_t l = 0; l < cpu.hidden.size(); ++l) {
        const auto& r = cpu.hidden[l];
        const auto& g = gpu.hidden[l];
        Eigen::Index t, i;
        const double worst = (g - r).cwiseAbs().maxCoeff(&t, &i);
        fmt::print("check_cpu layer={} hidden_rel_norm={:.3e} worst_abs={:.3e} at position {} feature {} (cpu {:.4f}, "
                   "cuda {:.4f}; layer max |x| {:.2f})\n",
                   l, (g - r).norm() / r.norm(), worst, t, i, r(t, i), g(t, i), r.cwiseAbs().maxCoeff());
      }
    }
    const rs::backend::ForwardOptions options;
    double mean_nll = 0;
    const double forward_ms = median_ms(warmups, reps, [&] {
      const auto r = backend.forward(tokens, options);
      mean_nll = std::accumulate(r[0].nll.begin(), r[0].nll.end(), 0.0) / static_cast<double>(r[0].nll.size());
    });
    // Matmul FLOPs (2 per multiply-add): q, k, v, o, MLP per layer, LM head; causal attention 2 T^2 d A per layer.
    const double per_token = 2.0 * c.num_hidden_layers *
                                 (static_cast<double>(c.hidden_size) * (L.q_rows() + 2 * L.kv_rows() + L.o_columns()) +
                                  3.0 * c.hidden_size * c.intermediate_size) +
                             2.0 * c.hidden_size * c.vocab_size;
    const double flops = per_token * T + c.num_hidden_layers * 2.0 * T * T * L.head_dim * L.attention_heads;
    fmt::print("forward shape={} T={} ms={:.3f} tokens_per_s={:.0f} tflops={:.1f} mean_nll={:.4f} used_gib={:.2f}\n",
               shape_name, T, forward_ms, T / (forward_ms * 1e-3), flops / (forward_ms * 1e-3) / 1e12, mean_nll,
               used_gib());
    if (!profile) continue;

    const auto bins = rs::analysis::DistanceBins::log_spaced(std::min(1024L, T), T - 1, 16);
    const std::vector<long> beyond{64, 256, 1024};
    std::unique_ptr<rs::analysis::ProfileObserver> observer;
    rs::backend::ForwardOptions with_profile;
    with_profile.loss = false;  // as `ropescope profile` runs it
    const double profile_ms = median_ms(std::min(warmups, 1), std::max(1, reps / 2), [&] {
      observer = std::make_unique<rs::analysis::ProfileObserver>(bins, beyond, c.num_hidden_layers, L.attention_heads);
      with_profile.observer = observer.get();
      backend.forward(tokens, with_profile);
    });
    double worst_mass = 0, mean_distance = 0, entropy = 0;
    for (int l = 0; l < c.num_hidden_layers; ++l)
      for (int a = 0; a < L.attention_heads; ++a) {
        const auto p = observer->result(l, a);
        const double total = std::accumulate(p.prob_sum.begin(), p.prob_sum.end(), 0.0);
        worst_mass = std::max(worst_mass, std::abs(total / static_cast<double>(T) - 1.0));
        mean_distance += p.mean_distance() / (c.num_hidden_layers * L.attention_heads);
        entropy += p.entropy() / (c.num_hidden_layers * L.attention_heads);
      }
    fmt::print("profile shape={} T={} ms={:.3f} over_forward={:.3f} bins={} worst_mass_error={:.2e} "
               "mean_distance={:.1f} entropy={:.3f} used_gib={:.2f}\n",
               shape_name, T, profile_ms, profile_ms / forward_ms, bins.size(), worst_mass, mean_distance, entropy,
               used_gib());
    const auto choices = backend.kernel_choices();
    if (!choices.empty()) fmt::print("kernels {}\n", choices.front());
  }
  return 0;
}
