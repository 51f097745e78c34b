// The CUDA forward pass (see cuda_backend.hpp). Embedding (times the
// embedding multiplier) into the fp32 residual x, then the shared decoder
// loop (backend/decoder.hpp: pre-norm, sandwich, post-norm and parallel
// blocks). Attention branch: norm (RMS, (1 + w) RMS or LayerNorm; bf16) ->
// q, k, v GEMMs -> qk-norm -> RoPE keys with the layer's table (global,
// local, or none for NoPE layers) -> attention (queries rotated in the
// kernel, real and imaginary; with query noise, rotated and noised first) ->
// the observer's view (distance sums, or score blocks) -> ablated heads
// zeroed -> o_proj. MLP branch: gate / up GEMMs -> activation (gated or plain;
// SiLU, erf- or tanh-GELU) -> down_proj. A branch without a post norm or
// residual multiplier adds straight into x (fp32 GEMM output, beta = 1);
// otherwise its fp32 output is normed and scaled into x by one kernel. After
// each branch the first non-finite residual row is flagged in one device
// word, by the next norm as it reads x (or a small kernel where nothing
// reads x whole first). Then the final norm and, per chunk of tokens, fp32
// logits from one GEMM (times the logit multiplier), the final softcap, and
// the next-token loss; the flag is read once at the end, before the loss is
// checked finite on the host (backend::non_finite_activations names the
// layer and branch).
#include "kernels/cuda_backend.hpp"
#include "kernels/kernel_choice.hpp"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "backend/decoder.hpp"
#include "core/error.hpp"
#include "io/dtype.hpp"
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

using kernels::WeightType;

// The device dtype of a checkpoint's weights (mixed dtypes are refused at load).
WeightType weight_type(io::Dtype dtype) {
  switch (dtype) {
    case io::Dtype::BF16: return WeightType::bf16;
    case io::Dtype::F16: return WeightType::f16;
    case io::Dtype::F32:
    case io::Dtype::F64: return WeightType::f32;
    default: throw ArgumentError(fmt::format("CUDA backend: weights of dtype {} are not supported", io::to_string(dtype)));
  }
}

cudaDataType_t cuda_type(WeightType type) {
  switch (type) {
    case WeightType::bf16: return CUDA_R_16BF;
    case WeightType::f16: return CUDA_R_16F;
    case WeightType::f32: break;
  }
  return CUDA_R_32F;
}

std::size_t type_size(WeightType type) { return type == WeightType::f32 ? 4 : 2; }

// A matrix in its stored dtype, byte for byte (F64, held as f32, is rounded
// once). A row selection (a fused projection's part: Phi-3 qkv_proj, GPT-NeoX
// query_key_value, GLM gate_up_proj; or q / k rows permuted for interleaved
// rotary) or a column range (a tensor-parallel shard) is gathered on the host
// first: selected row r is columns first_column .. of the tensor's row
// w.source_row(r), so the device holds a plain [rows, columns].
DeviceArray<std::byte> upload_matrix(const model::WeightView& w) {
  const io::TensorView& t = w.tensor;
  const std::size_t element = type_size(weight_type(t.dtype()));
  DeviceArray<std::byte> d(w.numel() * element);
  if (t.dtype() == io::Dtype::F64) {
    const std::vector<float> f = w.to_float();
    check(cudaMemcpy(d.get(), f.data(), d.size(), cudaMemcpyHostToDevice), "upload weight");
  } else if (w.gathered()) {
    const std::size_t out_row_bytes = w.column_count() * element;
    std::vector<std::byte> rows(d.size());
    for (std::size_t r = 0; r < w.row_count(); ++r)
      std::memcpy(rows.data() + r * out_row_bytes,
                  t.bytes().data() + (w.source_row(r) * w.row_elements + w.first_column) * element, out_row_bytes);
    check(cudaMemcpy(d.get(), rows.data(), d.size(), cudaMemcpyHostToDevice), "upload weight");
  } else {
    check(cudaMemcpy(d.get(), t.bytes().data(), d.size(), cudaMemcpyHostToDevice), "upload weight");
  }
  return d;
}

DeviceArray<float> upload_floats(const std::vector<float>& f) {
  DeviceArray<float> d(f.size());
  check(cudaMemcpy(d.get(), f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice), "upload vector");
  return d;
}

// Norm weights and biases as fp32 (exact for bf16, f16 and f32 checkpoints).
DeviceArray<float> upload_vector(const model::WeightView& t) {
  std::vector<float> f(t.numel());
  t.to_float(f);
  return upload_floats(f);
}

DeviceArray<float> upload_vector(const std::optional<model::WeightView>& t) {
  return t ? upload_vector(*t) : DeviceArray<float>();
}

// A projection's bias: fp32, and for bf16 weights also rounded once to bf16
// (cuBLASLt's bias epilogue takes the output's type; the bf16 outputs of
// bf16 GEMMs got the same rounded rows before it). Empty when absent.
struct DeviceBias {
  DeviceArray<float> f32;
  DeviceArray<bf16> rounded;
  std::size_t size() const { return f32.size(); }
};

DeviceBias upload_bias(const std::optional<model::WeightView>& t, bool bf16_weights) {
  DeviceBias b;
  if (!t) return b;
  std::vector<float> f(t->numel());
  t->to_float(f);
  b.f32 = upload_floats(f);
  if (bf16_weights) {
    std::vector<std::uint16_t> r(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) r[i] = io::float_to_bf16(f[i]);
    b.rounded = DeviceArray<bf16>(r.size());
    check(cudaMemcpy(b.rounded.get(), r.data(), r.size() * sizeof(std::uint16_t), cudaMemcpyHostToDevice),
          "upload bias");
  }
  return b;
}

// A norm's weights on the device: the multiplier (w, or 1 + w in fp32 for
// rms_offset, as the CPU backend and HF's Gemma form it) and the bias.
struct DeviceNorm {
  DeviceArray<float> weight, bias;  // empty when the norm is absent (the slot unused by the block kind)
};

// `parts` concatenated (a qk-norm's weights: StableLM stores one tensor per head), as the multiplier.
DeviceArray<float> upload_norm_weight(const std::vector<const model::WeightView*>& parts, const model::NormSpec& spec) {
  std::vector<float> f;
  for (const auto* part : parts) {
    const std::size_t at = f.size();
    f.resize(at + part->numel());
    part->to_float(std::span<float>(f.data() + at, part->numel()));
  }
  if (spec.kind == model::NormKind::rms_offset)
    for (float& v : f) v += 1.0f;
  DeviceArray<float> d(f.size());
  check(cudaMemcpy(d.get(), f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice), "upload norm weight");
  return d;
}

DeviceNorm upload_norm(const std::optional<model::NormWeights>& n, const model::NormSpec& spec) {
  DeviceNorm d;
  if (!n) return d;
  d.weight = upload_norm_weight({&n->weight}, spec);
  d.bias = upload_vector(n->bias);
  return d;
}

// The kernels' view of a norm (weight_stride: see kernels::NormParams).
kernels::NormParams norm_params(const DeviceNorm& n, const model::NormSpec& spec) {
  return kernels::NormParams{n.weight.get(), n.bias.size() ? n.bias.get() : nullptr, 0,
                             spec.kind == model::NormKind::layer_norm, static_cast<float>(spec.eps)};
}

// Whether a branch's output needs the fp32 staging buffer (Workspace::branch):
// a post norm or a residual multiplier stands between the GEMM and the residual
// add, or (a tensor-parallel rank) an all-reduce does.
bool staged_branches(const model::Architecture& a, const backend::ForwardOptions& options) {
  return a.block == model::BlockKind::sandwich || a.block == model::BlockKind::post_norm ||
         a.residual_multiplier != 1 || options.branch_reducer;
}

