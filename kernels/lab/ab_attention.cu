// ab_attention: A/B timing of the attention kernels of two commits. Built
// against one commit's kernels/ops sources (ab_build.sh compiles it twice, the
// include root and sources taken from each checkout), it times the default
// path only (no window, no softcap, d^-0.5), which every version of ops.hpp
// takes with the same six-field AttentionShape: attention_forward_bf16
// (mma.sync), attention_forward_wgmma_bf16 and attention_distance_sums_bf16 on
// the EC 376M shape (8 query heads, 4 KV, A = 16, d = 128), T = 4096, 16384,
// 32768; median of `reps` CUDA-event-timed launches after 3 warm-ups.
//   ab_attention [reps]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/ops/ops.hpp"

namespace rk = ropescope::kernels;

namespace {

// DistanceSumsOut before and after the fixed-point sums (issue 16): the
// accumulators' element type is ops.hpp's, and the overflow flag is set where
// the struct has one.
using SumsAcc = std::remove_pointer_t<decltype(rk::DistanceSumsOut::prob_sum)>;
template <class Out, class = void>
struct HasOverflow : std::false_type {};
template <class Out>
struct HasOverflow<Out, std::void_t<decltype(std::declval<Out&>().overflow)>> : std::true_type {};
template <class Out>
void set_overflow(Out& out, unsigned* flag) {
  if constexpr (HasOverflow<Out>::value) out.overflow = flag;
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "CUDA error at %s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

template <class F>
double median_ms(F f, int reps) {
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
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

rk::bf16* random_bf16(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<rk::bf16> h(n);
  for (auto& x : h) x = __float2bfloat16(normal(rng));
  rk::bf16* d = nullptr;
  check(cudaMalloc(&d, n * sizeof(rk::bf16)), "cudaMalloc");
  check(cudaMemcpy(d, h.data(), n * sizeof(rk::bf16), cudaMemcpyHostToDevice), "upload");
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 10;
  const int Q = 8, KV = 4, A = 16, d = 128, pairs = d / 2;
  std::mt19937 rng(5);
  for (const int T : {4096, 16384, 32768}) {
    // RoPE table, base 1e4 (angles in double, stored as float).
    std::vector<float> cs(static_cast<std::size_t>(T) * pairs), sn(cs.size());
    for (int t = 0; t < T; ++t)
      for (int n = 0; n < pairs; ++n) {
        const double angle = t * std::pow(1e4, -2.0 * n / d);
        cs[static_cast<std::size_t>(t) * pairs + n] = static_cast<float>(std::cos(angle));
        sn[static_cast<std::size_t>(t) * pairs + n] = static_cast<float>(std::sin(angle));
      }
    auto rope = rk::upload_rope_table(cs.data(), sn.data(), T, pairs);
    rk::bf16* q = random_bf16(static_cast<std::size_t>(T) * Q * d, rng);
    rk::bf16* k = random_bf16(static_cast<std::size_t>(T) * KV * d, rng);
    rk::bf16* v = random_bf16(static_cast<std::size_t>(T) * KV * d, rng);
    rk::bf16* out = nullptr;
    float* lse = nullptr;
    check(cudaMalloc(&out, static_cast<std::size_t>(T) * A * d * sizeof(rk::bf16)), "cudaMalloc");
    check(cudaMalloc(&lse, static_cast<std::size_t>(A) * T * sizeof(float)), "cudaMalloc");
    const rk::AttentionShape shape{T, d, Q, KV, A, true};
    // Distance sums: one slot per distance below 128, then 64-wide slots.
    std::vector<int> slot_of(T), slot_start;
    for (int D = 0; D < T; ++D) {
      slot_of[D] = D < 128 ? D : 128 + (D - 128) / 64;
      if (static_cast<int>(slot_start.size()) <= slot_of[D]) slot_start.push_back(D);
    }
    const int slots = static_cast<int>(slot_start.size());
    int *d_slot_of = nullptr, *d_slot_start = nullptr;
    SumsAcc* acc = nullptr;
    unsigned* overflow = nullptr;
    check(cudaMalloc(&d_slot_of, T * sizeof(int)), "cudaMalloc");
    check(cudaMalloc(&d_slot_start, slots * sizeof(int)), "cudaMalloc");
    check(cudaMalloc(&acc, (2 * static_cast<std::size_t>(A) * slots + 2 * A) * sizeof(SumsAcc)), "cudaMalloc");
    check(cudaMalloc(&overflow, sizeof(unsigned)), "cudaMalloc");
    check(cudaMemcpy(d_slot_of, slot_of.data(), T * sizeof(int), cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy(d_slot_start, slot_start.data(), slots * sizeof(int), cudaMemcpyHostToDevice), "upload");
    rk::DistanceSumsOut sums{d_slot_of, d_slot_start, slots, acc, acc + A * slots, acc + 2 * A * slots};
    set_overflow(sums, overflow);
    const double flops = 4.0 * T * double(T) * d * A / 2;
    const double mma = median_ms([&] { rk::attention_forward_bf16(q, k, v, rope, shape, out, lse, nullptr); }, reps);
    const double wgmma =
        median_ms([&] { rk::attention_forward_wgmma_bf16(q, k, v, rope, shape, out, lse, nullptr); }, reps);
    const double prof =
        median_ms([&] { rk::attention_distance_sums_bf16(q, k, rope, shape, lse, sums, nullptr); }, reps);
    std::printf("T %6d  mma %8.3f ms (%5.1f TFLOP/s)  wgmma %8.3f ms (%5.1f)  sums %8.3f ms\n", T, mma,
                flops / mma / 1e9, wgmma, flops / wgmma / 1e9, prof);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
    cudaFree(lse);
    cudaFree(d_slot_of);
    cudaFree(d_slot_start);
    cudaFree(acc);
    cudaFree(overflow);
    rk::free_rope_table(rope);
  }
  return 0;
}
