// attention_lab: validation and timing lab for the CUDA op kernels (llm.c
// dev/cuda style). Draws random bf16 inputs, checks every op against the
// float64 references of kernels/lab/reference.hpp (max abs / rel error, the
// worst element with its head and position), then times the attention kernels
// against their FLOP floor and, when given bench/torch_attention_baseline.py's
// output (--sdpa FILE), against PyTorch SDPA. Attention kernels: `mma`
// (attention_forward_bf16, mma.sync), `wgmma` (attention_forward_wgmma_bf16,
// Hopper), or both (the default); each is validated on every case and timed.
//
//   attention_lab [--sdpa FILE] [--reps N] [--kernel mma|wgmma|both] [--windows]
// --windows: only the sliding-window timing (T = 32768, windows none / 4096
// / 1024, both attention kernels and the distance sums), against the share
// of visible pairs (the O(T W) prediction), and the cost of a logit softcap
// (50) at window none and 4096.
// Exit status 1 when any check fails.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/device_info.hpp"
#include "kernels/lab/reference.hpp"
#include "kernels/ops/ops.hpp"
#include "model/rope_table.hpp"

namespace rk = ropescope::kernels;
using rk::bf16;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error at %s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

std::mt19937_64 rng(20260101);

// Random N(0, sd) values rounded to bf16: the bf16 copy for the device and the
// float decode of the very same values for the references.
struct Bf16Array {
  std::vector<bf16> h;
  std::vector<float> f;
  bf16* d = nullptr;
  explicit Bf16Array(std::size_t n, double sd = 1.0) : h(n), f(n) {
    std::normal_distribution<float> dist(0.f, static_cast<float>(sd));
    for (std::size_t i = 0; i < n; ++i) {
      h[i] = __float2bfloat16(dist(rng));
      f[i] = __bfloat162float(h[i]);
    }
    check(cudaMalloc(&d, n * sizeof(bf16)), "cudaMalloc");
    check(cudaMemcpy(d, h.data(), n * sizeof(bf16), cudaMemcpyHostToDevice), "upload");
  }
  ~Bf16Array() { cudaFree(d); }
  Bf16Array(const Bf16Array&) = delete;
  Bf16Array& operator=(const Bf16Array&) = delete;
};

// A device output poisoned with NaN bytes (0xFF) so unwritten elements show.
template <class T>
struct Output {
  T* d = nullptr;
  std::size_t n;
  explicit Output(std::size_t n_) : n(n_) {
    check(cudaMalloc(&d, n * sizeof(T)), "cudaMalloc");
    check(cudaMemset(d, 0xFF, n * sizeof(T)), "poison");
  }
  ~Output() { cudaFree(d); }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;
  std::vector<float> fetch() const {
    std::vector<T> h(n);
    check(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    std::vector<float> f(n);
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, bf16>)
        f[i] = __bfloat162float(h[i]);
      else
        f[i] = h[i];
    }
    return f;
  }
};

// Error statistics of one op: pass when every element has |err| <= atol + rtol |ref|
// (NaN never passes) and the normwise error ||out - ref|| / ||ref|| <= norm_tol.
struct Errors {
  const char* op;
  double atol, rtol, norm_tol;
  double max_abs = 0, max_rel = 0, err2 = 0, ref2 = 0;
  long count = 0, bad = 0;
  std::string worst = "-";
  void add(double out, double ref, const std::string& where) {
    const double e = std::fabs(out - ref);
    ++count;
    if (!(e <= atol + rtol * std::fabs(ref))) ++bad;  // written so that NaN counts as bad
    if (!(e <= max_abs)) {
      max_abs = std::isnan(e) ? INFINITY : e;
      worst = where + " out " + std::to_string(out) + " ref " + std::to_string(ref);
    }
    max_rel = std::max(max_rel, e / std::max(std::fabs(ref), 1e-6));
    err2 += e * e;
    ref2 += ref * ref;
  }
  bool report() const {
    const double norm = std::sqrt(err2 / std::max(ref2, 1e-300));
    const bool ok = bad == 0 && norm <= norm_tol && count > 0;
    std::printf("  %-28s n=%-9ld max_abs %.3e  max_rel %.3e  norm_rel %.3e  bad %ld  [%s]\n    worst: %s\n", op, count,
                max_abs, max_rel, norm, bad, ok ? "PASS" : "FAIL", worst.c_str());
    return ok;
  }
};