// Token rows of the LM head per chunk: fp32 logits of at most this many bytes,
// rounded down to a multiple of kLogitChunkAlign rows (whole GEMM tiles).
constexpr std::size_t kLogitChunkBytes = std::size_t{512} << 20;
constexpr long kLogitChunkAlign = 256;
// keep_logits copies T x V floats to the host: at most this many (1 GiB).
constexpr std::size_t kMaxKeptLogits = std::size_t{1} << 28;
// cuBLASLt workspace for the GEMMs with a bias epilogue (cuBLAS's own default on Hopper).
constexpr std::size_t kLtWorkspaceBytes = std::size_t{32} << 20;
// Floats per materialised observer block array: rows x k_end <= 2^24 (64 MiB).
constexpr long kBlockFloats = long{1} << 24;

// Token rows per LM-head chunk for T tokens and a vocabulary of V.
long logit_rows(long T, long V) {
  const long budget_rows = static_cast<long>(kLogitChunkBytes / (4 * V));
  const long aligned_rows = budget_rows >= kLogitChunkAlign ? budget_rows / kLogitChunkAlign * kLogitChunkAlign
                                                            : std::max<long>(1, budget_rows);
  return std::min<long>(T, aligned_rows);
}

// Query rows per observer block for T tokens.
long observer_block_rows(long T) { return std::clamp<long>(kBlockFloats / T, 1, std::min<long>(T, 65535)); }

// Bytes of the activations workspace (CudaBackend::State::Workspace) for T
// tokens, with the noised-query buffer when `noisy`; in long double, as the
// request may be absurd.
long double workspace_bytes(const model::Model& m, WeightType wtype, long T, bool noisy, bool staged) {
  const auto& c = m.config;
  const auto& layout = m.layout;
  const long double t = T;
  const long h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const long Q = layout.q_rows(), KV = layout.kv_rows(), O = layout.o_columns();
  const long widest_in = std::max({h, O, I}), widest_out = std::max({Q, KV, I});
  const bool convert = wtype != WeightType::bf16;
  return 4.0L * t * (1 + h + layout.attention_heads + 1) + 4.0L * logit_rows(T, V) * V +
         (staged ? 4.0L * t * h : 0.0L) +
         (m.config.arch.block == model::BlockKind::parallel_two_norms ? 2.0L * t * h : 0.0L) +
         2.0L * t * (h + Q + 2 * KV + O + 3 * I) +
         (convert ? t * (static_cast<long double>(type_size(wtype)) * widest_in + 4.0L * widest_out) : 0.0L) +
         (noisy ? 2.0L * t * O : 0.0L);
}

}  // namespace

struct CudaBackend::State {
  double forward_seconds = 0;  // statistics()
  struct Layer {
    DeviceArray<std::byte> q, k, v, o, gate, up, down;  // stored dtype
    DeviceBias q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;  // empty when absent
    DeviceNorm norms[4];              // indexed by backend::NormSlot
    DeviceArray<float> q_norm, k_norm;  // qk-norm multipliers; empty without qk-norm
  };
  // Activations for sequences of up to `T` tokens.
  struct Workspace {
    long T = 0;
    long logit_rows = 0;
    DeviceArray<std::int32_t> tokens;
    DeviceArray<float> x, lse, logits, nll;
    DeviceArray<bf16> xn, q, k, v, attn, gate, up, act;
    // f16 / f32 weights only: GEMM inputs converted to the weights' dtype, and
    // fp32 GEMM outputs before their one rounding to bf16.
    DeviceArray<std::byte> converted;
    DeviceArray<float> gemm_out;
    DeviceArray<bf16> rotated_q;  // [T, A*d], allocated on the first noisy forward
    DeviceArray<bf16> xn_mlp;     // [T, h]: the MLP's norm of a parallel_two_norms block
    DeviceArray<float> branch;    // [T, h]: a branch's fp32 output before its post norm, multiplier or all-reduce
  };
  struct CachedRope {
    model::RopeTableKey key;
    kernels::DeviceRopeTable table;
  };

  int device = 0;
  std::string device_name;
  kernels::DeviceFacts device_facts;        // for the kernel choice
  std::vector<std::string> kernel_choices;  // of the last forward (kernel_choice.hpp)
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  cublasLtHandle_t cublas_lt = nullptr;
  DeviceArray<std::byte> lt_workspace;  // kLtWorkspaceBytes, for the bias epilogues
  // A GEMM with a bias epilogue for one shape: descriptors and the heuristic's
  // algorithm; `usable` false when cuBLASLt offers none (then the bias is added
  // as before: preloaded rows, or a row kernel).
  struct BiasGemm {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
  };
  // Keyed by (T, out, in, y's type, beta != 0).
  std::map<std::tuple<long, long, long, int, bool>, BiasGemm> bias_gemms;
  WeightType wtype = WeightType::bf16;
  DeviceArray<std::byte> embed, lm_head_own;
  const std::byte* lm_head = nullptr;  // embed when tied
  DeviceNorm final_norm;
  std::vector<Layer> layers;
  Workspace ws;
  std::vector<CachedRope> rope_cache;
  // The first non-finite residual row of a forward, (2 * layer + branch) * T + position
  // (kernels::RowCheck of a norm, or flag_non_finite_rows_f32), kernels::kNoNonFinite when none.
  DeviceArray<unsigned long long> non_finite;

  ~State() {
    // This backend's device, also for the members' destructors after this body: a data-parallel
    // caller destroys backends of several devices from one thread.
    cudaSetDevice(device);
    for (auto& c : rope_cache) kernels::free_rope_table(c.table);
    for (auto& [key, g] : bias_gemms) {
      if (g.desc) cublasLtMatmulDescDestroy(g.desc);
      for (auto layout : {g.w, g.x, g.y})
        if (layout) cublasLtMatrixLayoutDestroy(layout);
    }
    if (cublas_lt) cublasLtDestroy(cublas_lt);
    if (cublas) cublasDestroy(cublas);
    if (stream) cudaStreamDestroy(stream);
  }

