// What an interrupted run must undo. Staged output files and child processes
// (gnuplot) register here while they exist; on SIGINT, SIGTERM or SIGHUP the
// handler removes every registered file, terminates every registered child and
// exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), so an
// interrupted run leaves exactly what was there before it started. The
// handler only calls async-signal-safe functions (unlink, kill, write, _exit)
// on a fixed table of slots; registering from any thread is safe.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace ropescope::io {

// Installs the handlers (once per process; main() calls it before any work),
// and ignores SIGXFSZ so that a write past `ulimit -f` is an error (EFBIG).
void install_interrupt_cleanup();

// While one lives, SIGINT / SIGTERM / SIGHUP are held back: the outputs of a
// commit are renamed all together, and the last deferral to end acts on a
// signal that came meanwhile (cleanup of what is still registered, then exit).
class InterruptDeferral {
 public:
  InterruptDeferral();
  ~InterruptDeferral();
  InterruptDeferral(const InterruptDeferral&) = delete;
  InterruptDeferral& operator=(const InterruptDeferral&) = delete;
};

// Test hook for the interruption tests: when the environment variable
// ROPESCOPE_TEST_STALL equals `point` ("commit": every output staged, none
// renamed; "plot": gnuplot running), says so on stderr with `detail` and
// sleeps 60 s so that a test can send a signal at that point. No effect otherwise.
void stall_for_test(const char* point, const std::string& detail = {});

// A file removed if the process is interrupted while the registration lives.
class InterruptCleanupFile {
 public:
  InterruptCleanupFile() = default;
  explicit InterruptCleanupFile(const std::filesystem::path& path);
  ~InterruptCleanupFile() { release(); }
  InterruptCleanupFile(InterruptCleanupFile&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  InterruptCleanupFile& operator=(InterruptCleanupFile&& other) noexcept;
  InterruptCleanupFile(const InterruptCleanupFile&) = delete;
  InterruptCleanupFile& operator=(const InterruptCleanupFile&) = delete;
  // Forgets the file (it was renamed to its target or removed).
  void release();

 private:
  int slot_ = -1;
};

// A child process sent SIGTERM if this process is interrupted while the registration lives.
class InterruptCleanupChild {
 public:
  explicit InterruptCleanupChild(pid_t pid);
  ~InterruptCleanupChild();
  InterruptCleanupChild(const InterruptCleanupChild&) = delete;
  InterruptCleanupChild& operator=(const InterruptCleanupChild&) = delete;

 private:
  int slot_ = -1;
};

}  // namespace ropescope::io
