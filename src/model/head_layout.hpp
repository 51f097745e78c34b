// The one place that knows how attention heads are laid out (ROPEPP.md
// section 4). Backends and analyses ask this, never re-derive it.
//
// Terms: query heads Q = rows of q_proj / d; KV heads = rows of k_proj / d;
// attention heads A = columns of o_proj / d (the heads that produce a score
// map). For rope, A = Q and every attention head is real. For RoPE++ (ec, eh),
// A = 2Q, interleaved: attention head 2j is the real head of query head j and
// 2j+1 its imaginary twin (the same projected query rotated by -pi/2).
// As in GQA, KV head k serves the G = A / KV consecutive attention heads
// k*G .. k*G+G-1 (G is even for ec / eh, so twins share a KV head).
//
//            query heads Q   KV heads   attention heads A   G = A/KV
//   rope     H               KV         H                   H/KV
//   ec       H               KV         2H                  2H/KV
//   eh       H/2             KV/2       H                   H/(KV/2)
// with H = num_attention_heads and KV = num_key_value_heads of config.json.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.hpp"

namespace ropescope::model {

enum class HeadKind { real, imaginary };

const char* to_string(HeadKind kind);

struct AttentionHead {
  int index = 0;       // attention head a, 0 .. A-1 (its slice of o_proj's input: columns a*d .. a*d+d-1)
  int query_head = 0;  // its rows of q_proj: query_head*d .. query_head*d+d-1
  HeadKind kind = HeadKind::real;
  int kv_head = 0;     // its rows of k_proj and v_proj: kv_head*d .. kv_head*d+d-1
};

struct HeadLayout {
  Variant variant = Variant::rope;
  int head_dim = 0;         // d
  int query_heads = 0;      // Q
  int kv_heads = 0;         // KV (actual, in the tensors)
  int attention_heads = 0;  // A
  int group_size = 0;       // G = A / KV: attention heads per KV head

  // Facts of attention head a (0 <= a < A); throws std::out_of_range otherwise.
  AttentionHead head(int a) const;
  std::vector<AttentionHead> heads() const;
  // Expected tensor extents.
  std::int64_t q_rows() const { return std::int64_t{query_heads} * head_dim; }
  std::int64_t kv_rows() const { return std::int64_t{kv_heads} * head_dim; }
  std::int64_t o_columns() const { return std::int64_t{attention_heads} * head_dim; }
};

// Layout for `variant` with config.json's H, KV, d. Throws ArgumentError when
// the counts do not fit the variant (H % KV != 0; eh with odd H or KV).
HeadLayout head_layout(Variant variant, int num_attention_heads, int num_key_value_heads, int head_dim);
// Layout of config.variant.
HeadLayout head_layout(const ModelConfig& config);

// K and V cache bytes per token over all layers, in the config's dtype:
// 2 * layers * KV heads * d * dtype size.
std::uint64_t kv_cache_bytes_per_token(const ModelConfig& config);

}  // namespace ropescope::model
