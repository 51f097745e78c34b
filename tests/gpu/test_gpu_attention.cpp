// The CUDA attention kernel (kernels/ops/attention.cu) on small shapes against
// the float64 reference of kernels/lab/reference.hpp: RoPE++ EC (real and
// imaginary twins made inside the kernel, GQA), plain RoPE with partial rotary.
// Skipped, with the runtime's reason, where there is no CUDA device (CI).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/device_info.hpp"
#include "kernels/lab/reference.hpp"
#include "kernels/ops/ops.hpp"
#include "model/rope_table.hpp"

namespace rk = ropescope::kernels;

namespace {

struct Case {
  int T, Q, KV, d;
  bool twins;
  double partial;
};

void run_case(const Case& c) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const int A = c.twins ? 2 * c.Q : c.Q;
  ropescope::theory::RopeSpec spec;
  spec.head_dim = c.d;
  spec.partial_rotary_factor = c.partial;
  const auto table = ropescope::model::make_rope_table(spec, c.T, ropescope::model::AnglePrecision::exact, c.T);

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  auto draw = [&](std::size_t n, std::vector<rk::bf16>& h, std::vector<float>& f) {
    h.resize(n);
    f.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      h[i] = __float2bfloat16(normal(rng));
      f[i] = __bfloat162float(h[i]);
    }
  };
  std::vector<rk::bf16> qh, kh, vh;
  std::vector<float> qf, kf, vf;
  draw(std::size_t(c.T) * c.Q * c.d, qh, qf);
  draw(std::size_t(c.T) * c.KV * c.d, kh, kf);
  draw(std::size_t(c.T) * c.KV * c.d, vh, vf);

  rk::bf16 *q, *k, *v, *out;
  float* lse;
  const std::size_t n_out = std::size_t(c.T) * A * c.d;
  ASSERT_EQ(cudaMalloc(&q, qh.size() * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&k, kh.size() * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&v, vh.size() * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&out, n_out * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&lse, std::size_t(A) * c.T * 4), cudaSuccess);
  cudaMemcpy(q, qh.data(), qh.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(k, kh.data(), kh.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(v, vh.data(), vh.size() * 2, cudaMemcpyHostToDevice);
  cudaMemset(out, 0xFF, n_out * 2);  // NaN poison: unwritten elements fail
  auto dt = rk::upload_rope_table(table.cos.data(), table.sin.data(), table.positions, table.pairs);
  rk::rope_keys_bf16(k, c.T, c.KV, c.d, dt, nullptr);
  rk::attention_forward_bf16(q, k, v, dt, {c.T, c.d, c.Q, c.KV, A, c.twins}, out, lse, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<rk::bf16> o(n_out);
  std::vector<float> l(std::size_t(A) * c.T);
  cudaMemcpy(o.data(), out, n_out * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(l.data(), lse, l.size() * 4, cudaMemcpyDeviceToHost);
  rk::free_rope_table(dt);
  cudaFree(q);
  cudaFree(k);
  cudaFree(v);
  cudaFree(out);
  cudaFree(lse);

  rk::reference::Attention ref{c.T, c.d, c.Q, c.KV, A, table.pairs, c.twins, qf.data(), kf.data(), vf.data(),
                               table.cos.data(), table.sin.data()};
  std::vector<double> row(c.d);
  double err2 = 0, ref2 = 0;
  const int G = A / c.KV;
  for (int h = 0; h < c.KV; ++h) {
    const auto keys = ref.rotated_keys(h);
    for (int a = h * G; a < (h + 1) * G; ++a)
      for (int t = 0; t < c.T; ++t) {
        const double lse_ref = ref.row(a, t, keys, row.data());
        ASSERT_NEAR(l[std::size_t(a) * c.T + t], lse_ref, 2e-2) << "lse head " << a << " pos " << t;
        for (int i = 0; i < c.d; ++i) {
          const double got = __bfloat162float(o[(std::size_t(t) * A + a) * c.d + i]);
          // bf16 P, V and output: |err| <= 1e-2 + 2e-2 |ref|.
          ASSERT_NEAR(got, row[i], 1e-2 + 2e-2 * std::fabs(row[i])) << "head " << a << " pos " << t << " dim " << i;
          err2 += (got - row[i]) * (got - row[i]);
          ref2 += row[i] * row[i];
        }
      }
  }
  EXPECT_LT(std::sqrt(err2 / ref2), 1e-2);
}

}  // namespace

TEST(GpuAttention, RopePlusPlusEcTwinsMatchFloat64Reference) { run_case({333, 4, 2, 128, true, 1.0}); }

TEST(GpuAttention, PlainRopePartialRotaryGqaMatchesFloat64Reference) { run_case({200, 4, 2, 64, false, 0.5}); }
