// Atomic output files and output transactions (see atomic_file.hpp).
#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <regex>
#include <set>

#include "core/error.hpp"

namespace ropescope::io {

std::filesystem::path temporary_path_for(const std::filesystem::path& target) {
  static std::atomic<unsigned> counter{0};
  auto name = target.filename().string();
  if (name.empty()) throw ArgumentError(fmt::format("output path '{}' names no file", target.string()));
  return target.parent_path() / fmt::format(".{}.ropescope-tmp-{}-{}", name, ::getpid(), counter++);
}

AtomicOutput::AtomicOutput(std::filesystem::path target)
    : target_(std::move(target)), temporary_(temporary_path_for(target_)) {
  // Registered before it exists, so no moment has an unregistered staging file.
  cleanup_ = InterruptCleanupPath(temporary_);
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int error = errno;
    cleanup_.release();
    const auto dir = target_.parent_path().empty() ? std::filesystem::path(".") : target_.parent_path();
    throw Error(fmt::format("cannot write output '{}': {} (staging file in directory '{}')", target_.string(),
                            std::strerror(error), dir.string()));
  }
  // The lock tells a later run that this staging file's process is alive (a
  // filesystem without locks leaves the pid check of the sweep alone).
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0 && errno != ENOLCK && errno != EOPNOTSUPP) {
    const int error = errno;
    ::close(fd_);
    ::unlink(temporary_.c_str());
    cleanup_.release();
    throw Error(fmt::format("cannot lock the staging file of output '{}': {}", target_.string(), std::strerror(error)));
  }
}

AtomicOutput::~AtomicOutput() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_) ::unlink(temporary_.c_str());
}

void AtomicOutput::write(const void* data, std::size_t bytes) {
  if (finished_) throw Error(fmt::format("output '{}' was already finished", target_.string()));
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(fmt::format("writing output '{}' failed: {}", target_.string(), std::strerror(errno)));
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void AtomicOutput::finish() {
  if (finished_) return;
  if (::fsync(fd_) != 0)
    throw Error(fmt::format("writing output '{}' failed: {}", target_.string(), std::strerror(errno)));
  finished_ = true;
}

void AtomicOutput::publish() {
  if (!finished_) throw Error(fmt::format("output '{}' is published before it was finished", target_.string()));
  if (published_) return;
  if (::rename(temporary_.c_str(), target_.c_str()) != 0)
    throw Error(fmt::format("cannot replace output '{}': {}", target_.string(), std::strerror(errno)));
  published_ = true;
  cleanup_.release();
  ::close(fd_);
  fd_ = -1;
}

void write_file_atomic(const std::filesystem::path& target, std::string_view contents) {
  OutputTransaction transaction({target});
  transaction.write(target, contents);
  transaction.commit();
}

namespace {

// The path as the transaction compares it: absolute, with "." / ".." and
// symbolic links of existing parents resolved.
std::filesystem::path comparable(const std::filesystem::path& p) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(std::filesystem::absolute(p), ec);
  return ec ? std::filesystem::absolute(p).lexically_normal() : c;
}

void check_target(const std::filesystem::path& target) {
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw ArgumentError(fmt::format("output path '{}' names a directory, not a file", target.string()));
  const auto dir = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw ArgumentError(fmt::format("cannot write output '{}': directory '{}' {}", target.string(), dir.string(),
                                    errno == ENOENT ? "does not exist" : std::string("cannot be used: ") + std::strerror(errno)));
  if (!S_ISDIR(st.st_mode))
    throw ArgumentError(fmt::format("cannot write output '{}': '{}' is not a directory", target.string(), dir.string()));
  if (::stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      throw ArgumentError(fmt::format("cannot write output '{}': it is a directory", target.string()));
    if (!S_ISREG(st.st_mode))
      throw ArgumentError(fmt::format("cannot write output '{}': it exists and is not a regular file", target.string()));
  }
}

}  // namespace

