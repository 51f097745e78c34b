// Plain float64 CPU references for the op kernels, shared by attention_lab and
// the GPU tests. Same formulas and head layout as the CPU backend
// (model::rotate_head, model/head_layout.hpp): inputs are the bf16 values the
// GPU sees, decoded to double; the cos/sin table is model::make_rope_table's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

namespace ropescope::kernels::reference {

// Rotates one head (d values) at position t with table row (c, s) of `pairs`
// entries: real (a c - b s, b c + a s) or imaginary (a s + b c, b s - a c)
// for pair (a, b) = (x[n], x[n + pairs]); dims >= 2 * pairs pass through.
inline void rotate(double* x, const float* c, const float* s, int pairs, bool imaginary) {
  for (int n = 0; n < pairs; ++n) {
    const double a = x[n], b = x[n + pairs], cn = c[n], sn = s[n];
    if (imaginary) {
      x[n] = a * sn + b * cn;
      x[n + pairs] = b * sn - a * cn;
    } else {
      x[n] = a * cn - b * sn;
      x[n + pairs] = b * cn + a * sn;
    }
  }
}

struct Attention {
  int T = 0, d = 0, query_heads = 0, kv_heads = 0, attention_heads = 0, pairs = 0;
  bool twins = false;
  const float* q = nullptr;  // [T, Q*d] projected, unrotated
  const float* k = nullptr;  // [T, KV*d] unrotated
  const float* v = nullptr;  // [T, KV*d]
  const float* cos = nullptr;  // [T, pairs]
  const float* sin = nullptr;
  // The CPU backend's score (cpu_backend.cpp finish_scores): scale q.k (0:
  // d^-0.5), then softcap tanh(score / softcap) when softcap > 0; key s
  // visible from t iff s <= t and, with window > 0, t - s < window.
  double scale = 0, softcap = 0;
  long window = 0;

  int first_key(int t) const { return window > 0 ? static_cast<int>(std::max<long>(0, t - window + 1)) : 0; }

  // The rotated query (d values) of attention head a at position t.
  std::vector<double> query(int a, int t) const {
    const int qh = twins ? a / 2 : a;
    const bool imaginary = twins && (a % 2 == 1);
    std::vector<double> out(d);
    for (int i = 0; i < d; ++i) out[i] = q[static_cast<std::size_t>(t) * query_heads * d + qh * d + i];
    rotate(out.data(), cos + static_cast<std::size_t>(t) * pairs, sin + static_cast<std::size_t>(t) * pairs, pairs,
           imaginary);
    return out;
  }

  // The score of the query against key s of rotated_keys (visibility not checked).
  double score(const std::vector<double>& query, const std::vector<double>& keys, int s) const {
    double dot = 0;
    for (int i = 0; i < d; ++i) dot += query[i] * keys[static_cast<std::size_t>(s) * d + i];
    const double x = dot * (scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(d)));
    return softcap > 0 ? softcap * std::tanh(x / softcap) : x;
  }

  // Keys of KV head h rotated as real keys, [T, d].
  std::vector<double> rotated_keys(int h) const {
    std::vector<double> out(static_cast<std::size_t>(T) * d);
    for (int t = 0; t < T; ++t) {
      double* x = out.data() + static_cast<std::size_t>(t) * d;
      for (int i = 0; i < d; ++i) x[i] = k[static_cast<std::size_t>(t) * kv_heads * d + h * d + i];
      rotate(x, cos + static_cast<std::size_t>(t) * pairs, sin + static_cast<std::size_t>(t) * pairs, pairs, false);
    }
    return out;
  }

  // Output row (d values) and natural-log lse of attention head a at position
  // t, given rotated_keys(a / G): softmax of the scores over the visible keys
  // first_key(t) .. t.
  double row(int a, int t, const std::vector<double>& keys, double* out) const {
    const int G = attention_heads / kv_heads, h = a / G;
    const std::vector<double> qr = query(a, t);
    const int first = first_key(t);
    std::vector<double> score(static_cast<std::size_t>(t) + 1);
    double mx = -std::numeric_limits<double>::infinity();
    for (int s = first; s <= t; ++s) {
      score[s] = this->score(qr, keys, s);
      mx = std::max(mx, score[s]);
    }
    double sum = 0;
    for (int i = 0; i < d; ++i) out[i] = 0;
    for (int s = first; s <= t; ++s) {
      const double w = std::exp(score[s] - mx);
      sum += w;
      for (int i = 0; i < d; ++i) out[i] += w * v[static_cast<std::size_t>(s) * kv_heads * d + h * d + i];
    }
    for (int i = 0; i < d; ++i) out[i] /= sum;
    return mx + std::log(sum);
  }
};

}  // namespace ropescope::kernels::reference