rk::DeviceRopeTable device_table(const ropescope::model::RopeTable& t) {
  return rk::upload_rope_table(t.cos.data(), t.sin.data(), t.positions, t.pairs);
}

ropescope::model::RopeTable host_table(int d, double base, double partial, long T) {
  ropescope::theory::RopeSpec spec;
  spec.head_dim = d;
  spec.base = base;
  spec.partial_rotary_factor = partial;
  return ropescope::model::make_rope_table(spec, T, ropescope::model::AnglePrecision::exact, T);
}

bool validate_rmsnorm() {
  const int rows = 512, cols = 1024;
  const float eps = 1e-5f;
  Bf16Array x(static_cast<std::size_t>(rows) * cols, 2.0), w(cols, 0.5);
  Output<bf16> y(x.h.size());
  rk::rmsnorm_bf16(x.d, w.d, y.d, rows, cols, eps, nullptr);
  check(cudaDeviceSynchronize(), "rmsnorm");
  const auto out = y.fetch();
  // bf16 output: one rounding, 2^-8 relative.
  Errors e{"rmsnorm 512x1024", 1e-5, 8e-3, 5e-3};
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int c = 0; c < cols; ++c) ss += double(x.f[r * cols + c]) * x.f[r * cols + c];
    const double inv = 1.0 / std::sqrt(ss / cols + eps);
    for (int c = 0; c < cols; ++c)
      e.add(out[r * cols + c], x.f[r * cols + c] * inv * w.f[c], "row " + std::to_string(r) + " col " + std::to_string(c));
  }
  return e.report();
}

bool validate_swiglu() {
  const std::size_t n = 512 * 3584 + 3;
  Bf16Array g(n, 2.0), u(n, 1.0);
  Output<bf16> y(n);
  rk::swiglu_bf16(g.d, u.d, y.d, n, nullptr);
  check(cudaDeviceSynchronize(), "swiglu");
  const auto out = y.fetch();
  Errors e{"swiglu 512x3584+3", 1e-6, 8e-3, 5e-3};
  for (std::size_t i = 0; i < n; ++i) {
    const double gv = g.f[i];
    e.add(out[i], gv / (1 + std::exp(-gv)) * u.f[i], "element " + std::to_string(i));
  }
  return e.report();
}

bool validate_rope_keys() {
  const int T = 600, heads = 4, d = 128;
  const auto table = host_table(d, 1e4, 1.0, T);
  auto dt = device_table(table);
  Bf16Array k(static_cast<std::size_t>(T) * heads * d);
  rk::rope_keys_bf16(k.d, T, heads, d, dt, nullptr);
  check(cudaDeviceSynchronize(), "rope keys");
  std::vector<float> out(k.h.size());
  {
    std::vector<bf16> h(k.h.size());
    check(cudaMemcpy(h.data(), k.d, h.size() * sizeof(bf16), cudaMemcpyDeviceToHost), "download");
    for (std::size_t i = 0; i < h.size(); ++i) out[i] = __bfloat162float(h[i]);
  }
  Errors e{"rope keys T600 4x128", 1e-5, 8e-3, 5e-3};
  std::vector<double> x(d);
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < d; ++i) x[i] = k.f[(t * heads + h) * d + i];
      rk::reference::rotate(x.data(), &table.cos[t * table.pairs], &table.sin[t * table.pairs], table.pairs, false);
      for (int i = 0; i < d; ++i)
        e.add(out[(t * heads + h) * d + i], x[i], "kv head " + std::to_string(h) + " pos " + std::to_string(t) + " dim " + std::to_string(i));
    }
  rk::free_rope_table(dt);
  return e.report();
}

