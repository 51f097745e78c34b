// The decoder's layer loop, written once over a backend's operations: the
// block kinds of model/architecture.hpp (pre-norm, sandwich, post-norm,
// parallel with one or two norms) and the residual multiplier. A backend
// supplies an Ops type with
//   using Activations = ...;                                  // [T, hidden]
//   Activations norm(int layer, NormSlot slot, const Activations& x);
//   // out += scale * post(o_proj(attention(in))), post the norm in that slot when given:
//   void attention(int layer, const Activations& in, Activations& out, double scale, std::optional<NormSlot> post);
//   // out += scale * post(mlp(in)):
//   void mlp(int layer, const Activations& in, Activations& out, double scale, std::optional<NormSlot> post);
//   // the attention of `in` for the observer alone (no output projection; the
//   // value product may be skipped), refusing non-finite attention as the
//   // residual check after a whole layer would:
//   void observe_attention(int layer, const Activations& in);
// `in` may be `out` itself (post-norm blocks): an implementation reads all of
// `in` before it writes `out`. Branches that add straight into the residual
// stream let a GPU fuse the add into the output projection's GEMM (beta = 1).
// The backend embeds before run_layers; the final norm, LM head and loss stay
// with it (they are chunked differently on CPU and GPU).
#pragma once

#include <optional>

#include "backend/backend.hpp"
#include "model/architecture.hpp"

namespace ropescope::backend {

// Which of a layer's norms (model::LayerWeights' attn_norm .. post_mlp_norm).
enum class NormSlot { attn, post_attn, mlp, post_mlp };

// With attention_only the layer stops after its attention's observation: its
// branches never reach x (a forward whose outputs read only the observer's).
template <class Ops>
void decoder_layer(Ops& ops, const model::Architecture& arch, int layer, typename Ops::Activations& x,
                   bool attention_only = false) {
  const double r = arch.residual_multiplier;
  if (attention_only) {
    // The attention branch's input in every block kind: the pre-attention norm, or x itself (post-norm).
    if (arch.block == model::BlockKind::post_norm) ops.observe_attention(layer, x);
    else ops.observe_attention(layer, ops.norm(layer, NormSlot::attn, x));
    return;
  }
  switch (arch.block) {
    case model::BlockKind::pre_norm:
      ops.attention(layer, ops.norm(layer, NormSlot::attn, x), x, r, std::nullopt);
      ops.mlp(layer, ops.norm(layer, NormSlot::mlp, x), x, r, std::nullopt);
      return;
    case model::BlockKind::sandwich:
      ops.attention(layer, ops.norm(layer, NormSlot::attn, x), x, r, NormSlot::post_attn);
      ops.mlp(layer, ops.norm(layer, NormSlot::mlp, x), x, r, NormSlot::post_mlp);
      return;
    case model::BlockKind::post_norm:
      ops.attention(layer, x, x, r, NormSlot::post_attn);
      ops.mlp(layer, x, x, r, NormSlot::post_mlp);
      return;
    case model::BlockKind::parallel_shared_norm: {  // both branches read the same normed x
      const auto h = ops.norm(layer, NormSlot::attn, x);
      ops.attention(layer, h, x, r, std::nullopt);
      ops.mlp(layer, h, x, r, std::nullopt);
      return;
    }
    case model::BlockKind::parallel_two_norms: {  // both norms of the same x, taken before either branch adds
      const auto h_attn = ops.norm(layer, NormSlot::attn, x);
      const auto h_mlp = ops.norm(layer, NormSlot::mlp, x);
      ops.attention(layer, h_attn, x, r, std::nullopt);
      ops.mlp(layer, h_mlp, x, r, std::nullopt);
      return;
    }
  }
}

// An Ops type made of four callables, for backends that keep their buffers
// in local state (the CUDA backend's forward).
template <class Act, class Norm, class Attention, class Mlp, class ObserveAttention>
struct CallableOps {
  using Activations = Act;
  Norm norm_fn;
  Attention attention_fn;
  Mlp mlp_fn;
  ObserveAttention observe_attention_fn;
  Act norm(int layer, NormSlot slot, const Act& x) { return norm_fn(layer, slot, x); }
  void attention(int layer, const Act& in, Act& out, double scale, std::optional<NormSlot> post) {
    attention_fn(layer, in, out, scale, post);
  }
  void mlp(int layer, const Act& in, Act& out, double scale, std::optional<NormSlot> post) {
    mlp_fn(layer, in, out, scale, post);
  }
  void observe_attention(int layer, const Act& in) { observe_attention_fn(layer, in); }
};

// How much of the decoder a forward runs: layers 0 .. layers - 1, the last of
// them stopping after its attention's observation when last_attention_only.
struct DecoderExtent {
  int layers = 0;
  bool last_attention_only = false;
};

// Every layer whole, unless the observer is the forward's only reader
// (backend.hpp's observer_only): then up to the last layer it looks at
// (observes_layer), which runs its attention alone. The observer's numbers
// are the same; what no output reads is not computed (the later layers, the
// last one's output projection and MLP, and, where a kernel can, its value
// product). None at all when it looks at no layer.
inline DecoderExtent decoder_extent(const ForwardOptions& options, int layers) {
  if (!observer_only(options)) return {layers, false};
  int last = layers - 1;
  while (last >= 0 && !options.observer->observes_layer(last)) --last;
  return {last + 1, last >= 0};
}

// The layers of `extent` in order; after_layer(l, x) runs after layer l
// (hidden-state capture, checks).
template <class Ops, class AfterLayer>
void run_layers(Ops& ops, const model::Architecture& arch, typename Ops::Activations& x, DecoderExtent extent,
                AfterLayer&& after_layer) {
  for (int l = 0; l < extent.layers; ++l) {
    decoder_layer(ops, arch, l, x, extent.last_attention_only && l == extent.layers - 1);
    after_layer(l, x);
  }
}

}  // namespace ropescope::backend