OutputTransaction::OutputTransaction(const std::vector<std::filesystem::path>& targets, const std::vector<RunInput>& inputs) {
  std::vector<std::filesystem::path> seen;
  std::set<std::filesystem::path> directories;
  for (const auto& target : targets) {
    check_target(target);
    const auto c = comparable(target);
    for (std::size_t i = 0; i < seen.size(); ++i)
      if (seen[i] == c)
        throw ArgumentError(fmt::format("two outputs of this run are the same file: '{}' and '{}'", targets[i].string(),
                                        target.string()));
    for (const auto& input : inputs) {
      std::error_code ec;
      if (comparable(input.path) == c || std::filesystem::equivalent(input.path, target, ec))
        throw ArgumentError(fmt::format("output '{}' would replace the run's input {} '{}'", target.string(), input.role,
                                        input.path.string()));
    }
    seen.push_back(c);
    directories.insert(comparable(target.parent_path().empty() ? "." : target.parent_path()));
  }
  for (const auto& d : directories) remove_stale_staging_files(d);
  for (const auto& target : targets) outputs_.push_back(std::make_unique<AtomicOutput>(target));
}

AtomicOutput& OutputTransaction::output(const std::filesystem::path& target) {
  for (auto& o : outputs_)
    if (o->target() == target) return *o;
  throw Error(fmt::format("output '{}' was not declared before the run", target.string()));
}

void OutputTransaction::commit() {
  for (auto& o : outputs_) o->finish();
  stall_for_test("commit");
  InterruptDeferral hold;
  // The targets as they are now (a directory may have appeared at one during the run): a failed run, not a bad argument.
  for (auto& o : outputs_) {
    try {
      check_target(o->target());
    } catch (const ArgumentError& e) {
      throw Error(e.what());
    }
  }
  // Hard links to the earlier files, so that a rename failing midway can be undone.
  std::vector<bool> existed(outputs_.size(), false);
  std::vector<std::filesystem::path> backups(outputs_.size());
  std::vector<InterruptCleanupPath> backup_cleanup;
  for (std::size_t i = 0; i < outputs_.size(); ++i) {
    const auto& target = outputs_[i]->target();
    struct stat st {};
    if (::stat(target.c_str(), &st) != 0) continue;
    existed[i] = true;
    backups[i] = temporary_path_for(target);
    backup_cleanup.emplace_back(backups[i]);
    if (::link(target.c_str(), backups[i].c_str()) != 0) backups[i].clear();  // no hard links here: no rollback
  }
  std::size_t renamed = 0;
  try {
    for (; renamed < outputs_.size(); ++renamed) outputs_[renamed]->publish();
  } catch (const Error& e) {
    std::size_t restored = 0;
    for (std::size_t i = 0; i < renamed; ++i) {
      const auto& target = outputs_[i]->target();
      const bool ok = !existed[i]         ? ::unlink(target.c_str()) == 0
                      : !backups[i].empty() ? ::rename(backups[i].c_str(), target.c_str()) == 0
                                            : false;
      restored += ok;
    }
    for (const auto& b : backups)
      if (!b.empty()) ::unlink(b.c_str());
    throw Error(fmt::format("{}; {} of the {} outputs renamed before it were rolled back{}", e.what(), restored, renamed,
                            restored == renamed ? "" : " (the others could not be: they hold this run's results)"));
  }
  for (const auto& b : backups)
    if (!b.empty()) ::unlink(b.c_str());
}

void check_output_prefix(const std::string& prefix, std::string_view option) {
  const std::filesystem::path p(prefix);
  const std::string stem = p.filename().string();
  if (prefix.empty() || stem.empty() || stem == "." || stem == "..")
    throw ArgumentError(fmt::format("{} '{}': give a file-name prefix such as 'runs/ec' (outputs are PREFIX plus a "
                                    "suffix), not a directory",
                                    option, prefix));
}

int remove_stale_staging_files(const std::filesystem::path& directory) {
  static const std::regex staging(R"(\..+\.ropescope-tmp-([0-9]+)-[0-9]+)");
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, staging)) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (m[1].length() > 9) continue;  // not a pid this kernel hands out
    const long pid = std::stol(m[1].str());
    if (pid <= 0 || pid == ::getpid() || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    // Still locked: a process (whose pid was reused, or in another pid namespace) holds it.
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::unlink(entry.path().c_str()) == 0) ++removed;
    ::close(fd);
  }
  return removed;
}

}  // namespace ropescope::io
