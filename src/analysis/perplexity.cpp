// Sliding-window perplexity and per-position loss curves (see perplexity.hpp).
// Every aggregate is checked finite before it is returned: a NaN or infinite
// loss (or a perplexity that overflows) is an Error naming the quantity, never a number.
#include "analysis/perplexity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "core/error.hpp"

namespace ropescope::analysis {
namespace {

// Windows go to the backend in batches of at most this many tokens (at least one window).
constexpr long kBatchTokens = 16384;

// Throws Error unless `value` is finite; `what` names the quantity and where it comes from.
double require_finite(double value, const std::string& what) {
  if (!std::isfinite(value))
    throw Error(fmt::format("{} is {}, not a number a result can report (the model's next-token losses are out of "
                            "range: non-finite or beyond exp's range)",
                            what, value));
  return value;
}

// Runs `count` windows of `length` tokens starting at begin(i), in batches, and
// hands each window's nll vector to consume(i, nll).
template <class Begin, class Consume>
void run_windows(backend::Backend& backend, std::span<const std::int32_t> tokens, long count, long length,
                 Begin begin, Consume consume, const backend::ForwardOptions& options, ProgressCounter* progress) {
  // At least one window per device of a data-parallel backend; the windows' losses are
  // still consumed in window order, so the sums do not depend on the device count.
  const long per_batch = std::max<long>(backend.concurrent_sequences(), kBatchTokens / length);
  for (long first = 0; first < count; first += per_batch) {
    const long last = std::min(count, first + per_batch);
    std::vector<std::vector<std::int32_t>> batch;
    for (long i = first; i < last; ++i) {
      auto window = tokens.subspan(static_cast<std::size_t>(begin(i)), static_cast<std::size_t>(length));
      batch.emplace_back(window.begin(), window.end());
    }
    auto results = backend.forward(batch, options);
    for (long i = first; i < last; ++i) {
      consume(i, results[i - first].nll);
      if (progress) progress->advance(length);
    }
  }
}

}  // namespace

std::vector<Window> sliding_windows(long N, long L, long stride) {
  if (L < 2) throw ArgumentError(fmt::format("window length L must be >= 2, got {}", L));
  if (L > N) throw ArgumentError(fmt::format("window length L = {} is longer than the {} tokens", L, N));
  if (stride < 1 || stride > L) throw ArgumentError(fmt::format("stride must be in [1, L = {}], got {}", L, stride));
  std::vector<Window> windows;
  long end = 0;  // one past the last target scored so far
  for (long begin = 0; begin + L <= N; begin += stride) {
    // A window's own first token has no prediction: with S = L (no overlap) it goes unscored.
    windows.push_back({begin, std::max(end, begin + 1)});
    end = begin + L;
  }
  if (end < N) windows.push_back({N - L, end});  // the tail: a full-length window ending at N
  return windows;
}

SlidingWindowResult sliding_window_perplexity(backend::Backend& backend, std::span<const std::int32_t> tokens, long L,
                                              long stride, const backend::ForwardOptions& options, bool byte_level,
                                              ProgressCounter* progress, std::span<const std::uint32_t> token_bytes) {
  if (!token_bytes.empty() && token_bytes.size() != tokens.size())
    throw ArgumentError(fmt::format("token_bytes has {} entries for {} tokens", token_bytes.size(), tokens.size()));
  const auto windows = sliding_windows(static_cast<long>(tokens.size()), L, stride);
  double sum = 0;
  long scored = 0, bytes = 0;
  run_windows(
      backend, tokens, static_cast<long>(windows.size()), L, [&](long i) { return windows[i].begin; },
      [&](long i, const std::vector<double>& nll) {
        // nll[j] is the loss of target begin + j + 1, so target t sits at j = t - begin - 1.
        for (long j = windows[i].first_target - windows[i].begin - 1; j < L - 1; ++j) sum += nll[j];
        scored += windows[i].begin + L - windows[i].first_target;
        if (!token_bytes.empty())
          for (long t = windows[i].first_target; t < windows[i].begin + L; ++t) bytes += token_bytes[t];
      },
      options, progress);
  SlidingWindowResult r;
  r.L = L;
  r.stride = stride;
  r.windows = static_cast<long>(windows.size());
  r.tokens_scored = scored;
  const std::string at = fmt::format("sliding-window perplexity at L = {}, stride {}", L, stride);
  r.mean_nll = require_finite(sum / static_cast<double>(scored), at + ": the mean next-token loss");
  r.ppl = require_finite(std::exp(r.mean_nll), fmt::format("{}: the perplexity exp({})", at, r.mean_nll));
  if (byte_level) r.bits_per_byte = r.mean_nll / std::numbers::ln2;
  if (!token_bytes.empty()) {
    r.bytes_scored = bytes;
    if (bytes > 0) r.bits_per_byte = sum / std::numbers::ln2 / static_cast<double>(bytes);
  }
  return r;
}

long curve_window_count(long N, long T, long max_windows) {
  if (T < 2) throw ArgumentError(fmt::format("curve length T must be >= 2, got {}", T));
  if (T > N) throw ArgumentError(fmt::format("curve length T = {} is longer than the {} tokens", T, N));
  if (max_windows < 0) throw ArgumentError(fmt::format("max windows must be >= 0, got {}", max_windows));
  return max_windows == 0 ? N / T : std::min(max_windows, N / T);
}

PositionCurve position_loss_curve(backend::Backend& backend, std::span<const std::int32_t> tokens, long T,
                                  long max_windows, const backend::ForwardOptions& options, ProgressCounter* progress) {
  PositionCurve c;
  c.T = T;
  c.windows = curve_window_count(static_cast<long>(tokens.size()), T, max_windows);
  std::vector<double> sum(T - 1, 0.0);
  run_windows(
      backend, tokens, c.windows, T, [&](long i) { return i * T; },
      [&](long, const std::vector<double>& nll) {
        for (long j = 0; j < T - 1; ++j) sum[j] += nll[j];
      },
      options, progress);
  c.mean_nll.resize(T - 1);
  for (long j = 0; j < T - 1; ++j)
    c.mean_nll[j] = require_finite(sum[j] / static_cast<double>(c.windows),
                                   fmt::format("loss curve at T = {}: the mean loss at position {}", T, j + 1));
  // Bin [b, 2b) of target positions covers curve entries b-1 .. min(2b, T)-2.
  for (long b = 1; b < T; b *= 2) {
    PositionBin bin{b, std::min(2 * b, T), 0.0, 0};
    double total = 0;
    for (long p = bin.begin; p < bin.end; ++p) total += sum[p - 1];
    bin.count = (bin.end - bin.begin) * c.windows;
    bin.mean_nll = total / static_cast<double>(bin.count);
    c.bins.push_back(bin);
  }
  return c;
}

double PositionCurve::ppl_at_context(long L) const {
  if (L < 2 || L > T) throw ArgumentError(fmt::format("context {} is outside the curve's [2, {}]", L, T));
  double total = 0;
  for (long p = 1; p < L; ++p) total += mean_nll[p - 1];
  const double mean = total / static_cast<double>(L - 1);
  return require_finite(std::exp(mean), fmt::format("loss curve at T = {}: the perplexity at context {}, exp({})", T, L,
                                                    mean));
}

}  // namespace ropescope::analysis