enum class Kernel { mma, wgmma };
const char* kernel_name(Kernel k) { return k == Kernel::mma ? "mma" : "wgmma"; }

// Runs the chosen attention kernel; false when the wgmma kernel declines the
// shape or device (the lab runs on a Hopper GPU, where that is a failure).
bool run_attention(Kernel kernel, const bf16* q, const bf16* k, const bf16* v, const rk::DeviceRopeTable& rope,
                   const rk::AttentionShape& shape, bf16* out, float* lse) {
  if (kernel == Kernel::mma) {
    rk::attention_forward_bf16(q, k, v, rope, shape, out, lse, nullptr);
    return true;
  }
  return rk::attention_forward_wgmma_bf16(q, k, v, rope, shape, out, lse, nullptr);
}

struct AttnCase {
  const char* name;
  int T, Q, KV, d;
  bool twins;
  double partial;
  int sampled_positions;  // 0 = check every position
};

// Runs rope_keys + attention on one case and checks out and lse against the
// float64 reference, every head, every position (or a sample incl. 0 and T-1).
bool validate_attention(const AttnCase& c, Kernel kernel) {
  const int A = c.twins ? 2 * c.Q : c.Q;
  const auto table = host_table(c.d, 1e4, c.partial, c.T);
  auto dt = device_table(table);
  Bf16Array q(static_cast<std::size_t>(c.T) * c.Q * c.d), k(static_cast<std::size_t>(c.T) * c.KV * c.d),
      v(static_cast<std::size_t>(c.T) * c.KV * c.d);
  Output<bf16> out(static_cast<std::size_t>(c.T) * A * c.d);
  Output<float> lse(static_cast<std::size_t>(A) * c.T);
  rk::rope_keys_bf16(k.d, c.T, c.KV, c.d, dt, nullptr);
  if (!run_attention(kernel, q.d, k.d, v.d, dt, {c.T, c.d, c.Q, c.KV, A, c.twins}, out.d, lse.d)) {
    std::printf("  %s [%s]: kernel declined the shape  [FAIL]\n", c.name, kernel_name(kernel));
    rk::free_rope_table(dt);
    return false;
  }
  check(cudaDeviceSynchronize(), "attention");
  const auto o = out.fetch(), l = lse.fetch();

  rk::reference::Attention ref{c.T, c.d, c.Q, c.KV, A, table.pairs, c.twins, q.f.data(), k.f.data(), v.f.data(),
                               table.cos.data(), table.sin.data()};
  std::vector<int> positions;
  if (c.sampled_positions == 0) {
    for (int t = 0; t < c.T; ++t) positions.push_back(t);
  } else {
    std::uniform_int_distribution<int> pick(0, c.T - 1);
    positions = {0, 1, 63, 64, c.T - 1};
    while (static_cast<int>(positions.size()) < c.sampled_positions) positions.push_back(pick(rng));
  }
  // Output: bf16 P and V operands and a bf16 result; lse: fp32 from bf16-rounded rotated q and k.
  Errors eo{"", 1e-2, 2e-2, 1e-2}, el{"", 2e-2, 1e-3, 1e-3};
  const std::string tag = std::string(c.name) + " [" + kernel_name(kernel) + "]";
  const std::string out_name = tag + " out", lse_name = tag + " lse";
  eo.op = out_name.c_str();
  el.op = lse_name.c_str();
  std::vector<double> row(c.d);
  const int G = A / c.KV;
  for (int h = 0; h < c.KV; ++h) {
    const auto keys = ref.rotated_keys(h);
    for (int a = h * G; a < (h + 1) * G; ++a)
      for (int t : positions) {
        const double lse_ref = ref.row(a, t, keys, row.data());
        const std::string where = "head " + std::to_string(a) + (c.twins ? (a % 2 ? " (imag)" : " (real)") : "") +
                                  " pos " + std::to_string(t);
        for (int i = 0; i < c.d; ++i) eo.add(o[(static_cast<std::size_t>(t) * A + a) * c.d + i], row[i], where + " dim " + std::to_string(i));
        el.add(l[static_cast<std::size_t>(a) * c.T + t], lse_ref, where);
      }
  }
  rk::free_rope_table(dt);
  const bool ok_o = eo.report();
  const bool ok_l = el.report();
  return ok_o && ok_l;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median time (ms) of `reps` launches of f, after 3 warm-ups, with CUDA events.
template <class F>
double time_ms(F f, int reps) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < 3; ++i) f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a), "record");
    f();
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float x = 0;
    check(cudaEventElapsedTime(&x, a, b), "elapsed");
    ms.push_back(x);
  }
  check(cudaGetLastError(), "timed launches");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

