// CPU forward throughput (tokens/s) of the Eigen reference backend against
// PyTorch CPU on the same model and input length, in the same run.
//
//   bench_forward [--threads N] [--repeats N] [--tokens T1,T2,...] [--model DIR]
//                 [--baseline reference|transformers] [--python PYTHON]
//
// --baseline transformers times HF transformers' own model class instead
// (bench/torch_arch_cpu_baseline.py: float32, SDPA where the class supports
// it, else eager; any family), run with --python (default python3, which then
// needs tests/reference/requirements-oracle.txt); both sides then report their
// best run, as that script does.
// Without --model it writes the benchmark model (RoPE++ EC, hidden 256, 4
// layers, 4 q / 2 kv heads, d 64, MLP 768, vocab 256: ~3.5 M parameters) with
// bench/torch_forward_baseline.py --make-model into a temporary directory.
// The PyTorch side runs bench/torch_forward_baseline.py (float32, SDPA
// attention, torch.set_num_threads(N)); both time the full forward with the
// next-token loss, median of the timed runs after one warm-up.
#include <fmt/format.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cpu/cpu_backend.hpp"

namespace {

std::string run_capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
  if (pclose(pipe) != 0) throw std::runtime_error("failed: " + command + "\n" + out);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, repeats = 3;
  std::vector<long> lengths = {512, 4096};
  std::string model_dir, baseline = "reference", python = "python3";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--threads") threads = std::stoi(value);
    else if (flag == "--repeats") repeats = std::stoi(value);
    else if (flag == "--model") model_dir = value;
    else if (flag == "--baseline") baseline = value;
    else if (flag == "--python") python = value;
    else if (flag == "--tokens") {
      lengths.clear();
      for (std::size_t p = 0; p < value.size();) {
        std::size_t q = value.find(',', p);
        lengths.push_back(std::stol(value.substr(p, q - p)));
        p = q == std::string::npos ? value.size() : q + 1;
      }
    } else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  if (baseline != "reference" && baseline != "transformers") {
    fmt::print(stderr, "--baseline must be reference or transformers\n");
    return 2;
  }
  const bool hf = baseline == "transformers";
  const std::string script = std::string(ROPESCOPE_SOURCE_DIR) + "/bench/torch_forward_baseline.py";
  const std::string hf_script = std::string(ROPESCOPE_SOURCE_DIR) + "/bench/torch_arch_cpu_baseline.py";
  std::filesystem::path temp;
  if (model_dir.empty()) {
    temp = std::filesystem::temp_directory_path() / fmt::format("ropescope-bench-model-{}", getpid());
    run_capture(fmt::format("{} {} --make-model {}", python, script, temp.string()));
    model_dir = temp.string();
  }
  omp_set_num_threads(threads);
  Eigen::setNbThreads(threads);

  auto model = std::make_shared<const ropescope::model::Model>(ropescope::model::load_model(model_dir));
  ropescope::cpu::CpuBackend backend(model);
  fmt::print("model {}: {} {} layers, hidden {}, variant {}, {} threads, baseline {}\n", model_dir,
             model->config.arch.family, model->config.num_hidden_layers, model->config.hidden_size,
             ropescope::model::to_string(model->layout.variant), threads, hf ? "transformers (best run)" : "reference (median run)");
  fmt::print("{:>7} {:>16} {:>16} {:>14}\n", "T", "ropescope tok/s", hf ? "transformers" : "PyTorch tok/s", "ratio (ours/pt)");
  for (long T : lengths) {
    const std::string command =
        hf ? fmt::format("{} {} {} --tokens {} --threads {} --repeat {}", python, hf_script, model_dir, T, threads, repeats)
           : fmt::format("{} {} {} --tokens {} --threads {} --repeats {}", python, script, model_dir, T, threads, repeats);
    auto reference = nlohmann::json::parse(run_capture(command));
    std::mt19937 rng(0);
    std::vector<std::int32_t> tokens(T);
    for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % model->config.vocab_size);
    backend.forward({tokens}, {});  // warm-up (also builds the RoPE table)
    std::vector<double> seconds;
    for (int r = 0; r < repeats; ++r) {
      auto start = std::chrono::steady_clock::now();
      backend.forward({tokens}, {});
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double ours = T / (hf ? seconds.front() : seconds[seconds.size() / 2]);
    const double theirs = reference["tokens_per_s"].get<double>();
    fmt::print("{:>7} {:>16.0f} {:>16.0f} {:>14.2f}\n", T, ours, theirs, ours / theirs);
  }
  if (!temp.empty()) std::filesystem::remove_all(temp);
  return 0;
}
