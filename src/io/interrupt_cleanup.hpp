// What an interrupted run must undo. Staged output files, directories a run
// created and child processes (gnuplot) register here while they exist. On
// SIGINT, SIGTERM or SIGHUP one thread, the only one that receives those
// signals, terminates every registered child, removes every registered file
// and directory and exits with 128 + the signal number (130 for SIGINT, 143
// for SIGTERM), so an interrupted run leaves what was there before it started.
// A commit holds an InterruptDeferral while it renames its outputs: the
// cleanup waits for it, so outputs are never half renamed.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace ropescope::io {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and starts the
// thread that waits for them. main() calls it first, before any other thread
// exists, so that every later thread (OpenMP, CUDA) inherits the mask and the
// signals reach that thread alone. A signal the process was started with
// ignored (nohup, a background job's SIGINT) stays ignored. Also ignores
// SIGPIPE and SIGXFSZ, so that a closed pipe or a write past `ulimit -f` is a
// failed write (EPIPE, EFBIG) that the run reports, never a silent death.
// (A child process must be started with an empty signal mask and default
// actions: plot/gnuplot.cpp does so.)
void install_interrupt_cleanup();

// While one lives, an interrupt's cleanup waits: the outputs of a commit are
// renamed all together, and the cleanup then finds nothing left to remove.
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

// A path removed if the process is interrupted while the registration lives:
// a file (unlink), or a directory the run created (removed when empty).
class InterruptCleanupPath {
 public:
  enum class Kind { file, directory };
  InterruptCleanupPath() = default;
  explicit InterruptCleanupPath(const std::filesystem::path& path, Kind kind = Kind::file);
  ~InterruptCleanupPath() { release(); }
  InterruptCleanupPath(InterruptCleanupPath&& other) noexcept : id_(other.id_) { other.id_ = 0; }
  InterruptCleanupPath& operator=(InterruptCleanupPath&& other) noexcept;
  InterruptCleanupPath(const InterruptCleanupPath&) = delete;
  InterruptCleanupPath& operator=(const InterruptCleanupPath&) = delete;
  // Forgets the path (it was renamed to its target, or removed).
  void release();

 private:
  unsigned long id_ = 0;
};

// A child process sent SIGTERM if this process is interrupted while the
// registration lives. Release it before reaping the child (so that no pid of
// an unrelated process is ever signalled).
class InterruptCleanupChild {
 public:
  explicit InterruptCleanupChild(pid_t pid);
  ~InterruptCleanupChild() { release(); }
  InterruptCleanupChild(const InterruptCleanupChild&) = delete;
  InterruptCleanupChild& operator=(const InterruptCleanupChild&) = delete;
  void release();

 private:
  unsigned long id_ = 0;
};

}  // namespace ropescope::io
