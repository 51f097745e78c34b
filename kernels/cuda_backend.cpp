// The CUDA forward pass (see cuda_backend.hpp). Per layer: fp32 residual x ->
// RMSNorm (bf16) -> q, k, v GEMMs -> RoPE keys -> attention (queries rotated
// in the kernel, real and imaginary) -> ablated heads zeroed -> x += o_proj
// GEMM (fp32 output, beta = 1) -> RMSNorm -> gate, up GEMMs -> SwiGLU ->
// x += down_proj GEMM. Then final RMSNorm and, per chunk of tokens, fp32
// logits from one GEMM and the next-token loss from a row kernel.
#include "kernels/cuda_backend.hpp"

#include <cublas_v2.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "core/error.hpp"
#include "kernels/device_info.hpp"
#include "kernels/forward_ops.hpp"

namespace ropescope::cuda {

using backend::Matrix;
using kernels::bf16;

namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(fmt::format("CUDA backend: {}: {}", what, cudaGetErrorString(err)));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(fmt::format("CUDA backend: {}: {}", what, cublasGetStatusString(status)));
}

// One cudaMalloc'd array, freed on destruction.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t n) : n_(n) {
    if (n) check(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)), "cudaMalloc");
  }
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DeviceArray() { cudaFree(p_); }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// A weight as bf16 on the device: BF16 tensors byte for byte, F16 / F32 / F64
// converted to float and rounded to nearest-even bf16 (F64 thus rounds twice).
DeviceArray<bf16> upload(const io::TensorView& t) {
  DeviceArray<bf16> d(t.numel());
  if (t.dtype() == io::Dtype::BF16) {
    check(cudaMemcpy(d.get(), t.bytes().data(), t.numel() * sizeof(bf16), cudaMemcpyHostToDevice), "upload weight");
    return d;
  }
  const std::vector<float> f = t.to_float();
  std::vector<bf16> h(f.size());
  std::transform(f.begin(), f.end(), h.begin(), [](float x) { return __float2bfloat16_rn(x); });
  check(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(bf16), cudaMemcpyHostToDevice), "upload weight");
  return d;
}

DeviceArray<bf16> upload(const std::optional<io::TensorView>& t) { return t ? upload(*t) : DeviceArray<bf16>(); }

// Token rows of the LM head per chunk: fp32 logits of at most this many bytes.
constexpr std::size_t kLogitChunkBytes = std::size_t{256} << 20;
// keep_logits copies T x V floats to the host: at most this many (1 GiB).
constexpr std::size_t kMaxKeptLogits = std::size_t{1} << 28;

}  // namespace

struct CudaBackend::State {
  struct Layer {
    DeviceArray<bf16> q, k, v, o, gate, up, down;
    DeviceArray<bf16> q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;  // empty when absent
    DeviceArray<bf16> input_norm, post_norm;
  };
  // Activations for sequences of up to `T` tokens.
  struct Workspace {
    long T = 0;
    long logit_rows = 0;
    DeviceArray<std::int32_t> tokens;
    DeviceArray<float> x, lse, logits, nll;
    DeviceArray<bf16> xn, q, k, v, attn, gate, up, act;
  };
  struct CachedRope {
    model::RopeTableKey key;
    kernels::DeviceRopeTable table;
  };

  int device = 0;
  std::string device_name;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  DeviceArray<bf16> embed, lm_head_own, final_norm;
  const bf16* lm_head = nullptr;  // embed when tied
  std::vector<Layer> layers;
  Workspace ws;
  std::vector<CachedRope> rope_cache;

  ~State() {
    for (auto& c : rope_cache) kernels::free_rope_table(c.table);
    if (cublas) cublasDestroy(cublas);
    if (stream) cudaStreamDestroy(stream);
  }

