// Tensor-parallel shards: the plan (which heads and MLP rows a rank holds) and
// the shard's config, layout and weight views (see tensor_parallel.hpp).
#include "model/tensor_parallel.hpp"

#include <fmt/format.h>

#include "core/error.hpp"

namespace ropescope::model {

namespace {

// Rows first .. first + count - 1 of a view (of its selection, when it has one).
WeightView select_rows(const WeightView& w, std::uint64_t first, std::uint64_t count) {
  if (first + count > w.row_count())
    throw Error(fmt::format("tensor {}: rows {} .. {} of a view of {}", w.tensor.name(), first, first + count - 1,
                            w.row_count()));
  WeightView out = w;
  out.rows.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) out.rows[i] = w.source_row(first + i);
  return out;
}

// Columns first .. first + count - 1 of every row of a whole-row view.
WeightView select_columns(const WeightView& w, std::uint64_t first, std::uint64_t count) {
  if (w.columns != 0 || first + count > w.row_elements)
    throw Error(fmt::format("tensor {}: columns {} .. {} of rows of {}", w.tensor.name(), first, first + count - 1,
                            w.row_elements));
  WeightView out = w;
  out.first_column = first;
  out.columns = count;
  return out;
}

std::optional<WeightView> select_rows(const std::optional<WeightView>& w, std::uint64_t first, std::uint64_t count) {
  return w ? std::optional(select_rows(*w, first, count)) : std::nullopt;
}

// Elements first .. first + count - 1 of the concatenation of `parts` (a
// per-head qk-norm: one [heads * d] view, one [heads, d] view, or one [d]
// view per head), whole rows of each part.
std::vector<WeightView> select_elements(const std::vector<WeightView>& parts, std::uint64_t first,
                                        std::uint64_t count) {
  std::vector<WeightView> out;
  std::uint64_t at = 0;  // the concatenation's index of the current part's first element
  for (const auto& p : parts) {
    const std::uint64_t lo = std::max(first, at), hi = std::min(first + count, at + p.numel());
    if (lo < hi) {
      const std::uint64_t width = p.column_count();
      if ((lo - at) % width != 0 || (hi - at) % width != 0)
        throw Error(fmt::format("tensor {}: elements {} .. {} are not whole rows of {}", p.tensor.name(), lo - at,
                                hi - at - 1, width));
      out.push_back(select_rows(p, (lo - at) / width, (hi - lo) / width));
    }
    at += p.numel();
  }
  return out;
}

std::uint64_t numel(const std::optional<WeightView>& w) { return w ? w->numel() : 0; }
std::uint64_t numel(const std::optional<NormWeights>& n) { return n ? n->weight.numel() + numel(n->bias) : 0; }

ParameterCounts count_views(const Weights& w) {
  ParameterCounts c;
  c.embedding = w.embed_tokens.numel();
  c.norm = w.norm.weight.numel() + numel(w.norm.bias);
  const bool tied = w.lm_head.tensor.bytes().data() == w.embed_tokens.tensor.bytes().data();
  c.lm_head = tied ? 0 : w.lm_head.numel();
  for (const auto& l : w.layers) {
    c.attention += l.q_proj.numel() + l.k_proj.numel() + l.v_proj.numel() + l.o_proj.numel() + numel(l.q_bias) +
                   numel(l.k_bias) + numel(l.v_bias) + numel(l.o_bias);
    for (const auto& n : l.q_norm) c.attention += n.numel();
    for (const auto& n : l.k_norm) c.attention += n.numel();
    c.mlp += numel(l.gate_proj) + l.up_proj.numel() + l.down_proj.numel() + numel(l.gate_bias) + numel(l.up_bias) +
             numel(l.down_bias);
    c.norm += numel(l.attn_norm) + numel(l.post_attn_norm) + numel(l.mlp_norm) + numel(l.post_mlp_norm);
  }
  return c;
}

}  // namespace

