// The CPU reference forward pass (see cpu_backend.hpp). The forward reads as
// the model does: embed, then per layer norm -> attention -> residual ->
// norm -> MLP -> residual, then final norm and the next-token loss.
#include "cpu/cpu_backend.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include "backend/query_noise_value.hpp"
#include "core/error.hpp"

namespace ropescope::cpu {

using backend::Matrix;
using model::AttentionHead;
using model::HeadKind;

namespace {

Matrix to_matrix(const io::TensorView& t) {
  Matrix m(static_cast<Eigen::Index>(t.shape().at(0)), static_cast<Eigen::Index>(t.shape().at(1)));
  t.to_float(std::span<float>(m.data(), static_cast<std::size_t>(m.size())));
  return m;
}

Eigen::VectorXf to_vector(const io::TensorView& t) {
  Eigen::VectorXf v(static_cast<Eigen::Index>(t.numel()));
  t.to_float(std::span<float>(v.data(), static_cast<std::size_t>(v.size())));
  return v;
}

Eigen::VectorXf to_vector(const std::optional<io::TensorView>& t) { return t ? to_vector(*t) : Eigen::VectorXf(); }

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
#pragma omp parallel for schedule(static)
  for (Eigen::Index t = 0; t < out.rows(); ++t)
    for (int h = 0; h < heads; ++h) model::rotate_head(out.row(t).data() + h * d, rope, t, kind);
  return out;
}

// Turns each row of masked scores into probabilities over the visible keys
// 0 .. q_begin + i (vectorised exp; the sum in float64).
void causal_softmax(const Matrix& scores, Matrix& probs, long q_begin) {
  probs.resizeLike(scores);
  for (Eigen::Index i = 0; i < scores.rows(); ++i) {
    const Eigen::Index visible = q_begin + i + 1;
    const auto row = scores.row(i).head(visible);
    auto p = probs.row(i).head(visible);
    p = (row.array() - row.maxCoeff()).exp();
    p *= static_cast<float>(1.0 / p.cast<double>().sum());
    probs.row(i).tail(probs.cols() - visible).setZero();
  }
}

void mask_future(Matrix& scores, long q_begin) {
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (Eigen::Index i = 0; i < scores.rows(); ++i)
    scores.row(i).tail(scores.cols() - (q_begin + i) - 1).setConstant(minus_inf);
}

std::uint64_t physical_memory_bytes() {
  return static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE));
}

}  // namespace

CpuBackend::CpuBackend(std::shared_ptr<const model::Model> model, CpuOptions options)
    : model_(std::move(model)), options_(options) {
  if (options_.query_block < 1) throw ArgumentError("query block size must be >= 1");
  const auto& w = model_->weights;
  embed_ = to_matrix(w.embed_tokens);
  lm_head_ = to_matrix(w.lm_head);
  final_norm_ = to_vector(w.norm);
  for (const auto& lw : w.layers) {
    Layer l;
    l.q = to_matrix(lw.q_proj);
    l.k = to_matrix(lw.k_proj);
    l.v = to_matrix(lw.v_proj);
    l.o = to_matrix(lw.o_proj);
    l.gate = to_matrix(lw.gate_proj);
    l.up = to_matrix(lw.up_proj);
    l.down = to_matrix(lw.down_proj);
    l.q_bias = to_vector(lw.q_bias);
    l.k_bias = to_vector(lw.k_bias);
    l.v_bias = to_vector(lw.v_bias);
    l.o_bias = to_vector(lw.o_bias);
    l.gate_bias = to_vector(lw.gate_bias);
    l.up_bias = to_vector(lw.up_bias);
    l.down_bias = to_vector(lw.down_bias);
    l.input_norm = to_vector(lw.input_layernorm);
    l.post_norm = to_vector(lw.post_attention_layernorm);
    layers_.push_back(std::move(l));
  }
}

std::string CpuBackend::precision() const {
  return "cpu: float32 weights, activations and matmuls (Eigen); RoPE angles reduced exactly in float128 "
         "(or HF float32 on request); RMSNorm, softmax and log-sum-exp sums in float64";
}

std::shared_ptr<const model::RopeTable> CpuBackend::rope_table(long T, const backend::ForwardOptions& options) {
  const auto key = model::rope_table_key(options.rope_override.value_or(model_->config.rope), options.angles, T);
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

std::vector<backend::ForwardResult> CpuBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                        const backend::ForwardOptions& options) {
  const auto& c = model_->config;
  const auto& layout = model_->layout;
  backend::check_forward_request(*model_, sequences, options);
  for (const auto& tokens : sequences) {
    // Activations (x, norms, q/k/v, rotations, attention output, MLP) plus one
    // score/probability block per thread, plus logits when kept.
    const std::uint64_t T = tokens.size();
    std::uint64_t per_token = 4ull * (6ull * c.hidden_size + 3ull * layout.q_rows() + 3ull * layout.kv_rows() +
                                      layout.o_columns() + 3ull * c.intermediate_size);
    std::uint64_t bytes = T * per_token + 4ull * 4 * options_.query_block * T * 16 +
                          (options.keep_logits ? 4ull * T * c.vocab_size : 0) +
                          (options.keep_hidden ? 4ull * T * c.hidden_size * c.num_hidden_layers : 0);
    if (bytes > physical_memory_bytes() * 9 / 10)
      throw ArgumentError(fmt::format("a context of T = {} tokens needs about {:.1f} GiB on the CPU backend; this "
                                      "machine has {:.1f} GiB",
                                      T, bytes / 1073741824.0, physical_memory_bytes() / 1073741824.0));
  }
  std::vector<backend::ForwardResult> results;
  results.reserve(sequences.size());
  for (std::size_t s = 0; s < sequences.size(); ++s) results.push_back(forward_one(static_cast<int>(s), sequences[s], options));
  return results;
}

