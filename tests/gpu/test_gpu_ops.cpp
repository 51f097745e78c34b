// Per-kernel GPU test registry (in the spirit of ggml's test-backend-ops):
// every attention kernel of kernels/ops and kernels/forward_ops against the
// float64 host reference of kernels/lab/reference.hpp, over a table of
// shapes and score options: GQA group sizes 1 to 8; head dims 16, 32 (the
// simple kernels), 64, 128 (every kernel), 80, 96, 256 (mma.sync, the sums; 256 also the wgmma sums);
// sliding windows none / smaller than T / not a multiple of the key tiles;
// logit softcap none / 6 / 30 / 50; scale head_dim^-0.5 / other; T never a
// multiple of the 64- or 128-key tiles. Each (case, kernel) pair is checked
// element by element; a failure names the worst element (head, position,
// dim or slot), its value and the reference. Kernels:
//   mma       attention_forward_bf16 (mma.sync flash), out and lse
//   mma_lse   the same without values (out, v null): lse bitwise the mma one's
//   wgmma     attention_forward_wgmma_bf16 (Hopper), out and lse
//   simple    attention_simple_bf16 (any even d), out and lse
//   sums      attention_distance_sums_bf16 with the wgmma (else mma) lse
//   sums_wgmma   attention_distance_sums_wgmma_bf16 (Hopper, d = 256), the same lse
//   fused     FusedDistanceSums: the wgmma forward with the far pairs' sums
//             and the stats, then the band pass (plan_fused_sums of the
//             case's slots: band 256, from T = 333 on)
//   sums_simple  attention_distance_sums_simple_bf16 with the simple lse
//   blocks    attention_scores_f32 + softmax_rows_f32 (the observer's blocks)
// Tolerances (inputs are the same bf16 values; the reference rotates in
// float64 and never rounds):
//   out (bf16): |err| <= (1e-2 + 2e-2 |ref|) m (bf16 P, V and output roundings);
//   lse (fp32): |err| <= 2e-2 m (q and k rotated then rounded to bf16);
//   m = max(1, 1.5 scale sqrt(d)): a bf16 rounding of q or k moves a score
//   by ~2^-9 scale sqrt(d) (N(0, 1) inputs), so a scale above d^-0.5 (the
//   table's 0.5 at d = 64, 128) scales the score, lse and output errors with
//   it; the 1.5 covers the sharper softmax (first device run: the scale-0.5
//   cases reached 0.99 of the plain scale sqrt(d) factor, all others <= 0.86);
//   distance sums (fp32 partial sums added exactly in fixed point,
//   kernels/ops/fixed_point.hpp, each total rounded once to double): per
//   slot, probability and |score| sums within 3e-2 relative + 1e-3, and
//   EXACTLY 0 for slots at or beyond a window (no masked pair may count);
//   p (t - s) and entropy sums within 3e-2 relative; and bitwise
//   reproducible: a second run into accumulators that start at -2^20 units
//   (every add then carries across the 64-bit words) gives, less that
//   start, the same 128-bit totals byte for byte; no overflow bit set;
//   blocks (fp32): scores (2e-2 + 1e-2 |ref|) m, -inf exactly where masked;
//   probabilities 2e-3 + 3e-2 ref, exactly 0 where masked.
// Also the decoder's row kernels (GpuRowOps, after the table: norms, the
// residual norms' non-finite row flag, MLP activations, softcap), with their
// own tolerances stated there, and the
// distance sums' overflow flag (GpuDistanceSums: each kernel refuses an
// addend out of its fixed-point range and says which).
// Skipped, with the runtime's reason, where there is no CUDA device (CI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/device_info.hpp"
#include "kernels/forward_ops.hpp"
#include "kernels/kernel_choice.hpp"
#include "kernels/lab/reference.hpp"
#include "kernels/ops/ops.hpp"
#include "model/rope_table.hpp"

namespace rk = ropescope::kernels;