// "T tflops_flash tflops_cudnn" lines written by bench/torch_attention_baseline.py.
std::map<int, std::pair<double, double>> read_sdpa(const std::string& path) {
  std::map<int, std::pair<double, double>> m;
  std::ifstream in(path);
  int T;
  double f, c;
  while (in >> T >> f >> c) m[T] = {f, c};
  return m;
}

// Sliding-window timing at T = 32768 (EC 376M shape: 8 query heads, 4 KV, A
// = 16, d = 128): each kernel with window none, 4096 and 1024, then softcap
// 50 at none and 4096. Prediction: time in proportion to the visible pairs,
// sum_t min(t + 1, W), plus up to ~2 key tiles per CTA of window-edge
// overhead; "vs none" is against the same kernel without window or softcap.
bool time_windows(const std::vector<Kernel>& kernels, int reps) {
  const int T = 32768, Q = 8, KV = 4, A = 16, d = 128;
  const auto table = host_table(d, 1e4, 1.0, T);
  auto dt = device_table(table);
  Bf16Array q(static_cast<std::size_t>(T) * Q * d), k(static_cast<std::size_t>(T) * KV * d),
      v(static_cast<std::size_t>(T) * KV * d);
  Output<bf16> out(static_cast<std::size_t>(T) * A * d);
  Output<float> lse(static_cast<std::size_t>(A) * T);
  // Distance sums: one slot per distance up to 127, then 64-wide slots.
  std::vector<int> slot_of(T), slot_start;
  for (int D = 0; D < T; ++D) {
    slot_of[D] = D < 128 ? D : 128 + (D - 128) / 64;
    if (static_cast<int>(slot_start.size()) <= slot_of[D]) slot_start.push_back(D);
  }
  const int slots = static_cast<int>(slot_start.size());
  int *d_slot_of = nullptr, *d_slot_start = nullptr;
  rk::Fixed128 *prob = nullptr, *score = nullptr, *stats = nullptr;
  unsigned* overflow = nullptr;
  check(cudaMalloc(&d_slot_of, T * sizeof(int)), "cudaMalloc");
  check(cudaMalloc(&d_slot_start, slots * sizeof(int)), "cudaMalloc");
  check(cudaMalloc(&prob, std::size_t(A) * slots * sizeof(rk::Fixed128)), "cudaMalloc");
  check(cudaMalloc(&score, std::size_t(A) * slots * sizeof(rk::Fixed128)), "cudaMalloc");
  check(cudaMalloc(&stats, 2 * A * sizeof(rk::Fixed128)), "cudaMalloc");
  check(cudaMalloc(&overflow, sizeof(unsigned)), "cudaMalloc");
  check(cudaMemcpy(d_slot_of, slot_of.data(), T * sizeof(int), cudaMemcpyHostToDevice), "upload");
  check(cudaMemcpy(d_slot_start, slot_start.data(), slots * sizeof(int), cudaMemcpyHostToDevice), "upload");
  const bool sums_fit = slots <= rk::distance_sums_slot_capacity(d);
  rk::rope_keys_bf16(k.d, T, KV, d, dt, nullptr);
  std::printf("sliding-window timing, T = %d, EC 8q/4kv d128 (A = 16), median of %d:\n", T, reps);
  std::printf("  %-8s %-8s %-7s %-10s %-12s %-13s %-14s\n", "window", "softcap", "kernel", "ms", "vs none",
              "pairs share", "TFLOP/s (vis.)");
  bool ok = true;
  std::map<std::string, double> none_ms;
  const std::pair<int, double> configs[] = {{0, 0.0}, {4096, 0.0}, {1024, 0.0}, {0, 50.0}, {4096, 50.0}};
  for (const auto& [W, cap] : configs) {
    double pairs = 0;  // visible (query, key) pairs
    for (int t = 0; t < T; ++t) pairs += W > 0 ? std::min(t + 1, W) : t + 1;
    const double share = pairs / (double(T) * (T + 1) / 2);
    rk::AttentionShape shape{T, d, Q, KV, A, true};
    shape.window = W;
    shape.softcap = cap;
    auto row = [&](const std::string& name, double ms, double flops_per_pair) {
      if (W == 0 && cap == 0) none_ms[name] = ms;
      const double tf = flops_per_pair * pairs * A / (ms * 1e-3) / 1e12;
      std::printf("  %-8s %-8s %-7s %-10.3f %-12.3f %-13.3f %-14.1f\n", W ? std::to_string(W).c_str() : "none",
                  cap > 0 ? "50" : "none", name.c_str(), ms, ms / none_ms[name], share, tf);
    };
    for (const Kernel kernel : kernels) {
      bool ran = true;
      const double ms = time_ms([&] { ran &= run_attention(kernel, q.d, k.d, v.d, dt, shape, out.d, lse.d); }, reps);
      if (!ran) {
        std::printf("  %-8d %-7s declined the shape\n", W, kernel_name(kernel));
        ok = false;
        continue;
      }
      row(kernel_name(kernel), ms, 4.0 * d);  // QK^T and PV: 2 d multiply-adds per pair
    }
    if (sums_fit) {
      const rk::DistanceSumsOut o{d_slot_of, d_slot_start, slots, prob, score, stats, overflow};
      const double ms = time_ms([&] { rk::attention_distance_sums_bf16(q.d, k.d, dt, shape, lse.d, o, nullptr); }, reps);
      row("sums", ms, 2.0 * d);  // QK^T only
    }
  }
  cudaFree(d_slot_of);
  cudaFree(d_slot_start);
  cudaFree(prob);
  cudaFree(score);
  cudaFree(stats);
  cudaFree(overflow);
  rk::free_rope_table(dt);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string sdpa_path;
  int reps = 20;
  std::vector<Kernel> kernels = {Kernel::mma, Kernel::wgmma};
  bool windows_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--windows")) windows_only = true;
    if (!std::strcmp(argv[i], "--sdpa") && i + 1 < argc) {
      sdpa_path = argv[++i];
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--kernel") && i + 1 < argc) {
      const std::string k = argv[++i];
      if (k == "mma") {
        kernels = {Kernel::mma};
      } else if (k == "wgmma") {
        kernels = {Kernel::wgmma};
      } else if (k != "both") {
        std::fprintf(stderr, "--kernel: mma, wgmma or both\n");
        return 2;
      }
    }
  }
  std::printf("attention_lab: %s\n", rk::describe_cuda_devices().c_str());
  if (rk::cuda_devices().empty()) return 0;
  if (windows_only) return time_windows(kernels, reps) ? 0 : 1;

  bool ok = true;
  std::printf("validation (float64 CPU reference; bf16 tolerances |err| <= atol + rtol|ref|):\n");
  ok &= validate_rmsnorm();
  ok &= validate_swiglu();
  ok &= validate_rope_keys();
  const AttnCase cases[] = {
      {"ec 8q/4kv d128 T1000", 1000, 8, 4, 128, true, 1.0, 0},
      {"rope 8q/4kv d64 T777 p0.5", 777, 8, 4, 64, false, 0.5, 0},
      {"ec 16q/4kv d128 T300 (G8)", 300, 16, 4, 128, true, 1.0, 0},
      {"eh 4q/2kv d64 T513", 513, 4, 2, 64, true, 1.0, 0},
      {"rope 8q/8kv d128 T200 (G1)", 200, 8, 8, 128, false, 1.0, 0},
      {"ec 8q/4kv d128 T16384 sampled", 16384, 8, 4, 128, true, 1.0, 24},
      // 12 pairs (pairs % 8 != 0): the wgmma kernel's element-by-element rotation.
      {"eh 4q/2kv d64 T333 p0.375", 333, 4, 2, 64, true, 0.375, 0},
      // T below the wgmma kernel's 128-key tile, and below one CTA's 16 positions.
      {"ec 8q/4kv d128 T100", 100, 8, 4, 128, true, 1.0, 0},
      {"rope 8q/1kv d64 T7 (G8)", 7, 8, 1, 64, false, 1.0, 0},
  };
  for (const Kernel kernel : kernels)
    for (const auto& c : cases) ok &= validate_attention(c, kernel);

  const auto sdpa = sdpa_path.empty() ? std::map<int, std::pair<double, double>>{} : read_sdpa(sdpa_path);
  double peak = 0;
  {
    // bf16 dense tensor-core peak of an H100 SXM / H200 (989 TFLOP/s); 790-800 measured here for GEMM.
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "props");
    peak = 989.0;
    std::printf("timing on %s, %d SMs (median of %d, bf16 peak taken as %.0f TFLOP/s)\n", prop.name,
                prop.multiProcessorCount, reps, peak);
  }
  std::printf("  %-6s %-7s %-10s %-10s %-10s %-9s %-12s %-12s %-10s %-10s\n", "T", "kernel", "attn ms", "keys ms",
              "TFLOP/s", "of peak", "SDPA flash", "SDPA cudnn", "ours/flash", "ours/cudnn");
  for (int T : {4096, 16384}) {
    const int Q = 8, KV = 4, A = 16, d = 128;
    const auto table = host_table(d, 1e4, 1.0, T);
    auto dt = device_table(table);
    Bf16Array q(static_cast<std::size_t>(T) * Q * d), k(static_cast<std::size_t>(T) * KV * d),
        v(static_cast<std::size_t>(T) * KV * d);
    Output<bf16> out(static_cast<std::size_t>(T) * A * d);
    Output<float> lse(static_cast<std::size_t>(A) * T);
    const rk::AttentionShape shape{T, d, Q, KV, A, true};
    const double keys_ms = time_ms([&] { rk::rope_keys_bf16(k.d, T, KV, d, dt, nullptr); }, reps);
    for (const Kernel kernel : kernels) {
      bool ran = true;
      const double ms = time_ms([&] { ran &= run_attention(kernel, q.d, k.d, v.d, dt, shape, out.d, lse.d); }, reps);
      if (!ran) {
        std::printf("  %-6d %-7s declined the shape\n", T, kernel_name(kernel));
        ok = false;
        continue;
      }
      const double flops = 4.0 * T * double(T) * d * A / 2;  // causal: half of QK^T and PV
      const double tf = flops / (ms * 1e-3) / 1e12;
      const auto it = sdpa.find(T);
      const double flash = it == sdpa.end() ? 0 : it->second.first, cudnn = it == sdpa.end() ? 0 : it->second.second;
      char ratio[32] = "-", ratio_cudnn[32] = "-";
      if (flash > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", tf / flash);
      if (cudnn > 0) std::snprintf(ratio_cudnn, sizeof ratio_cudnn, "%.2fx", tf / cudnn);
      std::printf("  %-6d %-7s %-10.3f %-10.3f %-10.1f %-9.1f%% %-12.1f %-12.1f %-10s %-10s\n", T, kernel_name(kernel),
                  ms, keys_ms, tf, 100 * tf / peak, flash, cudnn, ratio, ratio_cudnn);
    }
    rk::free_rope_table(dt);
  }
  std::printf("validation: %s\n", ok ? "ALL PASS" : "FAILURES");
  return ok ? 0 : 1;
}