  // y [T, out] = alpha x [T, in] W^T with W [out, in] (row-major, HF order), x
  // and W both of the weights' dtype: column-major cuBLAS computes y^T = W x^T.
  // fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32 for f32); y bf16 (bf16
  // weights only) or fp32; beta = 1 adds to what y holds.
  void gemm(const void* x, const void* w, void* y, cudaDataType_t y_type, long T, long out, long in, float beta,
            float alpha = 1.0f) {
    const cudaDataType_t t = cuda_type(wtype);
    check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                       static_cast<int>(in), &alpha, w, t, static_cast<int>(in), x, t, static_cast<int>(in), &beta, y,
                       y_type, static_cast<int>(out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  }
  // The bf16 activations x [T, in] as the weights' dtype: x itself for bf16
  // weights, else converted into the workspace (exact for f32; for f16 exact
  // unless |x| > 65504).
  const void* gemm_input(const bf16* x, long T, long in) {
    if (wtype == WeightType::bf16) return x;
    kernels::convert_bf16(x, ws.converted.get(), wtype, static_cast<std::size_t>(T) * in, stream);
    return ws.converted.get();
  }
  // The cached BiasGemm of a shape (made on first use): the same product as
  // gemm() (W [out, in] as column-major [in, out] transposed, x as [in, T],
  // y as [out, T]; fp32 compute, no TF32) with CUBLASLT_EPILOGUE_BIAS adding
  // bias[row] (a vector of y's type) to every token's column in fp32, before
  // the one rounding to y's type.
  BiasGemm& bias_gemm(long T, long out, long in, cudaDataType_t y_type, bool accumulate, const void* bias) {
    BiasGemm& g = bias_gemms[{T, out, in, static_cast<int>(y_type), accumulate}];
    if (g.desc) return g;
    const cudaDataType_t t = cuda_type(wtype);
    check(cublasLtMatmulDescCreate(&g.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const std::int32_t bias_type = y_type;
    auto set = [&](cublasLtMatmulDescAttributes_t a, const void* v, std::size_t n) {
      check(cublasLtMatmulDescSetAttribute(g.desc, a, v, n), "cublasLtMatmulDescSetAttribute");
    };
    set(CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose);
    set(CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none);
    set(CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type);
    set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);  // the heuristic reads its alignment
    check(cublasLtMatrixLayoutCreate(&g.w, t, in, out, in), "cublasLtMatrixLayoutCreate");
    check(cublasLtMatrixLayoutCreate(&g.x, t, in, T, in), "cublasLtMatrixLayoutCreate");
    check(cublasLtMatrixLayoutCreate(&g.y, y_type, out, T, out), "cublasLtMatrixLayoutCreate");
    cublasLtMatmulPreference_t preference = nullptr;
    check(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
    const std::uint64_t workspace = kLtWorkspaceBytes;
    check(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                               sizeof workspace),
          "cublasLtMatmulPreferenceSetAttribute");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(cublas_lt, g.desc, g.w, g.x, g.y, g.y, preference, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(preference);
    g.usable = status == CUBLAS_STATUS_SUCCESS && found > 0;
    if (g.usable) g.algo = result.algo;
    return g;
  }
  // y = x W^T + bias (+ y when accumulate) through the bias epilogue; false
  // (nothing launched) when cuBLASLt has no algorithm for the shape.
  bool gemm_bias(const void* x, const void* w, void* y, cudaDataType_t y_type, const void* bias, long T, long out,
                 long in, bool accumulate) {
    BiasGemm& g = bias_gemm(T, out, in, y_type, accumulate, bias);
    if (!g.usable) return false;
    check(cublasLtMatmulDescSetAttribute(g.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
          "cublasLtMatmulDescSetAttribute");
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    check(cublasLtMatmul(cublas_lt, g.desc, &alpha, w, g.w, x, g.x, &beta, y, g.y, y, g.y, &g.algo, lt_workspace.get(),
                         kLtWorkspaceBytes, stream),
          "cublasLtMatmul (bias epilogue)");
    return true;
  }
  // y = x W^T (+ bias), bf16 output rounded once: bf16 weights write y
  // directly (the bias, rounded to bf16, added in the GEMM's epilogue; where
  // cuBLASLt has no such algorithm, preloaded as rows with beta = 1: the same
  // numbers); f16 / f32 weights go through an fp32 product and one rounding
  // with the bias added.
  void linear_bf16(const bf16* x, const DeviceArray<std::byte>& w, const DeviceBias& bias, bf16* y, long T, long out,
                   long in) {
    if (wtype == WeightType::bf16) {
      if (bias.size() && gemm_bias(x, w.get(), y, CUDA_R_16BF, bias.rounded.get(), T, out, in, false)) return;
      if (bias.size())
        kernels::broadcast_rows_bf16(y, bias.f32.get(), static_cast<int>(T), static_cast<int>(out), stream);
      gemm(x, w.get(), y, CUDA_R_16BF, T, out, in, bias.size() ? 1.0f : 0.0f);
      return;
    }
    gemm(gemm_input(x, T, in), w.get(), ws.gemm_out.get(), CUDA_R_32F, T, out, in, 0.0f);
    kernels::round_rows_bf16(ws.gemm_out.get(), bias.size() ? bias.f32.get() : nullptr, y, static_cast<int>(T),
                             static_cast<int>(out), stream);
  }
  // x = y W^T (+ bias) (+ x when accumulate), fp32: the bias in the GEMM's
  // epilogue, or where cuBLASLt has no such algorithm added by a row kernel.
  void linear_f32(const bf16* y, const DeviceArray<std::byte>& w, const DeviceBias& bias, float* x, long T, long out,
                  long in, bool accumulate) {
    const void* input = gemm_input(y, T, in);
    if (bias.size() && gemm_bias(input, w.get(), x, CUDA_R_32F, bias.f32.get(), T, out, in, accumulate)) return;
    if (bias.size() && accumulate)
      kernels::add_rows_f32(x, bias.f32.get(), static_cast<int>(T), static_cast<int>(out), stream);
    gemm(input, w.get(), x, CUDA_R_32F, T, out, in, accumulate ? 1.0f : 0.0f);
    if (bias.size() && !accumulate)
      kernels::add_rows_f32(x, bias.f32.get(), static_cast<int>(T), static_cast<int>(out), stream);
  }
};

std::vector<std::string> unsupported_features(const model::Model& m) {
  const auto& a = m.config.arch;
  std::vector<std::string> out;
  for (int l = 0; l < static_cast<int>(a.layers.size()); ++l)
    if (a.window(l) > std::numeric_limits<int>::max())
      out.push_back(fmt::format("sliding window {} of layer {} (over 2^31 - 1)", a.window(l), l));
  return out;
}

CudaBackend::CudaBackend(std::shared_ptr<const model::Model> model, int device)
    : model_(std::move(model)), state_(std::make_unique<State>()) {
  std::string why;
  const auto devices = kernels::cuda_devices(&why);
  if (devices.empty()) throw ArgumentError(fmt::format("CUDA backend: no usable CUDA device ({})", why));
  if (device < 0 || device >= static_cast<int>(devices.size()))
    throw ArgumentError(fmt::format("CUDA backend: device {} does not exist ({})", device,
                                    kernels::describe_cuda_devices()));
  const auto& layout = model_->layout;
  if (const auto missing = unsupported_features(*model_); !missing.empty())
    throw ArgumentError(fmt::format("CUDA backend: {} uses what the CUDA backend does not implement yet: {} (run it "
                                    "with --device cpu)", model_->config.arch.family, fmt::join(missing, "; ")));
  if (layout.head_dim % 2 != 0 || layout.head_dim > 256)
    throw ArgumentError(fmt::format("CUDA backend: head_dim {} is not supported (even, at most 256)", layout.head_dim));
  auto& s = *state_;
  s.device = device;
  s.device_name = devices[device].name;
  check(cudaSetDevice(device), "cudaSetDevice");
  s.device_facts = kernels::current_device_facts(layout.head_dim);
  check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cublasCreate(&s.cublas), "cublasCreate");
  check(cublasSetStream(s.cublas, s.stream), "cublasSetStream");
  check(cublasLtCreate(&s.cublas_lt), "cublasLtCreate");
  s.lt_workspace = DeviceArray<std::byte>(kLtWorkspaceBytes);
  s.non_finite = DeviceArray<unsigned long long>(1);

  const auto& w = model_->weights;
  s.wtype = weight_type(w.embed_tokens.dtype());
  s.embed = upload_matrix(w.embed_tokens);
  if (w.lm_head.tensor.bytes().data() == w.embed_tokens.tensor.bytes().data()) {
    s.lm_head = s.embed.get();
  } else {
    s.lm_head_own = upload_matrix(w.lm_head);
    s.lm_head = s.lm_head_own.get();
  }
  const auto& arch = model_->config.arch;
  s.final_norm = upload_norm(w.norm, arch.norm);
  const auto& qk = arch.attention;
  // The qk-norm weight length each kind needs: one head's d, or the whole projection.
  auto qk_weight = [&](const std::vector<model::WeightView>& parts, long width, const char* which) {
    std::vector<const model::WeightView*> views;
    std::size_t n = 0;
    for (const auto& p : parts) views.push_back(&p), n += p.numel();
    const long need = qk.qk_norm == model::QkNormKind::per_head ? layout.head_dim : width;
    if (static_cast<long>(n) != need)
      throw ArgumentError(fmt::format("CUDA backend: {} qk-norm weights hold {} values, the {} qk-norm needs {}", which,
                                      n, model::to_string(qk.qk_norm), need));
    return upload_norm_weight(views, qk.qk_norm_spec);
  };
  for (const auto& lw : w.layers) {
    State::Layer l;
    l.q = upload_matrix(lw.q_proj);
    l.k = upload_matrix(lw.k_proj);
    l.v = upload_matrix(lw.v_proj);
    l.o = upload_matrix(lw.o_proj);
    if (lw.gate_proj) l.gate = upload_matrix(*lw.gate_proj);
    l.up = upload_matrix(lw.up_proj);
    l.down = upload_matrix(lw.down_proj);
    l.q_bias = upload_bias(lw.q_bias, s.wtype == WeightType::bf16);
    l.k_bias = upload_bias(lw.k_bias, s.wtype == WeightType::bf16);
    l.v_bias = upload_bias(lw.v_bias, s.wtype == WeightType::bf16);
    l.o_bias = upload_bias(lw.o_bias, s.wtype == WeightType::bf16);
    l.gate_bias = upload_bias(lw.gate_bias, s.wtype == WeightType::bf16);
    l.up_bias = upload_bias(lw.up_bias, s.wtype == WeightType::bf16);
    l.down_bias = upload_bias(lw.down_bias, s.wtype == WeightType::bf16);
    l.norms[static_cast<int>(backend::NormSlot::attn)] = upload_norm(lw.attn_norm, arch.norm);
    l.norms[static_cast<int>(backend::NormSlot::post_attn)] = upload_norm(lw.post_attn_norm, arch.norm);
    l.norms[static_cast<int>(backend::NormSlot::mlp)] = upload_norm(lw.mlp_norm, arch.norm);
    l.norms[static_cast<int>(backend::NormSlot::post_mlp)] = upload_norm(lw.post_mlp_norm, arch.norm);
    if (qk.qk_norm != model::QkNormKind::none) {
      l.q_norm = qk_weight(lw.q_norm, layout.q_rows(), "q");
      l.k_norm = qk_weight(lw.k_norm, layout.kv_rows(), "k");
    }
    s.layers.push_back(std::move(l));
  }
}

CudaBackend::~CudaBackend() = default;

std::string CudaBackend::name() const { return "cuda"; }

std::vector<std::string> CudaBackend::kernel_choices() const { return state_->kernel_choices; }

std::string CudaBackend::precision() const {
  const char* weights = state_->wtype == WeightType::bf16  ? "bf16"
                        : state_->wtype == WeightType::f16 ? "f16"
                                                           : "f32";
  return fmt::format(
      "cuda ({}): {} weights as stored (F64 rounded once to f32), norm weights and biases in fp32; bf16 "
      "activations; cuBLAS GEMMs with {} inputs (activations converted exactly from bf16) and fp32 accumulation, "
      "no TF32, biases added in fp32 (in the cuBLASLt epilogue; a bf16 GEMM output's bias rounded to bf16 first); fp32 residual stream (post norms and residual multipliers applied in fp32 before the add); norm "
      "and qk-norm statistics in fp32 ((1 + w) formed in fp32), one bf16 rounding; MLP activations in fp32; keys rotated then rounded to bf16; attention "
      "softmax in fp32 (flash kernels, any GQA group up to 8: wgmma for d = 64, 128 on compute capability 9.0, "
      "mma.sync for d = 80, 96, 256 and off 9.0: queries rotated and rounded to bf16 in the kernel, bf16 probabilities times bf16 values, fp32 accumulation; the "
      "model's attention scale, logit softcap as cap * tanhf(score / cap) and per-layer sliding windows as on the "
      "CPU, key tiles outside a window skipped); query noise added in fp32 to the rotated query before "
      "its bf16 rounding; distance sums on the wgmma path: pairs at distances from the plan's band on summed inside "
      "the forward (per-row fp32 running sums rescaled with the softmax, a row's tile that meets two slots split as "
      "the far part's sum and the tile's row sum less it, stored as log2 sum + max, normalised by the "
      "row's final log-sum-exp, fp32 across a tile's rows; p (t - s) and entropy from per-row fp32 sums), nearer "
      "pairs and other paths from scores recomputed from the same bf16 operands (fp32 accumulation; wgmma at d = 256 "
      "on compute capability 9.0, else mma.sync) with the forward's log-sum-exp, per-tile fp32 partial sums; "
      "every partial added exactly as a 128-bit fixed-point integer (2^-100 for probabilities, 2^-50 for scores, "
      "2^-64 for p (t - s) and entropy; each partial rounded to nearest, an out-of-range one refused), so the sums "
      "are bitwise reproducible, each total rounded once to double; RoPE tables as on the CPU (exact float128 "
      "reduction or HF float32), "
      "stored as float; fp32 logits (logit multiplier as the GEMM's alpha, final softcap in fp32) and "
      "log-sum-exp, in chunks of tokens",
      state_->device_name, weights, weights);
}

std::vector<backend::ForwardResult> CudaBackend::forward(const std::vector<std::vector<std::int32_t>>& sequences,
                                                         const backend::ForwardOptions& options) {
  const auto& c = model_->config;
  backend::check_forward_request(*model_, sequences, options);
  for (const auto& tokens : sequences) {
    if (options.keep_logits && tokens.size() * static_cast<std::size_t>(c.vocab_size) > kMaxKeptLogits)
      throw ArgumentError(fmt::format(
          "keep_logits on the CUDA backend copies T x V logits to the host: T = {} x V = {} is over the limit of "
          "{} floats (1 GiB); use a shorter sequence or do not keep logits",
          tokens.size(), c.vocab_size, kMaxKeptLogits));
  }
  check(cudaSetDevice(state_->device), "cudaSetDevice");
  // Device memory, before any work: the workspace this backend holds is released before a larger one is made.
  std::size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const auto& ws = state_->ws;
  const long double held =
      ws.T ? workspace_bytes(*model_, state_->wtype, ws.T, ws.rotated_q.size() > 0, ws.branch.size() > 0) : 0.0L;
  for (const auto& tokens : sequences) {
    const std::uint64_t bytes = forward_bytes(static_cast<long>(tokens.size()), options);
    if (bytes > free_bytes + held)
      throw ArgumentError(fmt::format("a context of T = {} tokens needs about {:.2f} GiB of device memory on the CUDA "
                                      "backend; {:.2f} GiB of {}'s memory is free",
                                      tokens.size(), bytes / 1073741824.0,
                                      static_cast<double>(free_bytes + held) / 1073741824.0, state_->device_name));
  }
  std::vector<backend::ForwardResult> results;
  results.reserve(sequences.size());
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t b = 0; b < sequences.size(); ++b)
    results.push_back(forward_one(options.first_sequence + static_cast<int>(b), sequences[b], options));
  state_->forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return results;
}

nlohmann::json CudaBackend::statistics() const { return {{"forward_seconds", state_->forward_seconds}}; }

namespace {

// Device memory for the observer of one forward: the distance-slot tables and
// per-head accumulators, or the score / probability blocks handed to on_block.
struct ObserverBuffers {
  // Distance sums.
  int slots = 0;
  DeviceArray<std::int32_t> slot_of_distance, slot_start;
  // Exact fixed-point sums (kernels/ops/fixed_point.hpp), converted to double once per layer on the host.
  DeviceArray<kernels::Fixed128> prob_sum, score_sum, stats;  // [A, slots], [A, slots], [A, 2]
  DeviceArray<unsigned> overflow;                             // the kernels' refused addends (overflow_bit)
  std::vector<kernels::Fixed128> fixed_prob, fixed_score, fixed_stats;
  std::vector<double> host_prob, host_score, host_stats;
  // Score blocks.
  long block_rows = 0;
  DeviceArray<float> scores, probs, virtual_scores;
  std::vector<float> host_scores, host_probs, host_virtual;
};

}  // namespace

std::uint64_t CudaBackend::forward_bytes(long T, const backend::ForwardOptions& options) const {
  T = std::max(T, 1L);
  const auto& layout = model_->layout;
  const long double t = T;
  const bool noisy = options.noise && options.noise->std > 0;
  long double bytes =
      workspace_bytes(*model_, state_->wtype, T, noisy, staged_branches(model_->config.arch, options));
  bytes += 4.0L * t * layout.head_dim;  // the RoPE table: cos and sin, [T, at most d / 2] floats each
  if (const auto* observer = options.observer) {
    if (const auto* request = observer->distance_sums_request()) {
      const long double slots = request->slots;
      bytes += 4.0L * (t + slots) + 16.0L * (2 * layout.attention_heads * slots + 2 * layout.attention_heads);
    } else {
      const int arrays = observer->wants_virtual_imaginary() && layout.variant == model::Variant::rope ? 3 : 2;
      bytes += 4.0L * arrays * observer_block_rows(T) * t;
    }
  }
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  return bytes >= static_cast<long double>(kMax) ? kMax : static_cast<std::uint64_t>(bytes);
}

backend::ForwardResult CudaBackend::forward_one(int sequence, const std::vector<std::int32_t>& tokens,
                                                const backend::ForwardOptions& options) {
  auto& s = *state_;
  const auto& c = model_->config;
  const auto& layout = model_->layout;
  const long T = static_cast<long>(tokens.size());
  const long h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = layout.head_dim;
  const long Q = layout.q_rows(), KV = layout.kv_rows(), O = layout.o_columns();
  const int A = layout.attention_heads;
  cudaStream_t stream = s.stream;
  const bool noisy = options.noise && options.noise->std > 0;
  backend::AttentionObserver* observer = options.observer;

  // Activations, grown to the longest sequence seen (forward() checked the memory).
  if (s.ws.T < T) {
    const long rows = logit_rows(T, V);
    const bool convert = s.wtype != WeightType::bf16;
    const long widest_in = std::max({h, O, I}), widest_out = std::max({Q, KV, I});
    s.ws = State::Workspace{};  // release the old buffers first
    State::Workspace ws;
    ws.T = T;
    ws.logit_rows = rows;
    ws.tokens = DeviceArray<std::int32_t>(T);
    ws.x = DeviceArray<float>(T * h);
    ws.lse = DeviceArray<float>(T * A);
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
    if (c.arch.block == model::BlockKind::parallel_two_norms) ws.xn_mlp = DeviceArray<bf16>(T * h);
    if (convert) {
      ws.converted = DeviceArray<std::byte>(T * widest_in * type_size(s.wtype));
      ws.gemm_out = DeviceArray<float>(T * widest_out);
    }
    s.ws = std::move(ws);
  }
  auto& ws = s.ws;
  if (noisy && ws.rotated_q.size() < static_cast<std::size_t>(ws.T * O)) ws.rotated_q = DeviceArray<bf16>(ws.T * O);
  backend::BranchReducer* const reducer = options.branch_reducer;
  if (staged_branches(c.arch, options) && ws.branch.size() < static_cast<std::size_t>(ws.T * h))
    ws.branch = DeviceArray<float>(ws.T * h);

  // RoPE tables, cached by the same key as the CPU backend's: the model's
  // (global) table and, for Gemma 3 / Cohere 2 style models, the local one.
  // The index into rope_cache, as a later push_back may move the entries.
  auto cached_table = [&](const theory::RopeSpec& spec) -> std::size_t {
    const auto key = model::rope_table_key(spec, options.angles, T);
    for (std::size_t i = 0; i < s.rope_cache.size(); ++i) {
      auto& cached = s.rope_cache[i];
      if (!(cached.key == key)) continue;
      if (cached.table.positions < T) {
        check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        kernels::free_rope_table(cached.table);
        const auto host = model::make_rope_table(key.spec, T, key.angles, T);
        cached.table = kernels::upload_rope_table(host.cos.data(), host.sin.data(), host.positions, host.pairs);
      }
      return i;
    }
    const auto host = model::make_rope_table(key.spec, T, key.angles, T);
    s.rope_cache.push_back(
        {key, kernels::upload_rope_table(host.cos.data(), host.sin.data(), host.positions, host.pairs)});
    return s.rope_cache.size() - 1;
  };
  const std::size_t global_index = cached_table(options.rope_override.value_or(c.rope));
  const std::size_t local_index = c.arch.local_rope ? cached_table(*c.arch.local_rope) : global_index;
  const kernels::DeviceRopeTable* rope = &s.rope_cache[global_index].table;
  const kernels::DeviceRopeTable* local_rope = &s.rope_cache[local_index].table;
  const kernels::DeviceRopeTable identity = kernels::identity_rope(T);
  // The table layer l rotates with (identity: a NoPE layer, q and k unrotated).
  auto layer_rope = [&](int l) -> const kernels::DeviceRopeTable& {
    switch (c.arch.layers.at(l).rope) {
      case model::LayerRope::none: return identity;
      case model::LayerRope::global: return *rope;
      case model::LayerRope::local: return *local_rope;
    }
    return *rope;
  };

  const auto& spec = c.arch.attention;
  const kernels::AttentionShape shape{static_cast<int>(T), static_cast<int>(d), layout.query_heads, layout.kv_heads,
                                      A, layout.variant != model::Variant::rope, spec.scale, spec.softcap.value_or(0.0)};
  // The queries the attention kernels read: q itself with the model's layout
  // and the layer's table, or, with query noise, every head's rotated and
  // noised query (rotate_queries_bf16) read through an identity table.
  const bf16* attention_q = noisy ? ws.rotated_q.get() : ws.q.get();
  auto attention_rope = [&](int l) -> const kernels::DeviceRopeTable& { return noisy ? identity : layer_rope(l); };
  kernels::AttentionShape attention_shape = shape;
  if (noisy) {
    attention_shape.query_heads = A;
    attention_shape.imaginary_twins = false;
  }
  const kernels::NoiseParams noise{noisy && options.noise->component == model::HeadKind::imaginary,
                                   noisy ? options.noise->std : 0.0, noisy ? options.noise->seed : 0,
                                   noisy ? options.noise->first_head : 0};
  // The one kernel decision of this forward (kernel_choice.hpp), recorded for sidecars.
  const backend::DistanceSumsRequest* sums_request = observer ? observer->distance_sums_request() : nullptr;
  const kernels::FusedSumsPlan fused_plan =
      sums_request ? kernels::plan_fused_sums(std::span(sums_request->slot_of_distance).first(T))
                   : kernels::FusedSumsPlan{};
  const kernels::KernelChoice choice =
      kernels::choose_kernels(shape, state_->device_facts, sums_request ? sums_request->slots : 0, fused_plan);
  state_->kernel_choices = {choice.describe()};
  const bool flash = choice.forward != kernels::ForwardKernel::simple;
  // The attention kernels' shape for layer l: its sliding window, dropped
  // when it covers the whole sequence (then every causal key is visible).
  auto layer_shape = [&](int l) {
    kernels::AttentionShape s = attention_shape;
    const long w = c.arch.window(l);
    s.window = w > 0 && w < T ? static_cast<int>(w) : 0;
    return s;
  };

  // The observer's buffers: distance sums when it asks for them, else blocks.
  ObserverBuffers ob;
  if (sums_request) {
    ob.slots = sums_request->slots;
    std::vector<std::int32_t> start(ob.slots, -1);
    for (long D = T - 1; D >= 0; --D) start[sums_request->slot_of_distance[D]] = static_cast<std::int32_t>(D);
    ob.slot_of_distance = DeviceArray<std::int32_t>(T);
    ob.slot_start = DeviceArray<std::int32_t>(ob.slots);
    check(cudaMemcpy(ob.slot_of_distance.get(), sums_request->slot_of_distance.data(), T * sizeof(std::int32_t),
                     cudaMemcpyHostToDevice),
          "upload distance slots");
    check(cudaMemcpy(ob.slot_start.get(), start.data(), ob.slots * sizeof(std::int32_t), cudaMemcpyHostToDevice),
          "upload distance slots");
    ob.prob_sum = DeviceArray<kernels::Fixed128>(static_cast<std::size_t>(A) * ob.slots);
    ob.score_sum = DeviceArray<kernels::Fixed128>(static_cast<std::size_t>(A) * ob.slots);
    ob.stats = DeviceArray<kernels::Fixed128>(2 * A);
    ob.overflow = DeviceArray<unsigned>(1);
    ob.fixed_prob.resize(ob.prob_sum.size());
    ob.fixed_score.resize(ob.score_sum.size());
    ob.fixed_stats.resize(ob.stats.size());
    ob.host_prob.resize(ob.prob_sum.size());
    ob.host_score.resize(ob.score_sum.size());
    ob.host_stats.resize(ob.stats.size());
  } else if (observer) {
    ob.block_rows = observer_block_rows(T);
    const std::size_t n = static_cast<std::size_t>(ob.block_rows) * T;
    ob.scores = DeviceArray<float>(n);
    ob.probs = DeviceArray<float>(n);
    ob.host_scores.resize(n);
    ob.host_probs.resize(n);
    if (observer->wants_virtual_imaginary() && layout.variant == model::Variant::rope) {
      ob.virtual_scores = DeviceArray<float>(n);
      ob.host_virtual.resize(n);
    }
  }

  // The distance sums' accumulators, zeroed before each layer's attention
  // (the fused forward adds to them).
  auto sums_out = [&] {
    return kernels::DistanceSumsOut{ob.slot_of_distance.get(), ob.slot_start.get(), ob.slots,
                                    ob.prob_sum.get(),         ob.score_sum.get(),  ob.stats.get(),
                                    ob.overflow.get()};
  };
  auto clear_sums = [&] {
    check(cudaMemsetAsync(ob.prob_sum.get(), 0, ob.prob_sum.size() * sizeof(kernels::Fixed128), stream), "memset");
    check(cudaMemsetAsync(ob.score_sum.get(), 0, ob.score_sum.size() * sizeof(kernels::Fixed128), stream), "memset");
    check(cudaMemsetAsync(ob.stats.get(), 0, ob.stats.size() * sizeof(kernels::Fixed128), stream), "memset");
    check(cudaMemsetAsync(ob.overflow.get(), 0, sizeof(unsigned), stream), "memset");
  };
  const bool fused_sums = choice.sums == kernels::SumsKernel::fused;

  // Hands layer l's attention to the observer. `alone`: nothing checks the
  // layer's output after it (its attention runs for the observer alone), so
  // blocks are checked for non-finite probabilities here; the distance-sums
  // kernels refuse a non-finite addend themselves.
  auto observe = [&](int l, bool alone) {
    if (sums_request) {
      kernels::DistanceSumsOut out = sums_out();
      if (fused_sums) {
        // The band pass: pairs nearer than the plan's band (the forward added the rest and the stats).
        const kernels::FusedDistanceSums fused{out, choice.fused.band, choice.fused.first_slot,
                                               choice.fused.coarse_slots};
        kernels::attention_distance_sums_near_bf16(attention_q, ws.k.get(), attention_rope(l), layer_shape(l),
                                                   ws.lse.get(), fused, stream);
      } else if (choice.sums == kernels::SumsKernel::wgmma) {
        if (!kernels::attention_distance_sums_wgmma_bf16(attention_q, ws.k.get(), attention_rope(l), layer_shape(l),
                                                         ws.lse.get(), out, stream))
          throw Error(fmt::format("CUDA backend, layer {}: the wgmma distance-sums kernel was chosen ({}) but refused "
                                  "the buffers (not 16-byte aligned)", l, choice.why_sums));
      } else if (choice.sums == kernels::SumsKernel::tensor_core)
        kernels::attention_distance_sums_bf16(attention_q, ws.k.get(), attention_rope(l), layer_shape(l), ws.lse.get(),
                                              out, stream);
      else
        kernels::attention_distance_sums_simple_bf16(attention_q, ws.k.get(), attention_rope(l), layer_shape(l),
                                                     ws.lse.get(), flash, out, stream);
      auto download = [&](std::vector<kernels::Fixed128>& host, const DeviceArray<kernels::Fixed128>& device) {
        check(cudaMemcpyAsync(host.data(), device.get(), device.size() * sizeof(kernels::Fixed128),
                              cudaMemcpyDeviceToHost, stream),
              "copy distance sums");
      };
      download(ob.fixed_prob, ob.prob_sum);
      download(ob.fixed_score, ob.score_sum);
      download(ob.fixed_stats, ob.stats);
      unsigned overflow = 0;
      check(cudaMemcpyAsync(&overflow, ob.overflow.get(), sizeof overflow, cudaMemcpyDeviceToHost, stream),
            "copy distance sums' overflow flag");
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      if (overflow != 0)
        throw Error(fmt::format("CUDA backend, layer {} of sequence {}: {}", l, sequence,
                                kernels::describe_overflow(overflow, static_cast<int>(T))));
      // The exact totals, each rounded once to double.
      kernels::to_double(ob.fixed_prob.data(), ob.fixed_prob.size(), kernels::kProbFraction, ob.host_prob.data());
      kernels::to_double(ob.fixed_score.data(), ob.fixed_score.size(), kernels::kScoreFraction, ob.host_score.data());
      kernels::to_double(ob.fixed_stats.data(), ob.fixed_stats.size(), kernels::kStatsFraction, ob.host_stats.data());
      for (int a = 0; a < A; ++a) {
        if (!observer->observes(l, a)) continue;
        const std::size_t base = static_cast<std::size_t>(a) * ob.slots;
        observer->on_distance_sums(backend::DistanceSums{
            sequence, l, layout.head(a), T, std::span<const double>(ob.host_prob.data() + base, ob.slots),
            std::span<const double>(ob.host_score.data() + base, ob.slots), ob.host_stats[2 * a],
            ob.host_stats[2 * a + 1], c.arch.window(l)});
      }
      return;
    }
    const kernels::AttentionShape scores_shape = layer_shape(l);
    for (int a = 0; a < A; ++a) {
      if (!observer->observes(l, a)) continue;
      const model::AttentionHead head = layout.head(a);
      // Checked below where the residual stream's checks cannot see this
      // head: a layer run for its observer alone, or an ablated head (its
      // output zeroed before o_proj).
      const bool ablated = options.ablation.ablates(l, head);
      using Rotation = kernels::QueryRotation;
      const kernels::QuerySource query =
          noisy ? kernels::QuerySource{ws.rotated_q.get(), static_cast<int>(O), static_cast<int>(a * d), Rotation::none}
                : kernels::QuerySource{ws.q.get(), static_cast<int>(Q), static_cast<int>(head.query_head * d),
                                       head.kind == model::HeadKind::imaginary ? Rotation::imaginary : Rotation::real};
      for (long q0 = 0; q0 < T; q0 += ob.block_rows) {
        const long rows = std::min(ob.block_rows, T - q0), k_end = q0 + rows;
        const std::size_t n = static_cast<std::size_t>(rows) * k_end;
        kernels::attention_scores_f32(query, attention_rope(l), flash, ws.k.get(), static_cast<int>(KV),
                                      static_cast<int>(head.kv_head * d), scores_shape, q0, rows, k_end,
                                      ob.scores.get(), stream);
        kernels::softmax_rows_f32(ob.scores.get(), ob.probs.get(), q0, rows, k_end, scores_shape.window, stream);
        check(cudaMemcpyAsync(ob.host_scores.data(), ob.scores.get(), n * sizeof(float), cudaMemcpyDeviceToHost,
                              stream),
              "copy scores");
        check(cudaMemcpyAsync(ob.host_probs.data(), ob.probs.get(), n * sizeof(float), cudaMemcpyDeviceToHost,
                              stream),
              "copy probabilities");
        backend::AttentionBlock block{sequence, l, head, q0, k_end, k_end, ob.host_scores.data(), ob.host_probs.data(),
                                      nullptr};
        if (ob.virtual_scores.size() && c.arch.has_rope(l)) {  // as the CPU: none on NoPE layers
          const kernels::QuerySource imaginary{ws.q.get(), static_cast<int>(Q), static_cast<int>(head.query_head * d),
                                               Rotation::imaginary};
          kernels::attention_scores_f32(imaginary, layer_rope(l), flash, ws.k.get(), static_cast<int>(KV),
                                        static_cast<int>(head.kv_head * d), scores_shape, q0, rows, k_end,
                                        ob.virtual_scores.get(), stream);
          check(cudaMemcpyAsync(ob.host_virtual.data(), ob.virtual_scores.get(), n * sizeof(float),
                                cudaMemcpyDeviceToHost, stream),
                "copy virtual imaginary scores");
          block.virtual_imaginary_scores = ob.host_virtual.data();
        }
        check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
        if (alone || ablated)
          for (std::size_t i = 0; i < n; ++i)
            if (!std::isfinite(ob.host_probs[i]))
              throw backend::non_finite_activations(
                  sequence,
                  fmt::format("in the attention probabilities of layer {}, head {} ({}first at position {})", l, a,
                              ablated ? "ablated: its output does not reach the residual stream; " : "",
                              q0 + static_cast<long>(i) / k_end),
                  options);
        observer->on_block(block);
      }
    }
  };

  backend::ForwardResult result;
  check(cudaMemsetAsync(s.non_finite.get(), 0xff, sizeof(unsigned long long), stream), "reset non-finite flag");
  check(cudaMemcpyAsync(ws.tokens.get(), tokens.data(), T * sizeof(std::int32_t), cudaMemcpyHostToDevice, stream),
        "upload tokens");
  kernels::embed_rows_f32(s.embed.get(), s.wtype, ws.tokens.get(), ws.x.get(), static_cast<int>(T),
                          static_cast<int>(h), static_cast<float>(c.arch.embedding_multiplier), stream);

  // The decoder loop (backend/decoder.hpp) over this forward's buffers: the
  // fp32 residual stream ws.x and the bf16 normed copy ws.xn. A branch reads
  // a normed buffer, or (post-norm blocks) the residual stream itself,
  // rounded to bf16 into ws.xn first (the GEMMs take bf16).
  struct Buffers {
    float* residual = nullptr;
    const bf16* normed = nullptr;
  };
  const auto& norm_spec = c.arch.norm;
  // The non-finite check of the residual stream after the last branch added
  // to it, (2 * layer + branch) * T, not yet made: the next residual norm
  // makes it as it reads the rows (kernels::RowCheck); where something else
  // comes first (another branch's add, a branch reading the stream itself),
  // flag_non_finite_rows_f32 does.
  std::optional<unsigned long long> unchecked;
  auto check_residual = [&] {
    if (!unchecked) return;
    kernels::flag_non_finite_rows_f32(ws.x.get(), static_cast<int>(T), static_cast<int>(h), *unchecked,
                                      s.non_finite.get(), stream);
    unchecked.reset();
  };
  // y = bf16(norm(x)) for the fp32 residual x: the RMS-only kernel for rms and rms_offset (its weight is 1 + w).
  auto residual_norm = [&](const float* x, const DeviceNorm& n, bf16* y) {
    kernels::RowCheck check;
    if (unchecked && x == ws.x.get()) {
      check = {s.non_finite.get(), *unchecked};
      unchecked.reset();
    }
    if (norm_spec.kind == model::NormKind::layer_norm)
      kernels::norm_f32_bf16(x, y, static_cast<int>(T), static_cast<int>(h), norm_params(n, norm_spec), stream, check);
    else
      kernels::rmsnorm_f32_bf16(x, n.weight.get(), y, static_cast<int>(T), static_cast<int>(h),
                                static_cast<float>(norm_spec.eps), stream, check);
  };
  auto norm = [&](int l, backend::NormSlot slot, const Buffers& x) -> Buffers {
    if (!x.residual) throw Error("CUDA backend: a norm of a normed buffer (the decoder loop never asks for one)");
    // The two parallel_two_norms norms are both alive at once: the MLP's has its own buffer.
    bf16* y = slot == backend::NormSlot::mlp && ws.xn_mlp.size() ? ws.xn_mlp.get() : ws.xn.get();
    residual_norm(x.residual, s.layers[l].norms[static_cast<int>(slot)], y);
    return {nullptr, y};
  };
  // The bf16 input of a branch.
  auto branch_input = [&](const Buffers& in) -> const bf16* {
    if (in.normed) return in.normed;
    check_residual();
    kernels::round_rows_bf16(in.residual, nullptr, ws.xn.get(), static_cast<int>(T), static_cast<int>(h), stream);
    return ws.xn.get();
  };
  // out.residual += scale * post(y W^T + bias), y [T, in]; then (layer, branch) is the unchecked residual.
  // A tensor-parallel rank sums its partial branch over the group first (the bias is rank 0's alone).
  auto add_branch = [&](int l, int branch, const bf16* y, const DeviceArray<std::byte>& w, const DeviceBias& bias,
                        long in, Buffers& out, double scale, std::optional<backend::NormSlot> post) {
    if (out.residual != ws.x.get()) throw Error("CUDA backend: a branch added to a buffer other than the residual stream");
    check_residual();  // a parallel block's attention, added just before
    if (!post && scale == 1.0 && !reducer) {
      s.linear_f32(y, w, bias, out.residual, T, h, in, true);  // GEMM with beta = 1 into the residual stream
    } else {
      s.linear_f32(y, w, bias, ws.branch.get(), T, h, in, false);
      if (reducer)
        reducer->all_reduce_device(sequence, l, branch == 0 ? backend::Branch::attention : backend::Branch::mlp,
                                   ws.branch.get(), static_cast<std::size_t>(T * h), stream);
      kernels::NormParams p;
      if (post) p = norm_params(s.layers[l].norms[static_cast<int>(*post)], norm_spec);
      kernels::norm_add_f32(ws.branch.get(), out.residual, static_cast<int>(T), static_cast<int>(h), post ? &p : nullptr,
                            static_cast<float>(scale), stream);
    }
    unchecked = (2ull * l + branch) * T;
  };
  const auto& qk = spec.qk_norm_spec;
  // qk-norm of x [T, cols] (q or k) in place: per head of d values, or over the whole row.
  auto qk_norm = [&](bf16* x, long cols, const DeviceArray<float>& weight) {
    const bool full = spec.qk_norm == model::QkNormKind::full_width;
    const int stride = spec.qk_norm == model::QkNormKind::per_head_weights ? static_cast<int>(d) : 0;
    const kernels::NormParams p{weight.get(), nullptr, stride, qk.kind == model::NormKind::layer_norm,
                                static_cast<float>(qk.eps)};
    kernels::norm_segments_bf16(x, x, static_cast<int>(T), static_cast<int>(cols), static_cast<int>(full ? cols : d), p,
                                stream);
  };
  // Layer l's attention of `in`: ws.q, ws.k, ws.lse and the observer's view;
  // with `values` also its output ws.attn. Without, the mma.sync kernel
  // computes the log-sum-exp alone (no V); the wgmma and simple kernels, which
  // have no such build, write ws.attn all the same.
  auto attend = [&](int l, const Buffers& in, bool values) {
    const auto& L = s.layers[l];
    const bf16* input = branch_input(in);
    const bool lse_only = !values && choice.forward == kernels::ForwardKernel::mma_sync;
    s.linear_bf16(input, L.q, L.q_bias, ws.q.get(), T, Q, h);
    s.linear_bf16(input, L.k, L.k_bias, ws.k.get(), T, KV, h);
    if (!lse_only) s.linear_bf16(input, L.v, L.v_bias, ws.v.get(), T, KV, h);
    if (spec.qk_norm != model::QkNormKind::none) {
      qk_norm(ws.q.get(), Q, L.q_norm);
      qk_norm(ws.k.get(), KV, L.k_norm);
    }
    const kernels::DeviceRopeTable& lrope = layer_rope(l);
    kernels::rope_keys_bf16(ws.k.get(), static_cast<int>(T), layout.kv_heads, static_cast<int>(d), lrope, stream);
    if (noisy) kernels::rotate_queries_bf16(ws.q.get(), lrope, shape, &noise, l, ws.rotated_q.get(), stream);
    const kernels::AttentionShape lshape = layer_shape(l);
    if (sums_request) clear_sums();
    if (choice.forward == kernels::ForwardKernel::wgmma) {
      const kernels::FusedDistanceSums fused{sums_out(), choice.fused.band, choice.fused.first_slot,
                                             choice.fused.coarse_slots};
      if (!kernels::attention_forward_wgmma_bf16(attention_q, ws.k.get(), ws.v.get(), attention_rope(l), lshape,
                                                 ws.attn.get(), ws.lse.get(), stream, fused_sums ? &fused : nullptr))
        throw Error(fmt::format("CUDA backend, layer {}: the wgmma attention kernel was chosen ({}) but refused the "
                                "buffers (not 16-byte aligned)", l, choice.why_forward));
    } else if (choice.forward == kernels::ForwardKernel::mma_sync)
      kernels::attention_forward_bf16(attention_q, ws.k.get(), lse_only ? nullptr : ws.v.get(), attention_rope(l),
                                      lshape, lse_only ? nullptr : ws.attn.get(), ws.lse.get(), stream);
    else
      kernels::attention_simple_bf16(attention_q, ws.k.get(), ws.v.get(), attention_rope(l), lshape, ws.attn.get(),
                                     ws.lse.get(), stream);
    if (observer) observe(l, !values);
  };
  auto attention = [&](int l, const Buffers& in, Buffers& out, double scale, std::optional<backend::NormSlot> post) {
    const auto& L = s.layers[l];
    attend(l, in, true);
    for (int a = 0; a < A && !options.ablation.empty(); ++a)
      if (options.ablation.ablates(l, layout.head(a)))
        check(cudaMemset2DAsync(ws.attn.get() + a * d, O * sizeof(bf16), 0, d * sizeof(bf16), T, stream),
              "zero ablated head");
    add_branch(l, 0, ws.attn.get(), L.o, L.o_bias, O, out, scale, post);
  };
  const auto& mlp_spec = c.arch.mlp;
  const kernels::MlpActivation act = mlp_spec.act == model::Activation::silu       ? kernels::MlpActivation::silu
                                     : mlp_spec.act == model::Activation::gelu_erf ? kernels::MlpActivation::gelu_erf
                                                                                   : kernels::MlpActivation::gelu_tanh;
  auto mlp = [&](int l, const Buffers& in, Buffers& out, double scale, std::optional<backend::NormSlot> post) {
    const auto& L = s.layers[l];
    const bf16* input = branch_input(in);
    const std::size_t n = static_cast<std::size_t>(T) * I;
    s.linear_bf16(input, L.up, L.up_bias, ws.up.get(), T, I, h);
    if (!mlp_spec.gated) {
      kernels::mlp_activation_bf16(ws.up.get(), nullptr, ws.act.get(), n, act, stream);
    } else {
      s.linear_bf16(input, L.gate, L.gate_bias, ws.gate.get(), T, I, h);
      if (act == kernels::MlpActivation::silu) kernels::swiglu_bf16(ws.gate.get(), ws.up.get(), ws.act.get(), n, stream);
      else kernels::mlp_activation_bf16(ws.gate.get(), ws.up.get(), ws.act.get(), n, act, stream);
    }
    add_branch(l, 1, ws.act.get(), L.down, L.down_bias, I, out, scale, post);
  };
  // The last layer of a forward read only by its observer (backend::decoder_extent).
  auto observe_attention = [&](int l, const Buffers& in) { attend(l, in, false); };
  backend::CallableOps<Buffers, decltype(norm), decltype(attention), decltype(mlp), decltype(observe_attention)> ops{
      norm, attention, mlp, observe_attention};
  Buffers x{ws.x.get(), nullptr};
  const backend::DecoderExtent extent = backend::decoder_extent(options, static_cast<int>(c.arch.layers.size()));
  backend::run_layers(ops, c.arch, x, extent, [&](int, const Buffers&) {
    if (!options.keep_hidden) return;
    Matrix hidden(T, h);
    check(cudaMemcpyAsync(hidden.data(), ws.x.get(), T * h * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "copy hidden state");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    result.hidden.push_back(std::move(hidden));
  });
  residual_norm(ws.x.get(), s.final_norm, ws.xn.get());  // makes the last branch's check
  check_residual();

  // Next-token loss, ws.logit_rows tokens at a time.
  if (options.keep_logits) result.logits.resize(T, V);
  for (long t0 = 0; t0 < T && (options.loss || options.keep_logits); t0 += ws.logit_rows) {
    const long rows = std::min(ws.logit_rows, T - t0);
    s.gemm(s.gemm_input(ws.xn.get() + t0 * h, rows, h), s.lm_head, ws.logits.get(), CUDA_R_32F, rows, V, h, 0.0f,
           static_cast<float>(c.arch.logit_multiplier));
    if (c.arch.final_softcap)
      kernels::softcap_f32(ws.logits.get(), static_cast<std::size_t>(rows) * V, static_cast<float>(*c.arch.final_softcap),
                           stream);
    const long scored = std::min(rows, T - 1 - t0);  // the last position has no next token
    if (scored > 0 && options.loss)
      kernels::next_token_nll_f32(ws.logits.get(), static_cast<int>(scored), static_cast<int>(V),
                                  ws.tokens.get() + t0 + 1, ws.nll.get() + t0, stream);
    if (options.keep_logits) {
      check(cudaMemcpyAsync(result.logits.data() + t0 * V, ws.logits.get(), rows * V * sizeof(float),
                            cudaMemcpyDeviceToHost, stream),
            "copy logits");
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    }
  }
  std::vector<float> nll(options.loss ? T - 1 : 0);
  if (!nll.empty())
    check(cudaMemcpyAsync(nll.data(), ws.nll.get(), (T - 1) * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "copy nll");
  // The per-branch checks' verdict, read once, with the loss: a read before
  // the LM head stalled the host there while the GPU drained, and the GPU
  // then waited for the LM head's launch (1.57 against 1.53 ms for the 376M
  // forward at T = 1024, kernels/NOTES.md session 34). The first
  // (layer, branch) whose residual stream is not finite comes before any
  // verdict on the loss or logits computed from it.
  unsigned long long first_bad = kernels::kNoNonFinite;
  check(cudaMemcpyAsync(&first_bad, s.non_finite.get(), sizeof first_bad, cudaMemcpyDeviceToHost, stream),
        "copy non-finite flag");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  if (first_bad != kernels::kNoNonFinite) {
    const unsigned long long branch = first_bad / T;
    throw backend::non_finite_activations(sequence,
                                          fmt::format("after the {} branch of layer {} (first at position {})",
                                                      branch % 2 ? "MLP" : "attention", branch / 2, first_bad % T),
                                          options);
  }
  for (std::size_t t = 0; t < nll.size(); ++t)
    if (!std::isfinite(nll[t]))
      throw backend::non_finite_activations(sequence, fmt::format("in the next-token loss at position {}", t), options);
  if (options.keep_logits && !result.logits.allFinite())
    for (long t = 0; t < T; ++t)
      if (!result.logits.row(t).allFinite())
        throw backend::non_finite_activations(sequence, fmt::format("in the logits (first at position {})", t), options);
  result.nll.assign(nll.begin(), nll.end());
  return result;
}

}  // namespace ropescope::cuda
