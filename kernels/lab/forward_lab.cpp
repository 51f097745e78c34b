// Whole-forward timing of the CUDA backend (kernels/cuda_backend.hpp): writes
// a random checkpoint of the paper's 376M RoPE++ EC shape (hidden 1024, 8
// layers, 8 q / 4 kv heads, d 128, MLP 3584, vocab 128256, bf16) unless the
// directory already holds one, then times Backend::forward (embedding to
// per-token NLL, host to host) on one random sequence of T tokens.
// Usage: forward_lab [DIR (default /tmp/ropescope_376m_ec)] [T (default 4096)] [REPS (default 20)]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

#include "kernels/cuda_backend.hpp"
#include "kernels/lab/random_checkpoint.hpp"
#include "model/weights.hpp"

namespace rs = ropescope;

int main(int argc, char** argv) {
  const std::filesystem::path dir = argc > 1 ? argv[1] : "/tmp/ropescope_376m_ec";
  const long T = argc > 2 ? std::stol(argv[2]) : 4096;
  const int reps = argc > 3 ? std::stoi(argv[3]) : 20;
  const rs::kernels::lab::RandomModelShape shape;  // the 376M EC defaults
  if (!std::filesystem::exists(dir / "model.safetensors")) {
    const auto t0 = std::chrono::steady_clock::now();
    rs::kernels::lab::write_random_checkpoint(dir, shape);
    fmt::print("wrote {} in {:.1f} s\n", dir.string(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  auto model = std::make_shared<const rs::model::Model>(rs::model::load_model(dir));
  const auto counts = rs::model::count_parameters(*model);
  auto t_up = std::chrono::steady_clock::now();
  rs::cuda::CudaBackend backend(model);
  fmt::print("{} parameters, uploaded in {:.2f} s\n{}\n", counts.total(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_up).count(), backend.precision());

  std::mt19937 rng(11);
  std::uniform_int_distribution<std::int32_t> id(0, model->config.vocab_size - 1);
  std::vector<std::vector<std::int32_t>> tokens(1, std::vector<std::int32_t>(T));
  for (auto& t : tokens[0]) t = id(rng);
  const rs::backend::ForwardOptions options;
  double mean_nll = 0;
  for (int i = 0; i < 3; ++i) {  // warm-ups: workspace, RoPE table, cuBLAS heuristics
    const auto r = backend.forward(tokens, options);
    mean_nll = std::accumulate(r[0].nll.begin(), r[0].nll.end(), 0.0) / static_cast<double>(r[0].nll.size());
  }
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    backend.forward(tokens, options);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  // Matmul FLOPs (2 per multiply-add): q, k, v, o, MLP per layer, LM head; attention 4 T^2 d A / 2 per layer.
  const auto& c = model->config;
  const auto& L = model->layout;
  const double per_token = 2.0 * c.num_hidden_layers *
                               (static_cast<double>(c.hidden_size) * (L.q_rows() + 2 * L.kv_rows() + L.o_columns()) +
                                3.0 * c.hidden_size * c.intermediate_size) +
                           2.0 * c.hidden_size * c.vocab_size;
  const double flops = per_token * T + c.num_hidden_layers * 2.0 * T * T * L.head_dim * L.attention_heads;
  fmt::print("T = {}: median {:.3f} ms (min {:.3f}, max {:.3f}) over {} forwards: {:.0f} tokens/s, {:.1f} TFLOP/s; "
             "mean NLL {:.4f} (ln V = {:.4f})\n",
             T, median, ms.front(), ms.back(), reps, T / (median * 1e-3), flops / (median * 1e-3) / 1e12, mean_nll,
             std::log(static_cast<double>(c.vocab_size)));
  return 0;
}