namespace {

struct OpCase {
  int T, Q, KV, d;
  bool twins;
  double partial;  // partial rotary factor
  double scale;    // 0: d^-0.5
  double softcap;  // 0: none
  int window;      // 0: none
};

std::string case_name(const OpCase& c) {
  const int A = c.twins ? 2 * c.Q : c.Q;
  std::ostringstream s;
  s << (c.twins ? "ec" : "rope") << "_T" << c.T << "_G" << A / c.KV << "_d" << c.d << "_kv" << c.KV;
  if (c.partial != 1.0) s << "_partial" << static_cast<int>(c.partial * 100);
  if (c.scale != 0) s << "_scale" << static_cast<int>(std::lround(c.scale * 1000)) << "m";  // milli
  if (c.softcap != 0) s << "_cap" << c.softcap;
  if (c.window != 0) s << "_w" << c.window;
  return s.str();
}

// The table. T values: 333, 517, 200, 1000, 2100, 3000, 77 (none a multiple of 64
// or 128); windows: 48 (< one 64-key tile), 100 / 173 / 300 (not multiples
// of either tile), 256 (a multiple); 2100 with window 300 makes the kernels
// skip whole key tiles (the first CTAs' windows start past tile 0).
std::vector<OpCase> cases() {
  std::vector<OpCase> v;
  const int groups[] = {1, 2, 4, 8};
  const int dims[] = {64, 128};
  // Every (G, d): plain, then with each feature in turn and all together.
  for (int g : groups)
    for (int d : dims) {
      const int KV = 2, A = KV * g;
      const bool twins = g % 2 == 0 && d == 128;  // EC twins where A is even and one query head per pair
      const int Q = twins ? A / 2 : A;
      v.push_back({333, Q, KV, d, twins, 1.0, 0, 0, 0});
      v.push_back({333, Q, KV, d, twins, 1.0, 0, 0, g == 8 ? 48 : 100});
      v.push_back({517, Q, KV, d, twins, 1.0, 0, g % 2 ? 30.0 : 50.0, 0});
      v.push_back({200, Q, KV, d, twins, 1.0, 0.5, 0, 0});
      v.push_back({517, Q, KV, d, twins, d == 64 ? 1.0 : 0.5, 0.5, 30.0, 173});
    }
  // Longer sequences: tile skipping under a window, a window that is a tile multiple.
  v.push_back({2100, 4, 1, 128, true, 1.0, 0, 0, 300});
  v.push_back({2100, 8, 2, 64, false, 1.0, 0.3, 50.0, 256});
  v.push_back({1000, 8, 8, 128, false, 1.0, 0, 30.0, 300});
  // Groups that do not divide the wgmma tile's 128 rows (Qwen2.5-7B has 7): padded tiles.
  v.push_back({517, 14, 2, 128, false, 1.0, 0, 0, 0});
  v.push_back({1000, 6, 2, 64, true, 1.0, 0, 30.0, 300});
  v.push_back({333, 10, 2, 64, false, 1.0, 0, 0, 0});
  // Many far slots for the fused sums: GQA 4 with twins; GQA 8, softcap and a window past the band.
  v.push_back({3000, 4, 2, 128, true, 1.0, 0, 0, 0});
  v.push_back({3000, 8, 1, 64, false, 1.0, 0, 30.0, 2500});
  // T below one tile, window larger than T (no masking), partial rotary.
  v.push_back({77, 8, 1, 64, false, 0.5, 0, 0, 0});
  v.push_back({77, 4, 2, 128, true, 1.0, 0, 50.0, 100});
  // Head dims of mma.sync but not wgmma: 80 (StableLM-3B, partial rotary
  // 0.25: 10 pairs, not a multiple of 8), 96 (Phi-3-mini), 256 (Gemma: scale
  // d^-0.5 = 1/16, softcap 50, windows; GQA 2), with padded groups 3 and 6.
  v.push_back({333, 4, 4, 80, false, 1.0, 0, 0, 0});
  v.push_back({517, 8, 2, 80, false, 0.25, 0, 30.0, 100});
  v.push_back({517, 4, 4, 96, false, 1.0, 0, 0, 0});
  v.push_back({333, 4, 2, 96, true, 1.0, 0, 50.0, 173});
  v.push_back({333, 6, 2, 96, false, 0.5, 0, 0, 0});
  v.push_back({333, 4, 2, 256, false, 1.0, 0, 50.0, 0});
  v.push_back({517, 4, 2, 256, false, 1.0, 0, 50.0, 100});
  v.push_back({200, 8, 2, 256, true, 0.5, 0, 0, 0});
  v.push_back({2100, 8, 4, 256, false, 1.0, 0, 50.0, 300});
  v.push_back({77, 6, 2, 256, true, 0.5, 0, 0, 0});
  // Softcap 6 at d = 256: the scores are about N(0, 1), so about a quarter of
  // the 16 x 64 warp tiles hold one at or past tanhf's polynomial bound
  // (0.6 cap = 3.6) and take tanhf, the rest the polynomial alone
  // (softcap_warp_tile, mma.cuh; the other cases' caps of 30 and 50 keep
  // every d = 256 tile below it).
  v.push_back({1000, 4, 2, 256, false, 1.0, 0, 6.0, 0});
  // Many log-binned slots at d = 256 (the wgmma sums' runs, split and diagonal tiles).
  v.push_back({3000, 4, 2, 256, false, 1.0, 0, 0, 0});
  // Head dims only the simple kernels take (the test models' d = 16; 32).
  v.push_back({200, 4, 2, 16, true, 1.0, 0, 0, 0});
  v.push_back({200, 4, 2, 16, true, 1.0, 0.6, 30.0, 37});
  v.push_back({333, 8, 2, 32, false, 1.0, 0, 50.0, 100});
  return v;
}

template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  std::size_t n = 0;
  explicit DeviceBuffer(std::size_t count) : n(count) {
    if (cudaMalloc(&ptr, std::max<std::size_t>(1, n) * sizeof(T)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(const std::vector<T>& h) { cudaMemcpy(ptr, h.data(), n * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> download() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

// Worst element of one comparison: largest |got - ref| / tolerance.
struct Worst {
  double ratio = 0, got = 0, ref = 0;
  std::string where;
  long checked = 0;
  void add(double got_v, double ref_v, double tol, const std::function<std::string()>& at) {
    ++checked;
    double r;
    if (std::isinf(ref_v) || std::isinf(got_v))  // masked scores: -inf on both sides or a failure
      r = got_v == ref_v ? 0.0 : std::numeric_limits<double>::infinity();
    else
      r = std::fabs(got_v - ref_v) / tol;
    if (std::isnan(r)) r = std::numeric_limits<double>::infinity();  // NaN (e.g. an unwritten element)
    if (where.empty() || r > ratio) {
      ratio = r;
      got = got_v;
      ref = ref_v;
      where = at();
    }
  }
  bool ok() const { return ratio <= 1.0; }
  std::string report(const char* what) const {
    std::ostringstream s;
    s << what << ": worst " << where << " got " << got << " ref " << ref << " (|err| / tol " << ratio << ", "
      << checked << " checked)";
    return s.str();
  }
};

// Inputs and float64 reference results of one case.
struct Fixture {
  OpCase c;
  int A = 0, G = 0;
  ropescope::model::RopeTable table;
  std::vector<rk::bf16> qh, kh, vh;
  std::vector<float> qf, kf, vf;
  rk::reference::Attention ref;
  std::vector<double> out;  // [T, A, d]
  std::vector<double> lse;  // [A, T]
  // Distance sums with one slot per distance below 64, then bins of doubling width.
  std::vector<int> slot_of, slot_start;
  std::vector<double> prob_sum, score_sum, score_abs, stats;  // [A, slots] x 3, [A, 2]

  explicit Fixture(const OpCase& oc) : c(oc) {
    A = c.twins ? 2 * c.Q : c.Q;
    G = A / c.KV;
    ropescope::theory::RopeSpec spec;
    spec.head_dim = c.d;
    spec.partial_rotary_factor = c.partial;
    table = ropescope::model::make_rope_table(spec, c.T, ropescope::model::AnglePrecision::exact, c.T);
    std::mt19937 rng(1234 + c.T + 7 * c.d + 131 * A);
    std::normal_distribution<float> normal(0.f, 1.f);
    auto draw = [&](std::size_t n, std::vector<rk::bf16>& h, std::vector<float>& f) {
      h.resize(n);
      f.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        h[i] = __float2bfloat16(normal(rng));
        f[i] = __bfloat162float(h[i]);
      }
    };
    draw(std::size_t(c.T) * c.Q * c.d, qh, qf);
    draw(std::size_t(c.T) * c.KV * c.d, kh, kf);
    draw(std::size_t(c.T) * c.KV * c.d, vh, vf);
    ref = rk::reference::Attention{c.T, c.d, c.Q, c.KV, A, table.pairs, c.twins, qf.data(), kf.data(), vf.data(),
                                   table.cos.data(), table.sin.data(), c.scale, c.softcap, c.window};
    for (int D = 0; D < c.T; ++D) {
      const int slot = D < 64 ? D : 64 + static_cast<int>(std::floor(std::log2(D / 64.0) * 2));  // half-octave bins
      if (slot_start.size() <= static_cast<std::size_t>(slot)) slot_start.push_back(D);
      slot_of.push_back(slot);
    }
    const int slots = static_cast<int>(slot_start.size());
    out.assign(std::size_t(c.T) * A * c.d, 0.0);
    lse.assign(std::size_t(A) * c.T, 0.0);
    prob_sum.assign(std::size_t(A) * slots, 0.0);
    score_sum = score_abs = prob_sum;
    stats.assign(2 * A, 0.0);
    for (int h = 0; h < c.KV; ++h) {
      const auto keys = ref.rotated_keys(h);
      for (int a = h * G; a < (h + 1) * G; ++a)
        for (int t = 0; t < c.T; ++t) {
          const double l = ref.row(a, t, keys, out.data() + (std::size_t(t) * A + a) * c.d);
          lse[std::size_t(a) * c.T + t] = l;
          const auto qr = ref.query(a, t);
          for (int s = ref.first_key(t); s <= t; ++s) {
            const double sc = ref.score(qr, keys, s), p = std::exp(sc - l);
            const std::size_t k = std::size_t(a) * slots + slot_of[t - s];
            prob_sum[k] += p;
            score_sum[k] += sc;
            score_abs[k] += std::fabs(sc);
            stats[2 * a] += p * (t - s);
            stats[2 * a + 1] += -p * std::log(p);
          }
        }
    }
  }
  int slots() const { return static_cast<int>(slot_start.size()); }
  // The tolerance factor m of the header.
  double amplification() const {
    const double scale = c.scale != 0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.d));
    return std::max(1.0, 1.5 * scale * std::sqrt(static_cast<double>(c.d)));
  }
  rk::AttentionShape shape() const {
    return {c.T, c.d, c.Q, c.KV, A, c.twins, c.scale, c.softcap, c.window};
  }
};

// Device copies of one case's inputs (keys rotated on the device, as the backend does).
struct DeviceInputs {
  DeviceBuffer<rk::bf16> q, k, v;
  rk::DeviceRopeTable rope;
  explicit DeviceInputs(const Fixture& f) : q(f.qh.size()), k(f.kh.size()), v(f.vh.size()) {
    q.upload(f.qh);
    k.upload(f.kh);
    v.upload(f.vh);
    rope = rk::upload_rope_table(f.table.cos.data(), f.table.sin.data(), f.table.positions, f.table.pairs);
    rk::rope_keys_bf16(k.ptr, f.c.T, f.c.KV, f.c.d, rope, nullptr);
  }
  ~DeviceInputs() { rk::free_rope_table(rope); }
};

using ForwardFn = std::function<bool(const DeviceInputs&, const rk::AttentionShape&, rk::bf16*, float*)>;

// Runs one forward kernel (NaN-poisoned outputs) and compares out and lse.
// Returns false when the kernel declines the case. lse_out gets the kernel's lse.
bool check_forward(const Fixture& f, const DeviceInputs& in, const char* name, const ForwardFn& fn,
                   std::vector<float>* lse_out = nullptr) {
  const auto& c = f.c;
  DeviceBuffer<rk::bf16> out(std::size_t(c.T) * f.A * c.d);
  DeviceBuffer<float> lse(std::size_t(f.A) * c.T);
  cudaMemset(out.ptr, 0xFF, out.n * sizeof(rk::bf16));  // NaN poison: unwritten elements fail
  cudaMemset(lse.ptr, 0xFF, lse.n * sizeof(float));
  if (!fn(in, f.shape(), out.ptr, lse.ptr)) return false;
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << name;
  const auto o = out.download();
  const auto l = lse.download();
  Worst wo, wl;
  double err2 = 0, ref2 = 0;
  const double m = f.amplification();
  for (int a = 0; a < f.A; ++a)
    for (int t = 0; t < c.T; ++t) {
      const std::size_t li = std::size_t(a) * c.T + t;
      wl.add(l[li], f.lse[li], 2e-2 * m, [&] { return "head " + std::to_string(a) + " pos " + std::to_string(t); });
      for (int i = 0; i < c.d; ++i) {
        const std::size_t oi = (std::size_t(t) * f.A + a) * c.d + i;
        const double got = __bfloat162float(o[oi]), r = f.out[oi];
        wo.add(got, r, (1e-2 + 2e-2 * std::fabs(r)) * m, [&] {
          return "head " + std::to_string(a) + " pos " + std::to_string(t) + " dim " + std::to_string(i);
        });
        err2 += (got - r) * (got - r);
        ref2 += r * r;
      }
    }
  EXPECT_TRUE(wo.ok()) << name << " " << wo.report("out");
  EXPECT_TRUE(wl.ok()) << name << " " << wl.report("lse");
  const double rel = std::sqrt(err2 / ref2);
  EXPECT_LT(rel, 1e-2 * m) << name << " out norm-wise relative error";
  std::printf("  %-11s out worst %.3g (%s) norm rel %.2e; lse worst %.3g\n", name, std::fabs(wo.got - wo.ref),
              wo.where.c_str(), rel, std::fabs(wl.got - wl.ref));
  if (lse_out) *lse_out = l;
  return true;
}

// The mma.sync kernel without values (out and v null: a profile's last
// layer): its lse equals the full kernel's `full` bit for bit.
void check_lse_alone(const Fixture& f, const DeviceInputs& in, const std::vector<float>& full) {
  DeviceBuffer<float> lse(std::size_t(f.A) * f.c.T);
  cudaMemset(lse.ptr, 0xFF, lse.n * sizeof(float));  // NaN poison: unwritten elements fail
  rk::attention_forward_bf16(in.q.ptr, in.k.ptr, nullptr, in.rope, f.shape(), nullptr, lse.ptr, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "mma_lse";
  const auto l = lse.download();
  ASSERT_EQ(l.size(), full.size());
  for (std::size_t i = 0; i < l.size(); ++i)
    if (std::memcmp(&l[i], &full[i], sizeof(float)) != 0) {
      ADD_FAILURE() << "mma_lse: head " << i / f.c.T << " pos " << i % f.c.T << ": " << l[i] << " without values, "
                    << full[i] << " with";
      return;
    }
  std::printf("  %-11s lse bitwise the mma kernel's\n", "mma_lse");
}

using SumsFn = std::function<void(const DeviceInputs&, const rk::AttentionShape&, const float*,
                                  const rk::DistanceSumsOut&)>;

// One run of a sums kernel as it leaves them: the exact 128-bit totals
// (less the value every accumulator started at) and the overflow flag.
struct FixedSums {
  std::vector<rk::Fixed128> prob, score, stats;
  unsigned overflow = 0;
};

// Runs fn on the case's slot table with lse_host into accumulators that all
// start at `start`, then takes `start` off each total (exactly, mod 2^128).
FixedSums run_sums(const Fixture& f, const DeviceInputs& in, const std::vector<float>& lse_host, const SumsFn& fn,
                   rk::Fixed128 start) {
  const int S = f.slots();
  DeviceBuffer<int> slot_of(f.slot_of.size()), slot_start(f.slot_start.size());
  slot_of.upload(f.slot_of);
  slot_start.upload(f.slot_start);
  DeviceBuffer<float> lse(lse_host.size());
  lse.upload(lse_host);
  DeviceBuffer<rk::Fixed128> prob(std::size_t(f.A) * S), score(std::size_t(f.A) * S), stats(2 * f.A);
  DeviceBuffer<unsigned> overflow(1);
  for (auto* b : {&prob, &score, &stats}) b->upload(std::vector<rk::Fixed128>(b->n, start));
  overflow.upload({0u});
  fn(in, f.shape(), lse.ptr,
     rk::DistanceSumsOut{slot_of.ptr, slot_start.ptr, S, prob.ptr, score.ptr, stats.ptr, overflow.ptr});
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  FixedSums r{prob.download(), score.download(), stats.download(), overflow.download()[0]};
  const rk::Fixed128 minus = rk::negate(start);
  for (auto* v : {&r.prob, &r.score, &r.stats})
    for (auto& x : *v) x = rk::add(x, minus);
  return r;
}

bool same_bytes(const std::vector<rk::Fixed128>& a, const std::vector<rk::Fixed128>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(rk::Fixed128)) == 0;
}

void check_sums(const Fixture& f, const DeviceInputs& in, const char* name, const std::vector<float>& lse_host,
                const SumsFn& fn) {
  const auto& c = f.c;
  const int S = f.slots();
  const FixedSums run = run_sums(f, in, lse_host, fn, rk::Fixed128{0, 0});
  EXPECT_EQ(run.overflow, 0u) << name << ": " << rk::describe_overflow(run.overflow, c.T);
  // Again, from -2^20 units (low word 2^64 - 2^20, high word -1): the same totals, bit for bit.
  const FixedSums again = run_sums(f, in, lse_host, fn, rk::Fixed128{~0ull - ((1ull << 20) - 1), -1});
  EXPECT_EQ(again.overflow, 0u) << name << " (second run)";
  const bool reproducible = same_bytes(run.prob, again.prob) && same_bytes(run.score, again.score) &&
                            same_bytes(run.stats, again.stats);
  EXPECT_TRUE(reproducible) << name << ": a second run gave other fixed-point totals";
  std::vector<double> p(run.prob.size()), s(run.score.size()), st(run.stats.size());
  rk::to_double(run.prob.data(), p.size(), rk::kProbFraction, p.data());
  rk::to_double(run.score.data(), s.size(), rk::kScoreFraction, s.data());
  rk::to_double(run.stats.data(), st.size(), rk::kStatsFraction, st.data());
  Worst wp, ws, wd, we;
  long masked_nonzero = 0;
  for (int a = 0; a < f.A; ++a) {
    for (int k = 0; k < S; ++k) {
      const std::size_t i = std::size_t(a) * S + k;
      auto at = [&] { return "head " + std::to_string(a) + " slot " + std::to_string(k) + " (distance " +
                             std::to_string(f.slot_start[k]) + "..)"; };
      wp.add(p[i], f.prob_sum[i], 1e-3 + 3e-2 * f.prob_sum[i], at);
      ws.add(s[i], f.score_sum[i], 1e-3 + 3e-2 * f.score_abs[i], at);
      // Slots wholly at or past the window hold no pair: exactly zero.
      if (c.window > 0 && f.slot_start[k] >= c.window && (p[i] != 0.0 || s[i] != 0.0)) ++masked_nonzero;
    }
    auto at = [&] { return "head " + std::to_string(a); };
    wd.add(st[2 * a], f.stats[2 * a], 3e-2 * std::fabs(f.stats[2 * a]) + 1e-3, at);
    we.add(st[2 * a + 1], f.stats[2 * a + 1], 3e-2 * std::fabs(f.stats[2 * a + 1]) + 1e-3, at);
  }
  EXPECT_TRUE(wp.ok()) << name << " " << wp.report("probability sums");
  EXPECT_TRUE(ws.ok()) << name << " " << ws.report("score sums");
  EXPECT_TRUE(wd.ok()) << name << " " << wd.report("sum p (t - s)");
  EXPECT_TRUE(we.ok()) << name << " " << we.report("entropy");
  EXPECT_EQ(masked_nonzero, 0) << name << ": slots beyond the window hold mass or scores";
  std::printf("  %-11s prob %.3g score %.3g distance %.3g entropy %.3g (|err| / tol); %s\n", name, wp.ratio,
              ws.ratio, wd.ratio, we.ratio, reproducible ? "bitwise reproducible" : "NOT REPRODUCIBLE");
}

// The observer's score blocks of the last head: rows q0 .. q0 + rows - 1.
void check_blocks(const Fixture& f, const DeviceInputs& in, bool round_query) {
  const auto& c = f.c;
  const int a = f.A - 1, kvh = a / f.G;
  const long q0 = c.T / 3, rows = std::min<long>(40, c.T - q0), k_end = q0 + rows;
  const rk::QuerySource query{in.q.ptr, c.Q * c.d, (c.twins ? a / 2 : a) * c.d,
                              c.twins && a % 2 ? rk::QueryRotation::imaginary : rk::QueryRotation::real};
  DeviceBuffer<float> scores(rows * k_end), probs(rows * k_end);
  rk::attention_scores_f32(query, in.rope, round_query, in.k.ptr, c.KV * c.d, kvh * c.d, f.shape(), q0, rows, k_end,
                           scores.ptr, nullptr);
  rk::softmax_rows_f32(scores.ptr, probs.ptr, q0, rows, k_end, c.window, nullptr);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "blocks";
  const auto s = scores.download(), p = probs.download();
  const auto keys = f.ref.rotated_keys(kvh);
  Worst wsc, wpr;
  for (long r = 0; r < rows; ++r) {
    const int t = static_cast<int>(q0 + r);
    const auto qr = f.ref.query(a, t);
    const double l = f.lse[std::size_t(a) * c.T + t];
    for (long s_ = 0; s_ < k_end; ++s_) {
      const bool visible = s_ <= t && s_ >= f.ref.first_key(t);
      const double sr = visible ? f.ref.score(qr, keys, static_cast<int>(s_)) : -INFINITY;
      const double pr = visible ? std::exp(sr - l) : 0.0;
      auto at = [&] { return "head " + std::to_string(a) + " pos " + std::to_string(t) + " key " + std::to_string(s_); };
      wsc.add(s[r * k_end + s_], sr, (2e-2 + 1e-2 * std::fabs(visible ? sr : 0.0)) * f.amplification(), at);
      wpr.add(p[r * k_end + s_], pr, visible ? 2e-3 + 3e-2 * pr : std::numeric_limits<double>::min(), at);
    }
  }
  EXPECT_TRUE(wsc.ok()) << "blocks " << wsc.report("scores");
  EXPECT_TRUE(wpr.ok()) << "blocks " << wpr.report("probabilities");
  std::printf("  %-11s scores %.3g probs %.3g (|err| / tol)\n", "blocks", wsc.ratio, wpr.ratio);
}

class GpuOps : public ::testing::TestWithParam<OpCase> {};

TEST_P(GpuOps, EveryAttentionKernelMatchesFloat64Reference) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const OpCase& c = GetParam();
  const Fixture f(c);
  const DeviceInputs in(f);
  std::printf("%s\n", case_name(c).c_str());
  const bool flash = rk::flash_attention_supports(f.shape()), wide = rk::wgmma_attention_supports(f.shape());
  std::vector<float> tiled_lse, simple_lse;
  check_forward(f, in, "simple", [](const DeviceInputs& i, const rk::AttentionShape& s, rk::bf16* o, float* l) {
    rk::attention_simple_bf16(i.q.ptr, i.k.ptr, i.v.ptr, i.rope, s, o, l, nullptr);
    return true;
  }, &simple_lse);
  check_sums(f, in, "sums_simple", simple_lse, [](const DeviceInputs& i, const rk::AttentionShape& s, const float* l,
                                                  const rk::DistanceSumsOut& o) {
    rk::attention_distance_sums_simple_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, false, o, nullptr);
  });
  if (flash) {
    check_forward(f, in, "mma", [](const DeviceInputs& i, const rk::AttentionShape& s, rk::bf16* o, float* l) {
      rk::attention_forward_bf16(i.q.ptr, i.k.ptr, i.v.ptr, i.rope, s, o, l, nullptr);
      return true;
    }, &tiled_lse);
    check_lse_alone(f, in, tiled_lse);
  }
  if (wide) {  // wgmma with the fused sums (Hopper), else declined
    std::vector<float> wgmma_lse;
    const bool ran = check_forward(f, in, "wgmma", [](const DeviceInputs& i, const rk::AttentionShape& s, rk::bf16* o,
                                                      float* l) {
      return rk::attention_forward_wgmma_bf16(i.q.ptr, i.k.ptr, i.v.ptr, i.rope, s, o, l, nullptr);
    }, &wgmma_lse);
    if (ran) tiled_lse = wgmma_lse;  // the backend's lse on a Hopper device
    else std::printf("  %-11s declined (not compute capability 9.0)\n", "wgmma");
    const rk::FusedSumsPlan plan = rk::plan_fused_sums(f.slot_of);
    if (ran && plan.coarse_slots >= 1 && plan.coarse_slots <= rk::kFusedSumsMaxSlots) {
      std::printf("  fused plan: band %d, slots %d .. %d\n", plan.band, plan.first_slot,
                  plan.first_slot + plan.coarse_slots - 1);
      check_sums(f, in, "fused", tiled_lse, [&](const DeviceInputs& i, const rk::AttentionShape& s, const float*,
                                                const rk::DistanceSumsOut& o) {
        DeviceBuffer<rk::bf16> out(std::size_t(c.T) * f.A * c.d);
        DeviceBuffer<float> lse(std::size_t(f.A) * c.T);
        const rk::FusedDistanceSums fused{o, plan.band, plan.first_slot, plan.coarse_slots};
        ASSERT_TRUE(rk::attention_forward_wgmma_bf16(i.q.ptr, i.k.ptr, i.v.ptr, i.rope, s, out.ptr, lse.ptr, nullptr,
                                                     &fused));
        rk::attention_distance_sums_near_bf16(i.q.ptr, i.k.ptr, i.rope, s, lse.ptr, fused, nullptr);
        cudaDeviceSynchronize();  // out and lse are freed on return
      });
    } else if (ran) {
      std::printf("  %-11s no far slots (band %d, T %d)\n", "fused", plan.band, c.T);
    }
  }
  if (flash)
    check_sums(f, in, "sums", tiled_lse,
               [](const DeviceInputs& i, const rk::AttentionShape& s, const float* l, const rk::DistanceSumsOut& o) {
                 rk::attention_distance_sums_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, o, nullptr);
               });
  if (flash && c.d == 256) {  // the wgmma build of the sums (Hopper), else declined
    if (rk::current_device_facts(c.d).compute_capability == 90)
      check_sums(f, in, "sums_wgmma", tiled_lse,
                 [](const DeviceInputs& i, const rk::AttentionShape& s, const float* l, const rk::DistanceSumsOut& o) {
                   ASSERT_TRUE(rk::attention_distance_sums_wgmma_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, o, nullptr));
                 });
    else
      std::printf("  %-11s declined (not compute capability 9.0)\n", "sums_wgmma");
  }
  check_blocks(f, in, flash);
}

