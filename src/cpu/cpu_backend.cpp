// The CPU reference forward pass (see cpu_backend.hpp). The forward reads as
// the model does: embed, then per layer norm -> attention -> residual ->
// norm -> MLP -> residual, then final norm and the next-token loss. The
// residual stream is checked for NaN / infinity after every branch and the
// logits after the LM head (one pass over [T, hidden] or a logit chunk: small
// next to the GEMMs); the memory a context needs is checked before anything
// is allocated.
#include "cpu/cpu_backend.hpp"

#include <fmt/format.h>
#include <omp.h>

#include <cmath>
#include <limits>

#include "backend/decoder.hpp"
#include "backend/query_noise_value.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "cpu/parallel_errors.hpp"

namespace ropescope::cpu {

using backend::Matrix;
using model::AttentionHead;
using model::HeadKind;

namespace {

Matrix to_matrix(const model::WeightView& t) {
  const auto shape = t.shape();
  Matrix m(static_cast<Eigen::Index>(shape.at(0)), static_cast<Eigen::Index>(shape.size() > 1 ? shape[1] : 1));
  t.to_float(std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
  return m;
}

Eigen::VectorXf to_vector(const model::WeightView& t) {
  Eigen::VectorXf v(static_cast<Eigen::Index>(t.numel()));
  t.to_float(std::span<float>(v.data(), static_cast<std::size_t>(v.size())));
  return v;
}

Eigen::VectorXf to_vector(const std::optional<model::WeightView>& t) { return t ? to_vector(*t) : Eigen::VectorXf(); }

// The concatenation of several views (StableLM's per-head qk-norm tensors).
Eigen::VectorXf to_vector(const std::vector<model::WeightView>& parts) {
  std::size_t n = 0;
  for (const auto& p : parts) n += p.numel();
  Eigen::VectorXf v(static_cast<Eigen::Index>(n));
  std::size_t at = 0;
  for (const auto& p : parts) {
    p.to_float(std::span<float>(v.data() + at, p.numel()));
    at += p.numel();
  }
  return v;
}

// y = x W^T + b for x [T, in], W [out, in] (HF's storage order).
Matrix linear(const Matrix& x, const Matrix& w, const Eigen::VectorXf& bias) {
  Matrix y = x * w.transpose();
  if (bias.size()) y.rowwise() += bias.transpose();
  return y;
}

// Rotates every head (d columns each) of every row of q: row t is position t.
Matrix rotated(const Matrix& q, int d, const model::RopeTable& rope, HeadKind kind) {
  Matrix out = q;
  const int heads = static_cast<int>(q.cols() / d);
  ParallelErrors errors;
#pragma omp parallel for schedule(static)
  for (Eigen::Index t = 0; t < out.rows(); ++t)
    errors.run([&] {
      for (int h = 0; h < heads; ++h) model::rotate_head(out.row(t).data() + h * d, rope, t, kind);
    });
  errors.rethrow();
  return out;
}

// Normalises one row segment x[0..n) into y (which may be x) with `spec`,
// weight w and bias b (b may be null). `offset_weight` is w as the norm
// multiplies it (1 + w for Gemma's rms_offset). The statistics in float64,
// the product in float32, vectorised by Eigen.
void normalize(const float* x, float* y, long n, const model::NormSpec& spec, const float* offset_weight, const float* b) {
  using Row = Eigen::Map<const Eigen::ArrayXf>;
  const Row in(x, n), w(offset_weight, n);
  const auto wide = in.cast<double>();
  const double mean = spec.kind == model::NormKind::layer_norm ? wide.mean() : 0.0;
  const double square = (wide - mean).square().sum();
  const float inv = static_cast<float>(1.0 / std::sqrt(square / static_cast<double>(n) + spec.eps));
  Eigen::Map<Eigen::ArrayXf> out(y, n);
  if (b) out = (in - static_cast<float>(mean)) * inv * w + Row(b, n);
  else out = (in - static_cast<float>(mean)) * inv * w;
}

// The weight a norm multiplies by: w, or 1 + w for rms_offset (in float32, as HF's Gemma).
Eigen::VectorXf norm_multiplier(const Eigen::VectorXf& w, const model::NormSpec& spec) {
  if (spec.kind != model::NormKind::rms_offset) return w;
  return (w.array() + 1.0f).matrix();
}

// qk-norm on a projection [T, heads * d]: per head with one shared weight, per
// head with a weight per head, or over the whole row.
void qk_norm(Matrix& x, int d, model::QkNormKind kind, const model::NormSpec& spec, const Eigen::VectorXf& stored) {
  if (kind == model::QkNormKind::none) return;
  const Eigen::VectorXf weight = norm_multiplier(stored, spec);
  const long width = x.cols();
  const int heads = static_cast<int>(width / d);
  ParallelErrors errors;
#pragma omp parallel for schedule(static)
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    errors.run([&] {
      float* row = x.row(t).data();
      if (kind == model::QkNormKind::full_width) {
        normalize(row, row, width, spec, weight.data(), nullptr);
        return;
      }
      for (int h = 0; h < heads; ++h)
        normalize(row + h * d, row + h * d, d, spec,
                  weight.data() + (kind == model::QkNormKind::per_head_weights ? h * d : 0), nullptr);
    });
  errors.rethrow();
}

// Turns each row of masked scores into probabilities over the visible keys of
// query q = q_begin + i: first .. q, with first = q - window + 1 under a
// sliding window (else 0); every other key gets exactly 0 (vectorised exp;
// the sum in float64).
void causal_softmax(const Matrix& scores, Matrix& probs, long q_begin, long window) {
  probs.resizeLike(scores);
  for (Eigen::Index i = 0; i < scores.rows(); ++i) {
    const long query = q_begin + i;
    const long first = window > 0 ? std::max<long>(0, query - window + 1) : 0;
    const auto row = scores.row(i).segment(first, query - first + 1);
    auto p = probs.row(i).segment(first, query - first + 1);
    p = (row.array() - row.maxCoeff()).exp();
    p *= static_cast<float>(1.0 / p.cast<double>().sum());
    probs.row(i).head(first).setZero();
    probs.row(i).tail(probs.cols() - query - 1).setZero();
  }
}

// Scale, softcap, then the causal mask and (window > 0) the sliding-window
// mask: key j is visible to query i iff i - window < j <= i.
void finish_scores(Matrix& scores, float scale, const std::optional<double>& softcap, long q_begin, long window) {
  scores *= scale;
  if (softcap) {
    const float cap = static_cast<float>(*softcap);
    scores = cap * (scores.array() / cap).tanh();
  }
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (Eigen::Index i = 0; i < scores.rows(); ++i) {
    const long query = q_begin + i;
    scores.row(i).tail(scores.cols() - query - 1).setConstant(minus_inf);
    if (window > 0 && query - window + 1 > 0) scores.row(i).head(query - window + 1).setConstant(minus_inf);
  }
}

Matrix activation(const Matrix& x, model::Activation act) {
  switch (act) {
    case model::Activation::silu:
      return x.array() / (1.0f + (-x.array()).exp());
    case model::Activation::gelu_erf:
      return x.unaryExpr([](float v) { return 0.5f * v * (1.0f + std::erf(v * static_cast<float>(M_SQRT1_2))); });
    case model::Activation::gelu_tanh: {
      const float k = static_cast<float>(std::sqrt(2.0 / M_PI));
      return 0.5f * x.array() * (1.0f + (k * (x.array() + 0.044715f * x.array().cube())).tanh());
    }
  }
  return x;
}

// The first row of x holding a NaN or infinity (x.allFinite() is false).
long first_non_finite_row(const Matrix& x) {
  for (Eigen::Index t = 0; t < x.rows(); ++t)
    if (!x.row(t).allFinite()) return t;
  return -1;
}

}  // namespace

// The decoder driver's operations on one sequence (backend/decoder.hpp).
struct CpuBackend::LayerOps {
  using Activations = Matrix;
  const CpuBackend& backend;
  int sequence;
  const LayerTables& tables;
  const backend::ForwardOptions& options;

