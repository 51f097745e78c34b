// The real/imaginary head layout of ROPEPP.md section 4, head by head.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "model/head_layout.hpp"

using namespace ropescope;
using namespace ropescope::model;

TEST(HeadLayout, Rope) {
  const HeadLayout L = head_layout(Variant::rope, 8, 4, 128);
  EXPECT_EQ(L.query_heads, 8);
  EXPECT_EQ(L.kv_heads, 4);
  EXPECT_EQ(L.attention_heads, 8);
  EXPECT_EQ(L.group_size, 2);
  EXPECT_EQ(L.q_rows(), 1024);
  EXPECT_EQ(L.o_columns(), 1024);
  for (const auto& h : L.heads()) {
    EXPECT_EQ(h.kind, HeadKind::real);
    EXPECT_EQ(h.query_head, h.index);
    EXPECT_EQ(h.kv_head, h.index / 2);
  }
}

TEST(HeadLayout, EqualCacheDoublesAttentionHeads) {
  // The paper's 376M EC model: 8 q / 4 kv heads, d 128.
  const HeadLayout L = head_layout(Variant::ec, 8, 4, 128);
  EXPECT_EQ(L.query_heads, 8);
  EXPECT_EQ(L.kv_heads, 4);
  EXPECT_EQ(L.attention_heads, 16);
  EXPECT_EQ(L.group_size, 4);  // 2H / KV
  EXPECT_EQ(L.q_rows(), 8 * 128);
  EXPECT_EQ(L.kv_rows(), 4 * 128);
  EXPECT_EQ(L.o_columns(), 16 * 128);
  const auto h5 = L.head(5);
  EXPECT_EQ(h5.query_head, 2);
  EXPECT_EQ(h5.kind, HeadKind::imaginary);
  EXPECT_EQ(h5.kv_head, 1);
  const auto h6 = L.head(6);
  EXPECT_EQ(h6.query_head, 3);
  EXPECT_EQ(h6.kind, HeadKind::real);
  EXPECT_EQ(h6.kv_head, 1);
  EXPECT_EQ(L.head(15).kv_head, 3);
  // Twins always share their KV head.
  for (int j = 0; j < L.query_heads; ++j) EXPECT_EQ(L.head(2 * j).kv_head, L.head(2 * j + 1).kv_head);
}

TEST(HeadLayout, EqualHeadsHalvesProjections) {
  const HeadLayout L = head_layout(Variant::eh, 8, 4, 128);
  EXPECT_EQ(L.query_heads, 4);
  EXPECT_EQ(L.kv_heads, 2);
  EXPECT_EQ(L.attention_heads, 8);
  EXPECT_EQ(L.group_size, 4);  // H / (KV/2)
  EXPECT_EQ(L.q_rows(), 4 * 128);
  EXPECT_EQ(L.kv_rows(), 2 * 128);
  EXPECT_EQ(L.o_columns(), 8 * 128);
  const std::vector<int> kv = {0, 0, 0, 0, 1, 1, 1, 1};
  for (int a = 0; a < 8; ++a) {
    const auto h = L.head(a);
    EXPECT_EQ(h.query_head, a / 2);
    EXPECT_EQ(h.kind, a % 2 ? HeadKind::imaginary : HeadKind::real);
    EXPECT_EQ(h.kv_head, kv[a]);
  }
}

TEST(HeadLayout, RejectsCountsThatDoNotFit) {
  EXPECT_THROW(head_layout(Variant::eh, 6, 3, 64), ArgumentError);  // KV/2 not an integer
  EXPECT_THROW(head_layout(Variant::rope, 6, 4, 64), ArgumentError);
  EXPECT_THROW(head_layout(Variant::ec, 4, 2, 16).head(8), std::out_of_range);
  EXPECT_THROW(head_layout(Variant::ec, 4, 2, 16).head(-1), std::out_of_range);
}

TEST(HeadLayout, KvCacheBytes) {
  ModelConfig c;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 128;
  c.dtype = io::Dtype::BF16;
  c.variant = Variant::rope;
  EXPECT_EQ(kv_cache_bytes_per_token(c), 2u * 8 * 4 * 128 * 2);
  c.variant = Variant::ec;  // equal cache
  EXPECT_EQ(kv_cache_bytes_per_token(c), 2u * 8 * 4 * 128 * 2);
  c.variant = Variant::eh;  // half the cache
  EXPECT_EQ(kv_cache_bytes_per_token(c), 2u * 8 * 2 * 128 * 2);
}