INSTANTIATE_TEST_SUITE_P(Table, GpuOps, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<OpCase>& info) { return case_name(info.param); });

// The overflow flag: an addend out of its fixed-point range (or not finite)
// is refused with its (kernel, quantity) bit, never added. An lse of -1e30
// makes every probability +inf (the simple and separate kernels); a scale of
// 1e20 makes score addends far beyond their limit, 2^58 at T = 1000 (the
// fused forward, which computes its own lse; scores stay finite in fp32).
// describe_overflow names the kernel.
TEST(GpuDistanceSums, OverflowSetsTheFlagAndNamesTheKernel) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const OpCase plain{1000, 4, 2, 128, false, 1.0, 0, 0, 0};
  const Fixture f(plain);
  const DeviceInputs in(f);
  const std::vector<float> poisoned(std::size_t(f.A) * plain.T, -1e30f);
  using rk::SumsQuantity;
  using rk::SumsSite;
  auto expect_bit = [&](const FixedSums& r, SumsSite site, SumsQuantity quantity, int T, const char* kernel) {
    EXPECT_TRUE(r.overflow & rk::overflow_bit(site, quantity)) << kernel << ": flag " << r.overflow;
    const std::string text = rk::describe_overflow(r.overflow, T);
    EXPECT_NE(text.find(kernel), std::string::npos) << text;
    std::printf("  %s\n", text.c_str());
  };
  const FixedSums simple = run_sums(f, in, poisoned, [](const DeviceInputs& i, const rk::AttentionShape& s,
                                                        const float* l, const rk::DistanceSumsOut& o) {
    rk::attention_distance_sums_simple_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, true, o, nullptr);
  }, rk::Fixed128{0, 0});
  expect_bit(simple, SumsSite::simple, SumsQuantity::prob, plain.T, "attention_distance_sums_simple_bf16");
  const FixedSums separate = run_sums(f, in, poisoned, [](const DeviceInputs& i, const rk::AttentionShape& s,
                                                          const float* l, const rk::DistanceSumsOut& o) {
    rk::attention_distance_sums_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, o, nullptr);
  }, rk::Fixed128{0, 0});
  expect_bit(separate, SumsSite::separate, SumsQuantity::prob, plain.T, "attention_distance_sums_bf16");
  // The wgmma build at d = 256 (Hopper only), with its own site.
  if (rk::current_device_facts(256).compute_capability == 90) {
    const OpCase wide{1000, 4, 2, 256, false, 1.0, 0, 0, 0};
    const Fixture w(wide);
    const DeviceInputs win(w);
    const FixedSums separate_wgmma = run_sums(w, win, poisoned, [](const DeviceInputs& i, const rk::AttentionShape& s,
                                                                   const float* l, const rk::DistanceSumsOut& o) {
      ASSERT_TRUE(rk::attention_distance_sums_wgmma_bf16(i.q.ptr, i.k.ptr, i.rope, s, l, o, nullptr));
    }, rk::Fixed128{0, 0});
    expect_bit(separate_wgmma, SumsSite::separate_wgmma, SumsQuantity::prob, wide.T,
               "attention_distance_sums_wgmma_bf16");
  }

  OpCase loud = plain;
  loud.scale = 1e20;
  const Fixture g(loud);
  const DeviceInputs gin(g);
  const rk::FusedSumsPlan plan = rk::plan_fused_sums(g.slot_of);
  ASSERT_GE(plan.coarse_slots, 1);
  bool ran = true;
  const FixedSums fused = run_sums(g, gin, poisoned, [&](const DeviceInputs& i, const rk::AttentionShape& s,
                                                        const float*, const rk::DistanceSumsOut& o) {
    DeviceBuffer<rk::bf16> out(std::size_t(loud.T) * g.A * loud.d);
    DeviceBuffer<float> lse(std::size_t(g.A) * loud.T);
    const rk::FusedDistanceSums sums{o, plan.band, plan.first_slot, plan.coarse_slots};
    ran = rk::attention_forward_wgmma_bf16(i.q.ptr, i.k.ptr, i.v.ptr, i.rope, s, out.ptr, lse.ptr, nullptr, &sums);
    cudaDeviceSynchronize();  // out and lse are freed on return
  }, rk::Fixed128{0, 0});
  if (!ran) GTEST_SKIP() << "the wgmma kernel declined (not compute capability 9.0); simple and separate checked";
  expect_bit(fused, SumsSite::fused_epilogue, SumsQuantity::score, loud.T,
             "attention_forward_wgmma_bf16's fused distance sums");
}

