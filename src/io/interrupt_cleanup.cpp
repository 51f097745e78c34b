// Cleanup of staged outputs and child processes on SIGINT / SIGTERM / SIGHUP
// (see interrupt_cleanup.hpp).
#include "io/interrupt_cleanup.hpp"

#include <fmt/format.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"

namespace ropescope::io {
namespace {

// Slot states: free -> claimed (being filled by its owner) -> active (seen by
// the handler) -> free. Only the owner moves a slot out of claimed/active.
enum SlotState : int { kFree = 0, kClaimed = 1, kActive = 2 };

struct FileSlot {
  std::atomic<int> state{kFree};
  char path[PATH_MAX];
};
struct ChildSlot {
  std::atomic<int> state{kFree};
  pid_t pid = -1;
};

constexpr int kFileSlots = 256;  // staged files alive at once (a run stages a few dozen at most)
constexpr int kChildSlots = 16;
FileSlot file_slots[kFileSlots];
ChildSlot child_slots[kChildSlots];
// While outputs are renamed to their targets a signal is only noted; the
// committing thread finishes the renames and then acts on it.
std::atomic<int> deferring{0};
std::atomic<int> deferred_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

template <class Slot, int N>
int claim(Slot (&slots)[N], const char* what) {
  for (int i = 0; i < N; ++i) {
    int expected = kFree;
    if (slots[i].state.compare_exchange_strong(expected, kClaimed)) return i;
  }
  throw Error(fmt::format("more than {} {} at once", N, what));
}

void write_stderr(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

[[noreturn]] void clean_up_and_exit(int signo) {
  for (auto& slot : file_slots)
    if (slot.state.load() == kActive) ::unlink(slot.path);
  for (auto& slot : child_slots)
    if (slot.state.load() == kActive) ::kill(slot.pid, SIGTERM);
  write_stderr(signo == SIGINT    ? "\nropescope: interrupted (SIGINT); staged outputs removed\n"
               : signo == SIGTERM ? "\nropescope: terminated (SIGTERM); staged outputs removed\n"
                                  : "\nropescope: hung up (SIGHUP); staged outputs removed\n");
  ::_exit(128 + signo);
}

extern "C" void on_interrupt(int signo) {
  if (deferring.load() > 0) {
    deferred_signal.store(signo);
    return;
  }
  clean_up_and_exit(signo);
}

}  // namespace

InterruptDeferral::InterruptDeferral() { deferring.fetch_add(1); }

InterruptDeferral::~InterruptDeferral() {
  if (deferring.fetch_sub(1) == 1) {
    const int signo = deferred_signal.exchange(0);
    if (signo != 0) clean_up_and_exit(signo);
  }
}

void install_interrupt_cleanup() {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG and the run
  // reports it, instead of the process dying with a half-written staging file.
  signal(SIGXFSZ, SIG_IGN);
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  // While one handler runs, the others wait: cleanup happens once.
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&action.sa_mask, s);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction previous {};
    sigaction(s, nullptr, &previous);
    // A shell running us in the background with SIGINT ignored keeps it ignored.
    if (previous.sa_handler == SIG_IGN && s != SIGTERM) continue;
    sigaction(s, &action, nullptr);
  }
}

void stall_for_test(const char* point, const std::string& detail) {
  const char* value = std::getenv("ROPESCOPE_TEST_STALL");
  if (!value || std::strcmp(value, point) != 0) return;
  fmt::print(stderr, "ropescope: test stall at {}{}\n", point, detail.empty() ? "" : " (" + detail + ")");
  std::fflush(stderr);
  ::sleep(60);
}

InterruptCleanupFile::InterruptCleanupFile(const std::filesystem::path& path) {
  const std::string& text = path.native();
  if (text.size() >= PATH_MAX) throw ArgumentError(fmt::format("output path '{}' is too long", text));
  slot_ = claim(file_slots, "staged output files");
  std::memcpy(file_slots[slot_].path, text.c_str(), text.size() + 1);
  file_slots[slot_].state.store(kActive);
}

InterruptCleanupFile& InterruptCleanupFile::operator=(InterruptCleanupFile&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

void InterruptCleanupFile::release() {
  if (slot_ >= 0) file_slots[slot_].state.store(kFree);
  slot_ = -1;
}

InterruptCleanupChild::InterruptCleanupChild(pid_t pid) {
  slot_ = claim(child_slots, "child processes");
  child_slots[slot_].pid = pid;
  child_slots[slot_].state.store(kActive);
}

InterruptCleanupChild::~InterruptCleanupChild() { child_slots[slot_].state.store(kFree); }

}  // namespace ropescope::io