backend::ForwardResult CpuBackend::forward_one(int sequence, const std::vector<std::int32_t>& tokens,
                                               const backend::ForwardOptions& options) {
  const long T = static_cast<long>(tokens.size());
  const auto rope = rope_table(T, options);
  backend::ForwardResult result;

  Matrix x(T, embed_.cols());
  for (long t = 0; t < T; ++t) x.row(t) = embed_.row(tokens[t]);

  for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
    const Layer& layer = layers_[l];
    x += linear(attention(sequence, l, rms_norm(x, layer.input_norm), *rope, options), layer.o, layer.o_bias);
    x += mlp(layer, rms_norm(x, layer.post_norm));
    if (options.keep_hidden) result.hidden.push_back(x);
  }
  const Matrix final_hidden = rms_norm(x, final_norm_);

  // Next-token loss in chunks of rows, so T x V logits are never needed at once.
  const long V = lm_head_.rows();
  if (!options.loss && !options.keep_logits) return result;
  if (options.keep_logits) result.logits.resize(T, V);
  if (options.loss) result.nll.resize(T - 1);
  constexpr long kChunk = 256;
  for (long t0 = 0; t0 < T; t0 += kChunk) {
    const long rows = std::min(kChunk, T - t0);
    Matrix logits = final_hidden.middleRows(t0, rows) * lm_head_.transpose();
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

Matrix CpuBackend::rms_norm(const Matrix& x, const Eigen::VectorXf& weight) const {
  Matrix y(x.rows(), x.cols());
  const double eps = model_->config.rms_norm_eps;
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    const double mean_square = x.row(t).cast<double>().squaredNorm() / static_cast<double>(x.cols());
    const float inv = static_cast<float>(1.0 / std::sqrt(mean_square + eps));
    y.row(t) = (x.row(t) * inv).cwiseProduct(weight.transpose());
  }
  return y;
}

Matrix CpuBackend::mlp(const Layer& layer, const Matrix& x) const {
  Matrix gate = linear(x, layer.gate, layer.gate_bias);
  const Matrix up = linear(x, layer.up, layer.up_bias);
  gate = gate.array() / (1.0f + (-gate.array()).exp());  // silu
  return linear(gate.cwiseProduct(up), layer.down, layer.down_bias);
}

Matrix CpuBackend::attention(int sequence, int layer_index, const Matrix& x, const model::RopeTable& rope,
                             const backend::ForwardOptions& options) const {
  const Layer& layer = layers_[layer_index];
  const auto& layout = model_->layout;
  const int d = layout.head_dim;
  const long T = x.rows();
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  backend::AttentionObserver* observer = options.observer;
  const bool virtual_imaginary =
      observer && observer->wants_virtual_imaginary() && layout.variant == model::Variant::rope;

  const Matrix q = linear(x, layer.q, layer.q_bias);
  const Matrix k = rotated(linear(x, layer.k, layer.k_bias), d, rope, HeadKind::real);
  const Matrix v = linear(x, layer.v, layer.v_bias);
  const Matrix q_real = rotated(q, d, rope, HeadKind::real);
  const bool need_imaginary = layout.variant != model::Variant::rope || virtual_imaginary;
  const Matrix q_imaginary = need_imaginary ? rotated(q, d, rope, HeadKind::imaginary) : Matrix();

  Matrix out = Matrix::Zero(T, layout.o_columns());
  const long block = options_.query_block;
#pragma omp parallel for schedule(dynamic)
  for (int a = 0; a < layout.attention_heads; ++a) {
    const AttentionHead head = layout.head(a);
    const bool observed = observer && observer->observes(layer_index, a);
    const bool ablated = options.ablation.ablates(layer_index, head);
    if (ablated && !observed) continue;
    Matrix query = (head.kind == HeadKind::real ? q_real : q_imaginary).middleCols(head.query_head * d, d);
    if (options.noise && options.noise->component == head.kind && options.noise->std > 0) {
      for (long t = 0; t < T; ++t)
        for (int i = 0; i < d; ++i)
          query(t, i) += static_cast<float>(options.noise->std * backend::query_noise_value(options.noise->seed, layer_index, a, t, i));
    }
    const auto keys = k.middleCols(head.kv_head * d, d);
    const auto values = v.middleCols(head.kv_head * d, d);
    Matrix scores, probs, virtual_scores;
    for (long q0 = 0; q0 < T; q0 += block) {
      const long rows = std::min(block, T - q0), visible = q0 + rows;
      scores.noalias() = query.middleRows(q0, rows) * keys.topRows(visible).transpose();
      scores *= scale;
      mask_future(scores, q0);
      causal_softmax(scores, probs, q0);
      if (observed) {
        backend::AttentionBlock b{sequence, layer_index, head, q0, visible, visible, scores.data(), probs.data(), nullptr};
        if (virtual_imaginary) {
          virtual_scores.noalias() =
              q_imaginary.middleCols(head.query_head * d, d).middleRows(q0, rows) * keys.topRows(visible).transpose();
          virtual_scores *= scale;
          mask_future(virtual_scores, q0);
          b.virtual_imaginary_scores = virtual_scores.data();
        }
        observer->on_block(b);
      }
      if (!ablated) out.block(q0, static_cast<Eigen::Index>(a) * d, rows, d).noalias() = probs * values.topRows(visible);
    }
  }
  return out;
}

}  // namespace ropescope::cpu