// The decoder's row kernels of forward_ops (slice 2) against float64:
// norm_segments_bf16 (qk-norm: per head with a shared weight, a weight per
// head, full width; RMS and LayerNorm; segments wider than a block),
// norm_f32_bf16 (LayerNorm with bias of the residual stream),
// norm_add_f32 (post norm times a residual multiplier, and the multiplier
// alone), mlp_activation_bf16 (three activations, gated and plain) and
// softcap_f32. Inputs carry a mean offset of 3 so that a LayerNorm that
// forgot to centre, or a one-pass variance, fails. Tolerances: bf16 outputs
// one rounding, |err| <= (2^-8 + 1e-4) |ref| + 1e-6 (8 significant bits: a
// rounding moves a value by at most 2^-8 of it; fp32 statistics, rsqrtf and
// erff / tanhf add ~1e-6 relative, given 1e-4; the first device run, with
// 2^-8 |ref| + 1e-6, reached 0.994 of it: every kernel at the rounding
// bound); fp32 outputs |err| <= 1e-5 (1 + |ref|) (worst 0.03 of it).
struct NormCase {
  const char* name;
  int rows, cols, seg, weight_stride;  // weight_stride as kernels::NormParams
  bool center, bias;
};

double bf16_tolerance(double ref) { return (std::ldexp(1.0, -8) + 1e-4) * std::fabs(ref) + 1e-6; }