  // y [T, out] = x [T, in] W^T with W [out, in] (row-major, HF order):
  // column-major cuBLAS computes y^T = W x^T. fp32 accumulation; y bf16 or
  // fp32; beta = 1 adds to what y holds (the residual, or broadcast biases).
  void gemm(const bf16* x, const bf16* w, void* y, cudaDataType_t y_type, long T, long out, long in, float beta) {
    const float alpha = 1.0f;
    check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                       static_cast<int>(in), &alpha, w, CUDA_R_16BF, static_cast<int>(in), x, CUDA_R_16BF,
                       static_cast<int>(in), &beta, y, y_type, static_cast<int>(out), CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  }
  // y = x W^T (+ bias), bf16 output rounded once.
  void linear_bf16(const bf16* x, const DeviceArray<bf16>& w, const DeviceArray<bf16>& bias, bf16* y, long T,
                   long out, long in) {
    if (bias.size()) kernels::broadcast_rows_bf16(y, bias.get(), static_cast<int>(T), static_cast<int>(out), stream);
    gemm(x, w.get(), y, CUDA_R_16BF, T, out, in, bias.size() ? 1.0f : 0.0f);
  }
  // residual x += y W^T (+ bias), fp32.
  void residual_add(const bf16* y, const DeviceArray<bf16>& w, const DeviceArray<bf16>& bias, float* x, long T,
                    long out, long in) {
    if (bias.size()) kernels::add_rows_f32(x, bias.get(), static_cast<int>(T), static_cast<int>(out), stream);
    gemm(y, w.get(), x, CUDA_R_32F, T, out, in, 1.0f);
  }
};

CudaBackend::CudaBackend(std::shared_ptr<const model::Model> model, int device)
    : model_(std::move(model)), state_(std::make_unique<State>()) {
  std::string why;
  const auto devices = kernels::cuda_devices(&why);
  if (devices.empty()) throw ArgumentError(fmt::format("CUDA backend: no usable CUDA device ({})", why));
  if (device < 0 || device >= static_cast<int>(devices.size()))
    throw ArgumentError(fmt::format("CUDA backend: device {} does not exist ({})", device,
                                    kernels::describe_cuda_devices()));
  const auto& layout = model_->layout;
  if (layout.head_dim % 2 != 0 || layout.head_dim > 256)
    throw ArgumentError(fmt::format("CUDA backend: head_dim {} is not supported (even, at most 256)", layout.head_dim));
  auto& s = *state_;
  s.device = device;
  s.device_name = devices[device].name;
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&s.cublas), "cublasCreate");
  check(cublasSetStream(s.cublas, s.stream), "cublasSetStream");

  const auto& w = model_->weights;
  s.embed = upload(w.embed_tokens);
  if (w.lm_head.bytes().data() == w.embed_tokens.bytes().data()) {
    s.lm_head = s.embed.get();
  } else {
    s.lm_head_own = upload(w.lm_head);
    s.lm_head = s.lm_head_own.get();
  }
  s.final_norm = upload(w.norm);
  for (const auto& lw : w.layers) {
    State::Layer l;
    l.q = upload(lw.q_proj);
    l.k = upload(lw.k_proj);
    l.v = upload(lw.v_proj);
    l.o = upload(lw.o_proj);
    l.gate = upload(lw.gate_proj);
    l.up = upload(lw.up_proj);
    l.down = upload(lw.down_proj);
    l.q_bias = upload(lw.q_bias);
    l.k_bias = upload(lw.k_bias);
    l.v_bias = upload(lw.v_bias);
    l.o_bias = upload(lw.o_bias);
    l.gate_bias = upload(lw.gate_bias);
    l.up_bias = upload(lw.up_bias);
    l.down_bias = upload(lw.down_bias);
    l.input_norm = upload(lw.input_layernorm);
    l.post_norm = upload(lw.post_attention_layernorm);
    s.layers.push_back(std::move(l));
  }
}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::name() const { return "cuda"; }

std::string CudaBackend::precision() const {
  return fmt::format(
      "cuda ({}): bf16 weights (bf16 checkpoints as stored; f16/f32 rounded to nearest-even bf16); bf16 "
      "activations; cuBLAS GEMMs with bf16 inputs and fp32 accumulation; fp32 residual stream; RMSNorm "
      "statistics in fp32; keys rotated then rounded to bf16; attention softmax in fp32 (flash kernel for "
      "d = 64, 128: bf16 probabilities times bf16 values, fp32 accumulation); RoPE tables as on the CPU (exact "
      "float128 reduction or HF float32), stored as float; fp32 logits and log-sum-exp, in chunks of tokens",
      state_->device_name);
}

