// The CPU reference backend: the trusted rung of the ladder. A readable
// forward pass of every architecture model/architecture.hpp describes (RoPE,
// RoPE++ EC and EH on the Llama layout) in Eigen, float32 storage and matmuls,
// float64 where precision demands it (RoPE angles, norm statistics, softmax
// sums, log-sum-exp of the logits). The layer loop is backend/decoder.hpp's;
// this file supplies its operations. Attention runs in blocks of queries,
// never as a T x T matrix for all heads at once.
#pragma once

#include <memory>
#include <mutex>

#include "backend/backend.hpp"

namespace ropescope::cpu {

struct CpuOptions {
  int query_block = 128;  // queries per attention block (memory: block x T floats per head in flight)
};

class CpuBackend : public backend::Backend {
 public:
  explicit CpuBackend(std::shared_ptr<const model::Model> model, CpuOptions options = {});

  std::string name() const override { return "cpu"; }
  std::string precision() const override;
  const model::Model& model() const override { return *model_; }
  std::vector<backend::ForwardResult> forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                              const backend::ForwardOptions& options) override;
  std::uint64_t forward_bytes(long T, const backend::ForwardOptions& options) const override;
  std::vector<std::string> kernel_choices() const override;
  // Throws ArgumentError, naming the size and the limit that applies, when a
  // context of T tokens needs more than the host memory available
  // (forward_bytes against core/memory.hpp's available_memory). forward()
  // calls it for its longest sequence before allocating anything.
  void check_memory(long T, const backend::ForwardOptions& options) const override;

 private:
  struct Norm {
    Eigen::VectorXf weight, bias;  // empty when the slot has no norm; bias empty without one
  };
  struct Layer {
    Norm attn_norm, post_attn_norm, mlp_norm, post_mlp_norm;
    backend::Matrix q, k, v, o, gate, up, down;  // [out, in], float32; gate empty for a plain MLP
    Eigen::VectorXf q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;  // empty when absent
    Eigen::VectorXf q_norm, k_norm;  // qk-norm weights, empty when absent
  };
  struct LayerOps;  // backend/decoder.hpp's operations for one sequence (cpu_backend.cpp)
  // The RoPE tables of one forward: rope[l] for layer l, nullptr on NoPE layers.
  struct LayerTables {
    std::shared_ptr<const model::RopeTable> global, local;
    const model::RopeTable* of(const model::Architecture& arch, int layer) const;
  };

  backend::ForwardResult forward_one(int sequence, const std::vector<std::int32_t>& tokens,
                                     const backend::ForwardOptions& options);
  backend::Matrix attention(int sequence, int layer, const backend::Matrix& x, const model::RopeTable* rope,
                            const backend::ForwardOptions& options) const;
  backend::Matrix mlp(const Layer& layer, const backend::Matrix& x) const;
  backend::Matrix norm(const backend::Matrix& x, const Norm& weights, const model::NormSpec& spec) const;
  std::shared_ptr<const model::RopeTable> rope_table(const theory::RopeSpec& spec, long T,
                                                     const backend::ForwardOptions& options);

  std::shared_ptr<const model::Model> model_;
  CpuOptions options_;
  backend::Matrix embed_, lm_head_;
  Norm final_norm_;
  std::vector<Layer> layers_;
  struct CachedRope {
    model::RopeTableKey key;
    std::shared_ptr<const model::RopeTable> table;
  };
  std::mutex rope_cache_mutex_;
  std::vector<CachedRope> rope_cache_;
};

}  // namespace ropescope::cpu
