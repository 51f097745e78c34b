// The CUDA backend: the Backend interface (backend/backend.hpp) on one GPU,
// running the same decoder loop as the CPU backend (backend/decoder.hpp) for
// every block kind, norm kind, MLP kind, qk-norm, NoPE / local-RoPE layers,
// fused projections, multipliers and softcaps of model/architecture.hpp;
// what it cannot run is refused (unsupported_features).
// Weights are uploaded once in their stored dtype; matmuls run through cuBLAS
// (fp32 accumulation); activations are bf16 and the residual stream fp32;
// norms, RoPE keys, attention and MLP activations are the kernels of
// kernels/ops and kernels/forward_ops; the LM head and loss run in chunks of tokens, so T x V
// logits never exist at once. Attention observers get distance sums reduced
// on the device (no T x T matrix) when they ask for them, else score and
// probability blocks recomputed per head; query noise and head ablation as on
// the CPU. The precision path is spelled out by precision().
#pragma once

#include <memory>

#include "backend/backend.hpp"

namespace ropescope::cuda {

// The features of `model` (model/architecture.hpp) this backend does not
// implement yet, by name; empty when it runs the model exactly. The
// constructor refuses a model with any, so no GPU result ignores a feature.
std::vector<std::string> unsupported_features(const model::Model& model);

class CudaBackend : public backend::Backend {
 public:
  // Throws ArgumentError (with the CUDA runtime's reason) when `device` is not
  // usable, when the model has unsupported_features, or when its shapes are
  // outside what the kernels take.
  explicit CudaBackend(std::shared_ptr<const model::Model> model, int device = 0);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;
  std::string precision() const override;
  const model::Model& model() const override { return *model_; }
  std::vector<backend::ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                              const backend::ForwardOptions& options) override;
  std::uint64_t forward_bytes(long T, const backend::ForwardOptions& options) const override;
  std::vector<std::string> kernel_choices() const override;
  // {"forward_seconds": wall time of every forward so far (each ends synchronized)}.
  nlohmann::json statistics() const override;

 private:
  struct State;  // device buffers, cuBLAS handle, stream (cuda_backend.cpp)
  backend::ForwardResult forward_one(int sequence, const std::vector<std::int32_t>& tokens,
                                     const backend::ForwardOptions& options);

  std::shared_ptr<const model::Model> model_;
  std::unique_ptr<State> state_;
};

}  // namespace ropescope::cuda