  const Norm& slot_norm(int layer, backend::NormSlot slot) const {
    const Layer& l = backend.layers_[layer];
    return slot == backend::NormSlot::attn        ? l.attn_norm
           : slot == backend::NormSlot::post_attn ? l.post_attn_norm
           : slot == backend::NormSlot::mlp       ? l.mlp_norm
                                                  : l.post_mlp_norm;
  }
  Matrix norm(int layer, backend::NormSlot slot, const Matrix& x) const {
    return backend.norm(x, slot_norm(layer, slot), backend.model_->config.arch.norm);
  }
  // out += scale * post(branch), then the residual stream checked for NaN / infinity;
  // under tensor parallel the branch is first summed over the ranks.
  void add(int layer, backend::Branch which, Matrix branch, Matrix& out, double scale,
           std::optional<backend::NormSlot> post) const {
    if (options.branch_reducer)
      options.branch_reducer->all_reduce(sequence, layer, which, std::span<float>(branch.data(), branch.size()));
    if (post) branch = norm(layer, *post, branch);
    const char* branch_name = which == backend::Branch::attention ? "attention" : "MLP";
    if (scale == 1.0) out += branch;
    else out += static_cast<float>(scale) * branch;
    if (!out.allFinite())
      throw backend::non_finite_activations(
          sequence, fmt::format("after the {} branch of layer {} (first at position {})", branch_name, layer,
                                first_non_finite_row(out)),
          options);
  }
  void attention(int layer, const Matrix& in, Matrix& out, double scale, std::optional<backend::NormSlot> post) const {
    const Layer& l = backend.layers_[layer];
    const auto* rope = tables.of(backend.model_->config.arch, layer);
    add(layer, backend::Branch::attention, linear(backend.attention(sequence, layer, in, rope, options), l.o, l.o_bias),
        out, scale, post);
  }
  void mlp(int layer, const Matrix& in, Matrix& out, double scale, std::optional<backend::NormSlot> post) const {
    add(layer, backend::Branch::mlp, backend.mlp(backend.layers_[layer], in), out, scale, post);
  }
  // The attention's observer calls alone; its output (this rank's heads) is checked, not projected.
  void observe_attention(int layer, const Matrix& in) const {
    const Matrix out = backend.attention(sequence, layer, in, tables.of(backend.model_->config.arch, layer), options);
    if (!out.allFinite())
      throw backend::non_finite_activations(
          sequence, fmt::format("in the attention output of layer {} (first at position {})", layer,
                                first_non_finite_row(out)),
          options);
  }
};

const model::RopeTable* CpuBackend::LayerTables::of(const model::Architecture& arch, int layer) const {
  switch (arch.layers.at(layer).rope) {
    case model::LayerRope::none: return nullptr;
    case model::LayerRope::global: return global.get();
    case model::LayerRope::local: return local.get();
  }
  return nullptr;
}

CpuBackend::CpuBackend(std::shared_ptr<const model::Model> model, CpuOptions options)
    : model_(std::move(model)), options_(options) {
  if (options_.query_block < 1) throw ArgumentError("query block size must be >= 1");
  auto to_norm = [](const std::optional<model::NormWeights>& w) {
    Norm n;
    if (w) {
      n.weight = to_vector(w->weight);
      n.bias = to_vector(w->bias);
    }
    return n;
  };
  const auto& w = model_->weights;
  embed_ = to_matrix(w.embed_tokens);
  lm_head_ = to_matrix(w.lm_head);
  final_norm_ = to_norm(std::optional<model::NormWeights>(w.norm));
  for (const auto& lw : w.layers) {
    Layer l;
    l.attn_norm = to_norm(lw.attn_norm);
    l.post_attn_norm = to_norm(lw.post_attn_norm);
    l.mlp_norm = to_norm(lw.mlp_norm);
    l.post_mlp_norm = to_norm(lw.post_mlp_norm);
    l.q = to_matrix(lw.q_proj);
    l.k = to_matrix(lw.k_proj);
    l.v = to_matrix(lw.v_proj);
    l.o = to_matrix(lw.o_proj);
    if (lw.gate_proj) l.gate = to_matrix(*lw.gate_proj);
    l.up = to_matrix(lw.up_proj);
    l.down = to_matrix(lw.down_proj);
    l.q_bias = to_vector(lw.q_bias);
    l.k_bias = to_vector(lw.k_bias);
    l.v_bias = to_vector(lw.v_bias);
    l.o_bias = to_vector(lw.o_bias);
    l.gate_bias = to_vector(lw.gate_bias);
    l.up_bias = to_vector(lw.up_bias);
    l.down_bias = to_vector(lw.down_bias);
    l.q_norm = to_vector(lw.q_norm);
    l.k_norm = to_vector(lw.k_norm);
    layers_.push_back(std::move(l));
  }
}

std::string CpuBackend::precision() const {
  return "cpu: float32 weights, activations and matmuls (Eigen); RoPE angles reduced exactly in float128 "
         "(or HF float32 on request); norm statistics, softmax and log-sum-exp sums in float64";
}

std::shared_ptr<const model::RopeTable> CpuBackend::rope_table(const theory::RopeSpec& spec, long T,
                                                               const backend::ForwardOptions& options) {
  const auto key = model::rope_table_key(spec, options.angles, T);
  std::lock_guard lock(rope_cache_mutex_);
  for (auto& c : rope_cache_) {
    if (c.key == key) {
      if (c.table->positions < T) c.table = std::make_shared<model::RopeTable>(make_rope_table(key.spec, T, key.angles, T));
      return c.table;
    }
  }
  auto table = std::make_shared<const model::RopeTable>(make_rope_table(key.spec, T, key.angles, T));
  rope_cache_.push_back({key, table});
  return table;
}

std::vector<std::string> CpuBackend::kernel_choices() const {
  // One path for every shape: the CPU backend has nothing to choose.
  return {fmt::format("attention: per head, Eigen float32 score blocks of {} query rows over every visible key, "
                      "heads spread over OpenMP threads",
                      options_.query_block)};
}

std::uint64_t CpuBackend::forward_bytes(long T, const backend::ForwardOptions& options) const {
  // Activations (x, norms, q/k/v, rotations, attention output, MLP) plus one
  // score/probability block per thread (the OpenMP threads, at most one per
  // head run at once), plus logits and
  // hidden states when kept; in long double, saturated at 2^64 - 1.
  const auto& c = model_->config;
  const auto& layout = model_->layout;
  const long double t = std::max(T, 0L);
  const long double per_token = 4.0L * (6.0L * c.hidden_size + 3.0L * layout.q_rows() + 3.0L * layout.kv_rows() +
                                        layout.o_columns() + 3.0L * c.intermediate_size);
  const long double threads = std::max(1, std::min(omp_get_max_threads(), layout.attention_heads));
  const long double bytes = t * per_token + 4.0L * 4 * options_.query_block * t * threads +
                            (options.keep_logits ? 4.0L * t * c.vocab_size : 0.0L) +
                            (options.keep_hidden ? 4.0L * t * c.hidden_size * c.num_hidden_layers : 0.0L);
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  return bytes >= static_cast<long double>(kMax) ? kMax : static_cast<std::uint64_t>(bytes);
}

void CpuBackend::check_memory(long T, const backend::ForwardOptions& options) const {
  const std::uint64_t bytes = forward_bytes(T, options);
  const MemoryLimit limit = available_memory();
  if (bytes > limit.bytes)
    throw ArgumentError(fmt::format("a context of T = {} tokens needs about {} on the CPU backend; {} is available "
                                    "(the limit that applies: {})",
                                    T, format_bytes(bytes), format_bytes(limit.bytes), limit.source));
}

std::vector<backend::ForwardResult> CpuBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                        const backend::ForwardOptions& options) {
  backend::check_forward_request(*model_, sequences, options);
  // Sequences run one after another: the longest needs the most (forward_bytes grows with T).
  std::size_t longest = 0;
  for (const auto& tokens : sequences) longest = std::max(longest, tokens.size());
  try {
    check_memory(static_cast<long>(longest), options);
  } catch (const ArgumentError& e) {
    // Callers check up front (Backend::check_memory); here, mid-run, memory that vanished is a failed run.
    throw Error(e.what());
  }
  std::vector<backend::ForwardResult> results;
  results.reserve(sequences.size());
  for (std::size_t s = 0; s < sequences.size(); ++s)
    results.push_back(forward_one(options.first_sequence + static_cast<int>(s), sequences[s], options));
  return results;
}

backend::ForwardResult CpuBackend::forward_one(int sequence, const std::vector<std::int32_t>& tokens,
                                               const backend::ForwardOptions& options) {
  const long T = static_cast<long>(tokens.size());
  const model::Architecture& arch = model_->config.arch;
  LayerTables tables;
  tables.global = rope_table(options.rope_override.value_or(model_->config.rope), T, options);
  if (arch.local_rope) tables.local = rope_table(*arch.local_rope, T, options);
  backend::ForwardResult result;

  Matrix x(T, embed_.cols());
  for (long t = 0; t < T; ++t) x.row(t) = embed_.row(tokens[t]);
  if (arch.embedding_multiplier != 1.0) x *= static_cast<float>(arch.embedding_multiplier);

  LayerOps ops{*this, sequence, tables, options};
  const backend::DecoderExtent extent = backend::decoder_extent(options, static_cast<int>(arch.layers.size()));
  backend::run_layers(ops, arch, x, extent, [&](int, const Matrix& h) {
    if (options.keep_hidden) result.hidden.push_back(h);
  });
  const Matrix final_hidden = norm(x, final_norm_, arch.norm);

  // Next-token loss in chunks of rows, so T x V logits are never needed at once.
  const long V = lm_head_.rows();
  if (!options.loss && !options.keep_logits) return result;
  if (options.keep_logits) result.logits.resize(T, V);
  if (options.loss) result.nll.resize(T - 1);
  constexpr long kChunk = 256;
  for (long t0 = 0; t0 < T; t0 += kChunk) {
    const long rows = std::min(kChunk, T - t0);
    Matrix logits = final_hidden.middleRows(t0, rows) * lm_head_.transpose();
    if (arch.logit_multiplier != 1.0) logits *= static_cast<float>(arch.logit_multiplier);
    if (arch.final_softcap) {
      const float cap = static_cast<float>(*arch.final_softcap);
      logits = cap * (logits.array() / cap).tanh();
    }
    if (!logits.allFinite())
      throw backend::non_finite_activations(
          sequence, fmt::format("in the logits (first at position {})", t0 + first_non_finite_row(logits)), options);
    for (long i = 0; i < rows && t0 + i < T - 1 && options.loss; ++i) {
      const float max = logits.row(i).maxCoeff();
      double sum = 0;
      for (long v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits(i, v)) - max);
      result.nll[t0 + i] = max + std::log(sum) - logits(i, tokens[t0 + i + 1]);
    }
    if (options.keep_logits) result.logits.middleRows(t0, rows) = logits;
  }
  return result;
}