TensorParallelShard plan_tensor_parallel(const Model& model, int rank, int ranks) {
  if (ranks < 1) throw ArgumentError(fmt::format("tensor parallel: {} ranks (at least 1)", ranks));
  if (rank < 0 || rank >= ranks) throw ArgumentError(fmt::format("tensor parallel: rank {} of {}", rank, ranks));
  const HeadLayout& L = model.layout;
  const std::string name = model.directory.string();
  if (L.query_heads % ranks != 0)
    throw ArgumentError(fmt::format("{}: tensor parallel over {} ranks splits the query heads, and its {} query heads "
                                    "(variant {}) do not divide by {}",
                                    name, ranks, L.query_heads, to_string(model.config.variant), ranks));
  if (L.kv_heads % ranks != 0 && ranks % L.kv_heads != 0)
    throw ArgumentError(fmt::format("{}: tensor parallel over {} ranks needs KV heads that divide by {} (split) or "
                                    "divide it (replicated); its {} KV heads (variant {}) do neither",
                                    name, ranks, ranks, L.kv_heads, to_string(model.config.variant)));
  const int I = model.config.intermediate_size;
  if (I % ranks != 0)
    throw ArgumentError(fmt::format("{}: tensor parallel over {} ranks splits the MLP, and its intermediate size {} "
                                    "does not divide by {}",
                                    name, ranks, I, ranks));
  if (model.config.arch.attention.qk_norm == QkNormKind::full_width && ranks > 1)
    throw ArgumentError(fmt::format("{}: tensor parallel with qk-norm over the whole projection ({}) is not modelled: "
                                    "its statistic spans every head's rows (an all-reduce of its own)",
                                    name, model.config.arch.family));
  TensorParallelShard s;
  s.rank = rank;
  s.ranks = ranks;
  s.query_heads = L.query_heads / ranks;
  s.first_query_head = rank * s.query_heads;
  const int per_query = L.attention_heads / L.query_heads;  // 1 (rope) or 2 (a real / imaginary pair)
  s.attention_heads = s.query_heads * per_query;
  s.first_attention_head = s.first_query_head * per_query;
  if (L.kv_heads % ranks == 0) {  // whole GQA groups on each rank
    s.kv_heads = L.kv_heads / ranks;
    s.first_kv_head = rank * s.kv_heads;
  } else {  // fewer KV heads than ranks: each is replicated on ranks / KV ranks, which split its query heads
    s.kv_heads = 1;
    s.first_kv_head = s.first_query_head / (L.query_heads / L.kv_heads);
  }
  s.mlp_rows = I / ranks;
  s.first_mlp_row = rank * s.mlp_rows;
  return s;
}

Model shard_model(const Model& model, int rank, int ranks) {
  const TensorParallelShard s = plan_tensor_parallel(model, rank, ranks);
  Model out = model;
  // config.json's head counts for the shard (config.hpp): eh halves them into the tensors' counts.
  const int per_tensor = model.config.variant == Variant::eh ? 2 : 1;
  out.config.num_attention_heads = s.query_heads * per_tensor;
  out.config.num_key_value_heads = s.kv_heads * per_tensor;
  out.config.intermediate_size = s.mlp_rows;
  out.layout = head_layout(out.config);
  if (out.layout.attention_heads != s.attention_heads || out.layout.query_heads != s.query_heads ||
      out.layout.kv_heads != s.kv_heads)
    throw Error(fmt::format("tensor parallel: shard {} of {} has layout {} / {} / {} heads, the plan {} / {} / {}", rank,
                            ranks, out.layout.attention_heads, out.layout.query_heads, out.layout.kv_heads,
                            s.attention_heads, s.query_heads, s.kv_heads));
  const std::uint64_t d = model.layout.head_dim;
  const QkNormKind qk_norm = model.config.arch.attention.qk_norm;
  for (auto& l : out.weights.layers) {
    const std::uint64_t q0 = s.first_query_head * d, qn = s.query_heads * d;
    const std::uint64_t k0 = s.first_kv_head * d, kn = s.kv_heads * d;
    l.q_proj = select_rows(l.q_proj, q0, qn);
    l.k_proj = select_rows(l.k_proj, k0, kn);
    l.v_proj = select_rows(l.v_proj, k0, kn);
    l.q_bias = select_rows(l.q_bias, q0, qn);
    l.k_bias = select_rows(l.k_bias, k0, kn);
    l.v_bias = select_rows(l.v_bias, k0, kn);
    l.o_proj = select_columns(l.o_proj, s.first_attention_head * d, s.attention_heads * d);
    if (rank != 0) l.o_bias.reset();
    if (qk_norm == QkNormKind::per_head_weights) {
      l.q_norm = select_elements(l.q_norm, q0, qn);
      l.k_norm = select_elements(l.k_norm, k0, kn);
    }
    const std::uint64_t m0 = s.first_mlp_row, mn = s.mlp_rows;
    l.gate_proj = select_rows(l.gate_proj, m0, mn);
    l.up_proj = select_rows(l.up_proj, m0, mn);
    l.gate_bias = select_rows(l.gate_bias, m0, mn);
    l.up_bias = select_rows(l.up_bias, m0, mn);
    l.down_proj = select_columns(l.down_proj, m0, mn);
    if (rank != 0) l.down_bias.reset();
  }
  out.parameters = count_views(out.weights);
  return out;
}

}  // namespace ropescope::model