// Float64 norm of x [rows, cols] per seg-wide segment (the kernels' contract).
std::vector<double> reference_norm(const std::vector<float>& x, const NormCase& c, const std::vector<float>& w,
                                   const std::vector<float>& b, double eps) {
  std::vector<double> y(x.size());
  for (int r = 0; r < c.rows; ++r)
    for (int s0 = 0; s0 < c.cols; s0 += c.seg) {
      const std::size_t base = std::size_t(r) * c.cols + s0;
      const int segment = s0 / c.seg;
      double mean = 0, sq = 0;
      if (c.center) {
        for (int i = 0; i < c.seg; ++i) mean += x[base + i];
        mean /= c.seg;
      }
      for (int i = 0; i < c.seg; ++i) sq += (x[base + i] - mean) * (x[base + i] - mean);
      const double inv = 1.0 / std::sqrt(sq / c.seg + eps);
      for (int i = 0; i < c.seg; ++i) {
        const std::size_t wi = std::size_t(segment) * c.weight_stride + i;
        y[base + i] = (x[base + i] - mean) * inv * w[wi] + (c.bias ? b[wi] : 0.0);
      }
    }
  return y;
}

TEST(GpuRowOps, NormsMatchFloat64Reference) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const NormCase cases[] = {
      {"qk per head, shared weight, rms", 37, 96, 12, 0, false, false},
      {"qk per head weights, layernorm", 37, 64, 16, 16, true, false},
      {"qk full width, rms", 37, 48, 48, 0, false, false},
      {"qk per head d 300 (> 256 threads), layernorm", 5, 600, 300, 300, true, false},
      {"residual layernorm + bias, bf16 out", 37, 1000, 1000, 0, true, true},
      {"residual rms, post norm add", 37, 1000, 1000, 0, false, false},
      {"residual layernorm + bias, post norm add", 37, 1000, 1000, 0, true, true},
  };
  const double eps = 1e-5;
  std::mt19937 rng(99);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const NormCase& c : cases) {
    const std::size_t n = std::size_t(c.rows) * c.cols;
    const std::size_t nw = c.weight_stride ? std::size_t(c.cols) : std::size_t(c.seg);
    std::vector<float> x(n), w(nw), b(nw), residual(n);
    std::vector<rk::bf16> xh(n);
    for (std::size_t i = 0; i < n; ++i) {
      xh[i] = __float2bfloat16(3.f + 2.f * normal(rng));
      x[i] = __bfloat162float(xh[i]);  // the same values for the bf16 and fp32 kernels
      residual[i] = normal(rng);
    }
    for (std::size_t i = 0; i < nw; ++i) w[i] = 1.f + 0.5f * normal(rng), b[i] = 0.3f * normal(rng);
    const std::vector<double> ref = reference_norm(x, c, w, b, eps);
    DeviceBuffer<float> dw(nw), db(nw);
    dw.upload(w);
    db.upload(b);
    const rk::NormParams p{dw.ptr, c.bias ? db.ptr : nullptr, c.weight_stride, c.center, static_cast<float>(eps)};
    Worst worst;
    const bool add = std::string(c.name).find("post norm add") != std::string::npos;
    if (add) {
      const float scale = 0.5f;
      DeviceBuffer<float> dy(n), dx(n);
      dy.upload(x);
      dx.upload(residual);
      rk::norm_add_f32(dy.ptr, dx.ptr, c.rows, c.cols, &p, scale, nullptr);
      const auto got = dx.download();
      for (std::size_t i = 0; i < n; ++i) {
        const double r = residual[i] + scale * ref[i];
        worst.add(got[i], r, 1e-5 * (1 + std::fabs(r)), [&] { return "element " + std::to_string(i); });
      }
    } else {
      std::vector<rk::bf16> got_h;
      if (c.seg == c.cols && c.rows == 37 && c.cols == 1000) {
        DeviceBuffer<float> dx(n);
        DeviceBuffer<rk::bf16> dy(n);
        dx.upload(x);
        rk::norm_f32_bf16(dx.ptr, dy.ptr, c.rows, c.cols, p, nullptr);
        got_h = dy.download();
      } else {
        DeviceBuffer<rk::bf16> dx(n);
        dx.upload(xh);
        rk::norm_segments_bf16(dx.ptr, dx.ptr, c.rows, c.cols, c.seg, p, nullptr);  // in place, as the backend
        got_h = dx.download();
      }
      for (std::size_t i = 0; i < n; ++i)
        worst.add(__bfloat162float(got_h[i]), ref[i], bf16_tolerance(ref[i]), [&] {
          return "row " + std::to_string(i / c.cols) + " segment " + std::to_string(i % c.cols / c.seg) + " dim " +
                 std::to_string(i % c.seg);
        });
    }
    std::printf("  %-48s |err| / tol %.3g (got %.6g ref %.6g at %s)\n", c.name, worst.ratio, worst.got, worst.ref,
                worst.where.c_str());
    EXPECT_TRUE(worst.ok()) << c.name << ": " << worst.report("norm");
  }
  // The residual multiplier alone (no norm): x += 0.25 y.
  const std::size_t n = 1001;
  std::vector<float> y(n), x(n);
  for (std::size_t i = 0; i < n; ++i) y[i] = normal(rng), x[i] = normal(rng);
  DeviceBuffer<float> dy(n), dx(n);
  dy.upload(y);
  dx.upload(x);
  rk::norm_add_f32(dy.ptr, dx.ptr, 1, static_cast<int>(n), nullptr, 0.25f, nullptr);
  const auto got = dx.download();
  Worst worst;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = x[i] + 0.25 * y[i];
    worst.add(got[i], r, 1e-6 * (1 + std::fabs(r)), [&] { return "element " + std::to_string(i); });
  }
  EXPECT_TRUE(worst.ok()) << worst.report("scaled add");
}