Matrix CpuBackend::norm(const Matrix& x, const Norm& weights, const model::NormSpec& spec) const {
  Matrix y(x.rows(), x.cols());
  const Eigen::VectorXf w = norm_multiplier(weights.weight, spec);
  const float* b = weights.bias.size() ? weights.bias.data() : nullptr;
  for (Eigen::Index t = 0; t < x.rows(); ++t) normalize(x.row(t).data(), y.row(t).data(), x.cols(), spec, w.data(), b);
  return y;
}

Matrix CpuBackend::mlp(const Layer& layer, const Matrix& x) const {
  const auto act = model_->config.arch.mlp.act;
  if (layer.gate.size() == 0) return linear(activation(linear(x, layer.up, layer.up_bias), act), layer.down, layer.down_bias);
  const Matrix gate = activation(linear(x, layer.gate, layer.gate_bias), act);
  return linear(gate.cwiseProduct(linear(x, layer.up, layer.up_bias)), layer.down, layer.down_bias);
}

Matrix CpuBackend::attention(int sequence, int layer_index, const Matrix& x, const model::RopeTable* rope,
                             const backend::ForwardOptions& options) const {
  const Layer& layer = layers_[layer_index];
  const auto& layout = model_->layout;
  const auto& spec = model_->config.arch.attention;
  const long window = model_->config.arch.window(layer_index);
  const int d = layout.head_dim;
  const long T = x.rows();
  const float scale = static_cast<float>(spec.scale);
  backend::AttentionObserver* observer = options.observer;
  // Virtual imaginary scores exist only where the layer rotates (not on NoPE layers).
  const bool virtual_imaginary =
      observer && observer->wants_virtual_imaginary() && layout.variant == model::Variant::rope && rope;

  Matrix q = linear(x, layer.q, layer.q_bias);
  Matrix k = linear(x, layer.k, layer.k_bias);
  const Matrix v = linear(x, layer.v, layer.v_bias);
  qk_norm(q, d, spec.qk_norm, spec.qk_norm_spec, layer.q_norm);
  qk_norm(k, d, spec.qk_norm, spec.qk_norm_spec, layer.k_norm);
  if (rope) k = rotated(k, d, *rope, HeadKind::real);
  const Matrix q_real = rope ? rotated(q, d, *rope, HeadKind::real) : q;
  const bool need_imaginary = layout.variant != model::Variant::rope || virtual_imaginary;
  const Matrix q_imaginary = need_imaginary ? rotated(q, d, *rope, HeadKind::imaginary) : Matrix();

  Matrix out = Matrix::Zero(T, layout.o_columns());
  const long block = options_.query_block;
  // Allocations and the observer may throw: caught per thread, rethrown after the loop.
  ParallelErrors errors;
#pragma omp parallel for schedule(dynamic)
  for (int a = 0; a < layout.attention_heads; ++a) errors.run([&] {
    const AttentionHead head = layout.head(a);
    const bool observed = observer && observer->observes(layer_index, a);
    const bool ablated = options.ablation.ablates(layer_index, head);
    if (ablated && !observed) return;
    Matrix query = (head.kind == HeadKind::real ? q_real : q_imaginary).middleCols(head.query_head * d, d);
    if (options.noise && options.noise->component == head.kind && options.noise->std > 0) {
      for (long t = 0; t < T; ++t)
        for (int i = 0; i < d; ++i)
          query(t, i) += static_cast<float>(options.noise->std * backend::query_noise_value(
                                                options.noise->seed, layer_index, options.noise->first_head + a, t, i));
    }
    const auto keys = k.middleCols(head.kv_head * d, d);
    const auto values = v.middleCols(head.kv_head * d, d);
    Matrix scores, probs, virtual_scores;
    for (long q0 = 0; q0 < T; q0 += block) {
      const long rows = std::min(block, T - q0), visible = q0 + rows;
      scores.noalias() = query.middleRows(q0, rows) * keys.topRows(visible).transpose();
      finish_scores(scores, scale, spec.softcap, q0, window);
      causal_softmax(scores, probs, q0, window);
      if (observed) {
        // An ablated head's output never reaches the residual stream, so the
        // stream's checks cannot see it: its probabilities are checked before
        // the observer reads them.
        if (ablated && !probs.allFinite())
          throw backend::non_finite_activations(
              sequence,
              fmt::format("in the attention probabilities of layer {}, head {} (ablated: its output does not reach the "
                          "residual stream; first at position {})",
                          layer_index, a, q0 + first_non_finite_row(probs)),
              options);
        backend::AttentionBlock b{sequence, layer_index, head, q0, visible, visible, scores.data(), probs.data(), nullptr};
        if (virtual_imaginary) {
          virtual_scores.noalias() =
              q_imaginary.middleCols(head.query_head * d, d).middleRows(q0, rows) * keys.topRows(visible).transpose();
          finish_scores(virtual_scores, scale, spec.softcap, q0, window);
          b.virtual_imaginary_scores = virtual_scores.data();
        }
        observer->on_block(b);
      }
      if (!ablated) out.block(q0, static_cast<Eigen::Index>(a) * d, rows, d).noalias() = probs * values.topRows(visible);
    }
  });
  errors.rethrow();
  return out;
}

}  // namespace ropescope::cpu
