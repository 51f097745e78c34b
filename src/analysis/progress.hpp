// Progress of a long analysis, reported through a callback so that each front
// end shows it its own way (the CLI on a terminal, Python through tqdm): the
// analyses count forward windows and never print.
#pragma once

#include <functional>
#include <utility>

namespace ropescope::analysis {

struct Progress {
  long windows_done = 0;
  long windows_total = 0;
  long tokens_done = 0;  // tokens through the model so far
};

// Called after every forward window; may throw to stop the run (the
// exception then leaves the analysis, which returns no result).
using ProgressCallback = std::function<void(const Progress&)>;

// Counts windows against a total known up front and calls the callback (none: counts only).
class ProgressCounter {
 public:
  ProgressCounter(long windows_total, ProgressCallback callback)
      : callback_(std::move(callback)) {
    state_.windows_total = windows_total;
  }
  void advance(long tokens_in_window) {
    ++state_.windows_done;
    state_.tokens_done += tokens_in_window;
    if (callback_) callback_(state_);
  }
  const Progress& state() const { return state_; }

 private:
  ProgressCallback callback_;
  Progress state_;
};

}  // namespace ropescope::analysis