// The residual norms' non-finite check (kernels::RowCheck), which the
// backend uses in place of flag_non_finite_rows_f32 where a norm reads the
// residual stream next: the same flag as that kernel (the first bad row plus
// base, an earlier smaller flag kept, an all-finite stream leaving it
// untouched), on both norm kernels, float4 rows (cols 1024) and scalar ones
// (cols 1022), and outputs bitwise those of the unchecked norm.
TEST(GpuRowOps, ResidualNormsFlagNonFiniteRowsAsTheFlagKernel) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const int rows = 37;
  const unsigned long long base = 5000;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const int cols : {1024, 1022}) {
    const std::size_t n = std::size_t(rows) * cols;
    std::vector<float> w(cols);
    for (float& v : w) v = 1.f + 0.5f * normal(rng);
    DeviceBuffer<float> dw(cols), dx(n);
    dw.upload(w);
    const rk::NormParams layer_norm{dw.ptr, nullptr, 0, true, 1e-5f};
    DeviceBuffer<rk::bf16> checked(n), unchecked(n);
    DeviceBuffer<unsigned long long> flag(1), kernel_flag(1);
    // {planted (row, col, value)}, the flag before: all finite; three bad rows; a smaller flag already set.
    struct Plant {
      int row, col;
      float value;
    };
    const std::vector<Plant> bad = {{20, 7, NAN}, {11, cols - 1, INFINITY}, {30, 0, -INFINITY}};
    const struct {
      const char* name;
      std::vector<Plant> plants;
      unsigned long long before;
    } cases[] = {{"all finite", {}, rk::kNoNonFinite}, {"rows 11, 20, 30 bad", bad, rk::kNoNonFinite},
                 {"a smaller flag set before", bad, 3}};
    for (const auto& c : cases) {
      std::vector<float> x(n);
      for (float& v : x) v = 3.f + 2.f * normal(rng);
      for (const Plant& plant : c.plants) x[std::size_t(plant.row) * cols + plant.col] = plant.value;
      dx.upload(x);
      unsigned long long expected = c.before;
      for (const Plant& plant : c.plants) expected = std::min<unsigned long long>(expected, base + plant.row);
      kernel_flag.upload({c.before});
      rk::flag_non_finite_rows_f32(dx.ptr, rows, cols, base, kernel_flag.ptr, nullptr);
      for (const bool rms : {true, false}) {
        const std::string what = std::string(rms ? "rmsnorm_f32_bf16" : "norm_f32_bf16 (layer norm)") + ", cols " +
                                 std::to_string(cols) + ", " + c.name;
        flag.upload({c.before});
        if (rms) {
          rk::rmsnorm_f32_bf16(dx.ptr, dw.ptr, checked.ptr, rows, cols, 1e-5f, nullptr, {flag.ptr, base});
          rk::rmsnorm_f32_bf16(dx.ptr, dw.ptr, unchecked.ptr, rows, cols, 1e-5f, nullptr);
        } else {
          rk::norm_f32_bf16(dx.ptr, checked.ptr, rows, cols, layer_norm, nullptr, {flag.ptr, base});
          rk::norm_f32_bf16(dx.ptr, unchecked.ptr, rows, cols, layer_norm, nullptr);
        }
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        EXPECT_EQ(flag.download()[0], expected) << what;
        EXPECT_EQ(kernel_flag.download()[0], expected) << "flag_non_finite_rows_f32, cols " << cols << ", " << c.name;
        const auto a = checked.download(), b = unchecked.download();
        EXPECT_EQ(std::memcmp(a.data(), b.data(), n * sizeof(rk::bf16)), 0) << what << ": outputs differ from the unchecked norm's";
      }
    }
  }
}

