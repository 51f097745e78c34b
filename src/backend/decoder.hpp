// The decoder's layer loop, written once over a backend's operations: the
// block kinds of model/architecture.hpp (pre-norm, sandwich, post-norm,
// parallel with one or two norms) and the residual multiplier. A backend
// supplies an Ops type with
//   using Activations = ...;                                  // [T, hidden]
//   Activations norm(int layer, NormSlot slot, const Activations& x);
//   Activations attention(int layer, const Activations& x);   // through o_proj (and its bias)
//   Activations mlp(int layer, const Activations& x);
//   void add(Activations& x, const Activations& y, double scale);   // x += scale * y
// and calls run_layers after embedding; the final norm, LM head and loss stay
// with the backend (they are chunked differently on CPU and GPU).
#pragma once

#include "model/architecture.hpp"

namespace ropescope::backend {

// Which of a layer's norms (model::LayerWeights' attn_norm .. post_mlp_norm).
enum class NormSlot { attn, post_attn, mlp, post_mlp };

template <class Ops>
void decoder_layer(Ops& ops, const model::Architecture& arch, int layer, typename Ops::Activations& x) {
  const double r = arch.residual_multiplier;
  switch (arch.block) {
    case model::BlockKind::pre_norm:
      ops.add(x, ops.attention(layer, ops.norm(layer, NormSlot::attn, x)), r);
      ops.add(x, ops.mlp(layer, ops.norm(layer, NormSlot::mlp, x)), r);
      return;
    case model::BlockKind::sandwich:
      ops.add(x, ops.norm(layer, NormSlot::post_attn, ops.attention(layer, ops.norm(layer, NormSlot::attn, x))), r);
      ops.add(x, ops.norm(layer, NormSlot::post_mlp, ops.mlp(layer, ops.norm(layer, NormSlot::mlp, x))), r);
      return;
    case model::BlockKind::post_norm:
      ops.add(x, ops.norm(layer, NormSlot::post_attn, ops.attention(layer, x)), r);
      ops.add(x, ops.norm(layer, NormSlot::post_mlp, ops.mlp(layer, x)), r);
      return;
    case model::BlockKind::parallel_shared_norm: {
      const auto h = ops.norm(layer, NormSlot::attn, x);
      auto branch = ops.attention(layer, h);
      ops.add(branch, ops.mlp(layer, h), 1.0);
      ops.add(x, branch, r);
      return;
    }
    case model::BlockKind::parallel_two_norms: {
      auto branch = ops.attention(layer, ops.norm(layer, NormSlot::attn, x));
      ops.add(branch, ops.mlp(layer, ops.norm(layer, NormSlot::mlp, x)), 1.0);
      ops.add(x, branch, r);
      return;
    }
  }
}

// Every layer in order; after_layer(l, x) runs after layer l (hidden-state capture, checks).
template <class Ops, class AfterLayer>
void run_layers(Ops& ops, const model::Architecture& arch, typename Ops::Activations& x, AfterLayer&& after_layer) {
  for (int l = 0; l < static_cast<int>(arch.layers.size()); ++l) {
    decoder_layer(ops, arch, l, x);
    after_layer(l, x);
  }
}

}  // namespace ropescope::backend
