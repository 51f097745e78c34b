// Progress of a long run on stderr, "\r"-rewritten (windows done, tokens/s,
// ETA), only when stderr is a terminal and --quiet is not given.
#pragma once

#include <chrono>
#include <string>

#include "analysis/progress.hpp"

namespace ropescope::cli {

class TerminalProgress {
 public:
  TerminalProgress(std::string label, bool quiet);
  ~TerminalProgress();  // ends the line when anything was shown
  // The callback for an analysis; valid while this object lives.
  analysis::ProgressCallback callback();

 private:
  std::string label_;
  bool visible_, shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace ropescope::cli
