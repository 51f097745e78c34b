// Tensor-parallel shards of a model (Megatron-style): rank r of N holds query
// heads [r Q/N, (r+1) Q/N) with their attention heads, the KV heads they read
// (KV heads [r KV/N, (r+1) KV/N) when N divides KV; when KV divides N, the one
// KV head of its query heads, replicated on N/KV ranks), and MLP rows
// [r I/N, (r+1) I/N). q, k, v, gate and up are column-parallel
// (their output rows follow the heads / MLP rows), o and down row-parallel
// (their input columns follow them), so each rank's attention and MLP give
// a partial branch output of full width that a sum over the ranks (one
// all-reduce per branch, backend/tensor_parallel.hpp) turns into the model's.
// A RoPE++ real / imaginary pair shares its projected query and KV head, so it
// never straddles two ranks. Row-parallel biases (o, down) live on rank 0 only,
// so that the sum adds them once. Norms, embeddings and the LM head are
// replicated. A shard is an ordinary Model: its config and head layout are the
// shard's, its weights views of the same memory-mapped checkpoint.
#pragma once

#include "model/weights.hpp"

namespace ropescope::model {

// Which part of the model rank `rank` of `ranks` holds, in the model's numbering.
struct TensorParallelShard {
  int rank = 0, ranks = 1;
  int first_attention_head = 0, attention_heads = 0;  // attention heads a .. a + attention_heads - 1
  int first_query_head = 0, query_heads = 0;
  int first_kv_head = 0, kv_heads = 0;
  int first_mlp_row = 0, mlp_rows = 0;  // rows of gate / up (columns of down)
};

// The shard plan; throws ArgumentError naming what does not divide (query
// heads, KV heads in the tensors, the MLP's intermediate size) or what is not modelled
// (qk-norm over the whole projection: its statistic spans every head).
TensorParallelShard plan_tensor_parallel(const Model& model, int rank, int ranks);

// Rank `rank`'s shard of `model` (plan_tensor_parallel's checks first).
Model shard_model(const Model& model, int rank, int ranks);

}  // namespace ropescope::model
