// Perplexity across context lengths (ROPEPP.md section 5): strided
// sliding-window perplexity at a window length L, and the per-position loss
// curve of a causal model (mean NLL at each position of windows of length T).
// Written against backend/backend.hpp only; conditions (noise, ablation, RoPE
// overrides) are ForwardOptions variations chosen by the caller. Results are
// finite: a NaN or infinite mean loss or perplexity throws Error naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "analysis/progress.hpp"
#include "backend/backend.hpp"

namespace ropescope::analysis {

// One window of the sliding-window evaluation: tokens [begin, begin + L) are
// the input; the targets (token indices) first_target .. begin + L - 1 are scored.
struct Window {
  long begin = 0;
  long first_target = 0;
};

// The windows of length L and stride S over N tokens (2 <= L <= N, 1 <= S <= L).
// Every window has exactly L tokens. Window k starts at k*S for as long as it
// fits (k*S + L <= N); when (N - L) is not a multiple of S, one more window
// [N - L, N) covers the tail. The first window scores all of its targets
// 1 .. L-1; every later window scores only the targets past the previous
// window's end (the last S of them, or fewer for the tail window). So for
// S < L every token except the first is scored exactly once (N - 1 in total),
// and each token scored by a later window sees at least L - S tokens of
// context. With S = L (no overlap) a window's own first token has no
// prediction and is not scored: N - windows tokens in total.
// Throws ArgumentError for L, S or N outside the ranges above.
std::vector<Window> sliding_windows(long N, long L, long stride);

struct SlidingWindowResult {
  long L = 0, stride = 0;
  long windows = 0;
  long tokens_scored = 0;
  double mean_nll = 0;  // sum of -ln p over scored tokens / tokens_scored (nats)
  double ppl = 0;       // exp(mean_nll)
  // sum of -ln p over scored tokens / ln 2 / the text bytes those tokens stand for:
  // byte-level input (one token is one byte) or tokenized text (token_bytes given)
  std::optional<double> bits_per_byte;
  std::optional<long> bytes_scored;  // the bytes behind the scored tokens, when token_bytes is given
};

// Strided sliding-window perplexity (see sliding_windows for the exact scoring).
// `byte_level`: the tokens are the bytes of the text, so bits per token are bits per byte.
// `progress` (optional) advances once per window. `token_bytes` (optional, one
// per token): the text bytes each token stands for (tokenizer::Encoding::bytes);
// bits per byte then divide by the bytes of exactly the scored tokens.
SlidingWindowResult sliding_window_perplexity(backend::Backend& backend, std::span<const std::int32_t> tokens, long L,
                                              long stride, const backend::ForwardOptions& options, bool byte_level,
                                              ProgressCounter* progress = nullptr,
                                              std::span<const std::uint32_t> token_bytes = {});

// A log bin of target positions [begin, end): [1,2), [2,4), [4,8), ... cut at T.
struct PositionBin {
  long begin = 0, end = 0;
  double mean_nll = 0;  // mean over every (window, position) in the bin
  long count = 0;       // windows x positions in the bin
};

struct PositionCurve {
  long T = 0;
  long windows = 0;
  // mean_nll[p - 1]: mean over windows of -ln p(token p | tokens 0 .. p-1) at
  // target position p = 1 .. T-1 of the window (position 0 has no prediction).
  std::vector<double> mean_nll;
  std::vector<PositionBin> bins;
  // exp(mean of mean_nll over target positions 1 .. L-1): the perplexity of
  // windows of length L that start where these windows start, each scoring all
  // its targets (2 <= L <= T).
  double ppl_at_context(long L) const;
};

// Non-overlapping windows [k*T, (k+1)*T), k < min(max_windows, N / T)
// (max_windows 0: all that fit), one forward pass each; since the model is
// causal, the loss at position p depends only on tokens 0 .. p of its window.
// Throws ArgumentError unless 2 <= T <= N and max_windows >= 0.
PositionCurve position_loss_curve(backend::Backend& backend, std::span<const std::int32_t> tokens, long T,
                                  long max_windows, const backend::ForwardOptions& options,
                                  ProgressCounter* progress = nullptr);

// How many windows position_loss_curve uses (for progress totals).
long curve_window_count(long N, long T, long max_windows);

}  // namespace ropescope::analysis