std::vector<backend::ForwardResult> CudaBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                         const backend::ForwardOptions& options) {
  const auto& c = model_->config;
  if (options.observer)
    throw ArgumentError("the attention observer (attention maps, head statistics) is not yet supported on the CUDA "
                        "backend; use --device cpu");
  if (options.noise)
    throw ArgumentError("query noise is not yet supported on the CUDA backend; use --device cpu");
  backend::check_forward_request(*model_, sequences, options);
  for (const auto& tokens : sequences) {
    if (options.keep_logits && tokens.size() * static_cast<std::size_t>(c.vocab_size) > kMaxKeptLogits)
      throw ArgumentError(fmt::format(
          "keep_logits on the CUDA backend copies T x V logits to the host: T = {} x V = {} is over the limit of "
          "{} floats (1 GiB); use a shorter sequence or do not keep logits",
          tokens.size(), c.vocab_size, kMaxKeptLogits));
  }
  check(cudaSetDevice(state_->device), "cudaSetDevice");
  std::vector<backend::ForwardResult> results;
  results.reserve(sequences.size());
  for (const auto& tokens : sequences) results.push_back(forward_one(tokens, options));
  return results;
}

backend::ForwardResult CudaBackend::forward_one(const std::vector<std::int32_t>& tokens,
                                                const backend::ForwardOptions& options) {
  auto& s = *state_;
  const auto& c = model_->config;
  const auto& layout = model_->layout;
  const long T = static_cast<long>(tokens.size());
  const long h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = layout.head_dim;
  const long Q = layout.q_rows(), KV = layout.kv_rows(), O = layout.o_columns();
  const float eps = static_cast<float>(c.rms_norm_eps);
  cudaStream_t stream = s.stream;

  // Activations, grown to the longest sequence seen.
  if (s.ws.T < T) {
    const long rows = std::max<long>(1, std::min<long>(T, static_cast<long>(kLogitChunkBytes / (4 * V))));
    const std::size_t bytes = 4ull * T * (1 + h + layout.attention_heads + 1) + 4ull * rows * V +
                              2ull * T * (h + Q + 2 * KV + O + 3 * I);
    std::size_t free_bytes = 0, total_bytes = 0;
    s.ws = State::Workspace{};  // release the old buffers first
    check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    if (bytes > free_bytes)
      throw ArgumentError(fmt::format("a context of T = {} tokens needs about {:.2f} GiB of activations on the CUDA "
                                      "backend; {:.2f} GiB of device memory is free",
                                      T, bytes / 1073741824.0, free_bytes / 1073741824.0));
    State::Workspace ws;
    ws.T = T;
    ws.logit_rows = rows;
    ws.tokens = DeviceArray<std::int32_t>(T);
    ws.x = DeviceArray<float>(T * h);
    ws.lse = DeviceArray<float>(T * layout.attention_heads);
    ws.logits = DeviceArray<float>(rows * V);
    ws.nll = DeviceArray<float>(T);
    ws.xn = DeviceArray<bf16>(T * h);
    ws.q = DeviceArray<bf16>(T * Q);
    ws.k = DeviceArray<bf16>(T * KV);
    ws.v = DeviceArray<bf16>(T * KV);
    ws.attn = DeviceArray<bf16>(T * O);
    ws.gate = DeviceArray<bf16>(T * I);
    ws.up = DeviceArray<bf16>(T * I);
    ws.act = DeviceArray<bf16>(T * I);
    s.ws = std::move(ws);
  }
  auto& ws = s.ws;

  // RoPE table, cached by the same key as the CPU backend's.
  const auto key = model::rope_table_key(options.rope_override.value_or(c.rope), options.angles, T);
  const kernels::DeviceRopeTable* rope = nullptr;
  for (auto& cached : s.rope_cache) {
    if (cached.key == key) {
      if (cached.table.positions < T) {
        check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        kernels::free_rope_table(cached.table);
        const auto host = model::make_rope_table(key.spec, T, key.angles, T);
        cached.table = kernels::upload_rope_table(host.cos.data(), host.sin.data(), host.positions, host.pairs);
      }
      rope = &cached.table;
    }
  }
  if (!rope) {
    const auto host = model::make_rope_table(key.spec, T, key.angles, T);
    s.rope_cache.push_back(
        {key, kernels::upload_rope_table(host.cos.data(), host.sin.data(), host.positions, host.pairs)});
    rope = &s.rope_cache.back().table;
  }

  const kernels::AttentionShape shape{static_cast<int>(T), static_cast<int>(d), layout.query_heads, layout.kv_heads,
                                      layout.attention_heads, layout.variant != model::Variant::rope};
  const bool flash = (d == 64 || d == 128) &&
                     (layout.group_size == 1 || layout.group_size == 2 || layout.group_size == 4 ||
                      layout.group_size == 8);

  backend::ForwardResult result;
  check(cudaMemcpyAsync(ws.tokens.get(), tokens.data(), T * sizeof(std::int32_t), cudaMemcpyHostToDevice, stream),
        "upload tokens");
  kernels::embed_rows_f32(s.embed.get(), ws.tokens.get(), ws.x.get(), static_cast<int>(T), static_cast<int>(h), stream);

  for (int l = 0; l < static_cast<int>(s.layers.size()); ++l) {
    const auto& L = s.layers[l];
    kernels::rmsnorm_f32_bf16(ws.x.get(), L.input_norm.get(), ws.xn.get(), static_cast<int>(T), static_cast<int>(h),
                              eps, stream);
    s.linear_bf16(ws.xn.get(), L.q, L.q_bias, ws.q.get(), T, Q, h);
    s.linear_bf16(ws.xn.get(), L.k, L.k_bias, ws.k.get(), T, KV, h);
    s.linear_bf16(ws.xn.get(), L.v, L.v_bias, ws.v.get(), T, KV, h);
    kernels::rope_keys_bf16(ws.k.get(), static_cast<int>(T), layout.kv_heads, static_cast<int>(d), *rope, stream);
    if (flash)
      kernels::attention_forward_bf16(ws.q.get(), ws.k.get(), ws.v.get(), *rope, shape, ws.attn.get(), ws.lse.get(),
                                      stream);
    else
      kernels::attention_simple_bf16(ws.q.get(), ws.k.get(), ws.v.get(), *rope, shape, ws.attn.get(), ws.lse.get(),
                                     stream);
    for (int a = 0; a < layout.attention_heads && !options.ablation.empty(); ++a)
      if (options.ablation.ablates(l, layout.head(a)))
        check(cudaMemset2DAsync(ws.attn.get() + a * d, O * sizeof(bf16), 0, d * sizeof(bf16), T, stream),
              "zero ablated head");
    s.residual_add(ws.attn.get(), L.o, L.o_bias, ws.x.get(), T, h, O);

    kernels::rmsnorm_f32_bf16(ws.x.get(), L.post_norm.get(), ws.xn.get(), static_cast<int>(T), static_cast<int>(h),
                              eps, stream);
    s.linear_bf16(ws.xn.get(), L.gate, L.gate_bias, ws.gate.get(), T, I, h);
    s.linear_bf16(ws.xn.get(), L.up, L.up_bias, ws.up.get(), T, I, h);
    kernels::swiglu_bf16(ws.gate.get(), ws.up.get(), ws.act.get(), static_cast<std::size_t>(T) * I, stream);
    s.residual_add(ws.act.get(), L.down, L.down_bias, ws.x.get(), T, h, I);
    if (options.keep_hidden) {
      Matrix hidden(T, h);
      check(cudaMemcpyAsync(hidden.data(), ws.x.get(), T * h * sizeof(float), cudaMemcpyDeviceToHost, stream),
            "copy hidden state");
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      result.hidden.push_back(std::move(hidden));
    }
  }
  kernels::rmsnorm_f32_bf16(ws.x.get(), s.final_norm.get(), ws.xn.get(), static_cast<int>(T), static_cast<int>(h), eps,
                            stream);

  // Next-token loss, ws.logit_rows tokens at a time.
  if (options.keep_logits) result.logits.resize(T, V);
  for (long t0 = 0; t0 < T; t0 += ws.logit_rows) {
    const long rows = std::min(ws.logit_rows, T - t0);
    s.gemm(ws.xn.get() + t0 * h, s.lm_head, ws.logits.get(), CUDA_R_32F, rows, V, h, 0.0f);
    const long scored = std::min(rows, T - 1 - t0);  // the last position has no next token
    if (scored > 0)
      kernels::next_token_nll_f32(ws.logits.get(), static_cast<int>(scored), static_cast<int>(V),
                                  ws.tokens.get() + t0 + 1, ws.nll.get() + t0, stream);
    if (options.keep_logits) {
      check(cudaMemcpyAsync(result.logits.data() + t0 * V, ws.logits.get(), rows * V * sizeof(float),
                            cudaMemcpyDeviceToHost, stream),
            "copy logits");
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    }
  }
  std::vector<float> nll(T - 1);
  if (T > 1)
    check(cudaMemcpyAsync(nll.data(), ws.nll.get(), (T - 1) * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "copy nll");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  result.nll.assign(nll.begin(), nll.end());
  return result;
}

}  // namespace ropescope::cuda