TEST(GpuRowOps, ActivationsAndSoftcapMatchFloat64Reference) {
  std::string why;
  if (rk::cuda_devices(&why).empty()) GTEST_SKIP() << "no CUDA device: " << why << " (GPU tests run only on a GPU machine)";
  const std::size_t n = 4099;  // not a multiple of the block
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-8.f, 8.f);
  std::vector<rk::bf16> ah(n), bh(n);
  std::vector<double> a(n), b(n);
  for (std::size_t i = 0; i < n; ++i) {
    ah[i] = __float2bfloat16(uniform(rng)), bh[i] = __float2bfloat16(uniform(rng) / 4);
    a[i] = __bfloat162float(ah[i]), b[i] = __bfloat162float(bh[i]);
  }
  DeviceBuffer<rk::bf16> da(n), db(n), dout(n);
  da.upload(ah);
  db.upload(bh);
  struct Act {
    const char* name;
    rk::MlpActivation act;
    double (*f)(double);
  };
  const Act acts[] = {
      {"silu", rk::MlpActivation::silu, [](double x) { return x / (1 + std::exp(-x)); }},
      {"gelu_erf", rk::MlpActivation::gelu_erf, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
      {"gelu_tanh", rk::MlpActivation::gelu_tanh,
       [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }},
  };
  for (const Act& act : acts)
    for (const bool gated : {true, false}) {
      rk::mlp_activation_bf16(da.ptr, gated ? db.ptr : nullptr, dout.ptr, n, act.act, nullptr);
      const auto got = dout.download();
      Worst worst;
      for (std::size_t i = 0; i < n; ++i) {
        const double r = act.f(a[i]) * (gated ? b[i] : 1.0);
        worst.add(__bfloat162float(got[i]), r, bf16_tolerance(r), [&] { return "x = " + std::to_string(a[i]); });
      }
      std::printf("  %-10s %-6s |err| / tol %.3g at %s\n", act.name, gated ? "gated" : "plain", worst.ratio,
                  worst.where.c_str());
      EXPECT_TRUE(worst.ok()) << act.name << (gated ? " gated: " : " plain: ") << worst.report("activation");
    }
  std::vector<float> logits(n);
  std::uniform_real_distribution<float> wide(-200.f, 200.f);
  for (float& v : logits) v = wide(rng);
  DeviceBuffer<float> dl(n);
  dl.upload(logits);
  const double cap = 30;
  rk::softcap_f32(dl.ptr, n, static_cast<float>(cap), nullptr);
  const auto got = dl.download();
  Worst worst;
  for (std::size_t i = 0; i < n; ++i) {
    const double r = cap * std::tanh(logits[i] / cap);
    worst.add(got[i], r, 1e-5 * (1 + std::fabs(r)), [&] { return "x = " + std::to_string(logits[i]); });
  }
  std::printf("  softcap 30 |err| / tol %.3g at %s\n", worst.ratio, worst.where.c_str());
  EXPECT_TRUE(worst.ok()) << worst.report("softcap");
}

}  // namespace
