// Cleanup of staged outputs, created directories and child processes on
// SIGINT / SIGTERM / SIGHUP, by one thread that waits for those signals
// (see interrupt_cleanup.hpp). It runs as ordinary code, so the registry is a
// plain map under a mutex that commits hold while they rename.
#include "io/interrupt_cleanup.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

namespace ropescope::io {
namespace {

struct Registry {
  // Recursive: a commit holds it (InterruptDeferral) while its outputs release their paths.
  std::recursive_mutex mutex;
  unsigned long next_id = 1;
  std::map<unsigned long, std::pair<std::filesystem::path, InterruptCleanupPath::Kind>> paths;
  std::map<unsigned long, pid_t> children;
  sigset_t waited;  // the signals the cleanup thread takes
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the cleanup thread may outlive static destructors
  return *r;
}

[[noreturn]] void clean_up_and_exit(int signo) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);  // waits for a commit in progress
  // Children first, so that none writes a file after it was removed.
  for (const auto& [id, pid] : r.children) ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (const auto& [id, pid] : r.children)
    while (::waitpid(pid, nullptr, WNOHANG) == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // Files before directories: a directory the run created is removed once empty.
  for (const auto& [id, entry] : r.paths)
    if (entry.second == InterruptCleanupPath::Kind::file) ::unlink(entry.first.c_str());
  for (auto it = r.paths.rbegin(); it != r.paths.rend(); ++it)
    if (it->second.second == InterruptCleanupPath::Kind::directory) ::rmdir(it->second.first.c_str());
  const char* what = signo == SIGINT ? "interrupted (SIGINT)" : signo == SIGTERM ? "terminated (SIGTERM)" : "hung up (SIGHUP)";
  std::fprintf(stderr, "\nropescope: %s; staged outputs removed\n", what);
  std::fflush(stderr);
  std::_Exit(128 + signo);
}

void wait_for_signals() {
  int signo = 0;
  while (sigwait(&registry().waited, &signo) != 0) {
  }
  clean_up_and_exit(signo);
}

}  // namespace

void install_interrupt_cleanup() {
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  Registry& r = registry();
  sigemptyset(&r.waited);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction current {};
    sigaction(s, nullptr, &current);
    if (current.sa_handler != SIG_IGN || s == SIGTERM) sigaddset(&r.waited, s);
  }
  pthread_sigmask(SIG_BLOCK, &r.waited, nullptr);
  std::thread(wait_for_signals).detach();
}

InterruptDeferral::InterruptDeferral() { registry().mutex.lock(); }

InterruptDeferral::~InterruptDeferral() { registry().mutex.unlock(); }

void stall_for_test(const char* point, const std::string& detail) {
  const char* value = std::getenv("ROPESCOPE_TEST_STALL");
  if (!value || std::strcmp(value, point) != 0) return;
  fmt::print(stderr, "ropescope: test stall at {}{}\n", point, detail.empty() ? "" : " (" + detail + ")");
  std::fflush(stderr);
  ::sleep(60);
}

InterruptCleanupPath::InterruptCleanupPath(const std::filesystem::path& path, Kind kind) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  id_ = r.next_id++;
  r.paths.emplace(id_, std::make_pair(path, kind));
}

InterruptCleanupPath& InterruptCleanupPath::operator=(InterruptCleanupPath&& other) noexcept {
  if (this != &other) {
    release();
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

void InterruptCleanupPath::release() {
  if (id_ == 0) return;
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.paths.erase(id_);
  id_ = 0;
}

InterruptCleanupChild::InterruptCleanupChild(pid_t pid) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  id_ = r.next_id++;
  r.children.emplace(id_, pid);
}

void InterruptCleanupChild::release() {
  if (id_ == 0) return;
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.children.erase(id_);
  id_ = 0;
}

}  // namespace ropescope::io
