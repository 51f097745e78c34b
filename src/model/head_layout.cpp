// Attention head layout of rope / ec / eh models; see head_layout.hpp.
#include "model/head_layout.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "core/error.hpp"

namespace ropescope::model {

const char* to_string(HeadKind kind) { return kind == HeadKind::real ? "real" : "imaginary"; }

HeadLayout head_layout(Variant variant, int num_attention_heads, int num_key_value_heads, int head_dim) {
  const int H = num_attention_heads, KV = num_key_value_heads;
  if (H < 1 || KV < 1 || head_dim < 1 || H % KV != 0)
    throw ArgumentError(fmt::format("head counts H={} KV={} d={}: expected positive counts with KV dividing H", H,
                                    KV, head_dim));
  HeadLayout L;
  L.variant = variant;
  L.head_dim = head_dim;
  switch (variant) {
    case Variant::rope:
      L.query_heads = H, L.kv_heads = KV, L.attention_heads = H;
      break;
    case Variant::ec:
      L.query_heads = H, L.kv_heads = KV, L.attention_heads = 2 * H;
      break;
    case Variant::eh:
      if (H % 2 || KV % 2)
        throw ArgumentError(fmt::format("variant eh halves H={} and KV={}: both must be even", H, KV));
      L.query_heads = H / 2, L.kv_heads = KV / 2, L.attention_heads = H;
      break;
  }
  L.group_size = L.attention_heads / L.kv_heads;
  return L;
}

HeadLayout head_layout(const ModelConfig& config) {
  return head_layout(config.variant, config.num_attention_heads, config.num_key_value_heads, config.head_dim);
}

AttentionHead HeadLayout::head(int a) const {
  if (a < 0 || a >= attention_heads)
    throw std::out_of_range(fmt::format("attention head {} of {}", a, attention_heads));
  AttentionHead h;
  h.index = a;
  if (variant == Variant::rope) {
    h.query_head = a;
    h.kind = HeadKind::real;
  } else {
    h.query_head = a / 2;
    h.kind = a % 2 == 0 ? HeadKind::real : HeadKind::imaginary;
  }
  h.kv_head = a / group_size;
  return h;
}

std::vector<AttentionHead> HeadLayout::heads() const {
  std::vector<AttentionHead> all;
  all.reserve(attention_heads);
  for (int a = 0; a < attention_heads; ++a) all.push_back(head(a));
  return all;
}

std::uint64_t kv_cache_bytes_per_token(const ModelConfig& config) {
  const HeadLayout L = head_layout(config);
  return 2ull * config.num_hidden_layers * L.kv_heads * L.head_dim * io::dtype_size(config.dtype);
}

}  // namespace ropescope::model
