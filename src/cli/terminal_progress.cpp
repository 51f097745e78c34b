// Terminal progress display (see terminal_progress.hpp).
#include "cli/terminal_progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace ropescope::cli {

TerminalProgress::TerminalProgress(std::string label, bool quiet)
    : label_(std::move(label)), visible_(!quiet && isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

TerminalProgress::~TerminalProgress() {
  if (shown_) fmt::print(stderr, "\n");
}

analysis::ProgressCallback TerminalProgress::callback() {
  if (!visible_) return {};
  return [this](const analysis::Progress& p) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = seconds > 0 ? p.tokens_done / seconds : 0;
    const double eta = p.windows_done > 0 ? seconds * (p.windows_total - p.windows_done) / p.windows_done : 0;
    fmt::print(stderr, "\r{}: window {}/{}, {:.0f} tokens/s, ETA {:.0f} s   ", label_, p.windows_done, p.windows_total,
               rate, eta);
    shown_ = true;
  };
}

}  // namespace ropescope::cli
