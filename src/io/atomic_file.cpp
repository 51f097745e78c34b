// Atomic output files (see atomic_file.hpp).
#include "io/atomic_file.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace ropescope::io {

std::filesystem::path temporary_path_for(const std::filesystem::path& target) {
  static std::atomic<unsigned> counter{0};
  auto name = target.filename().string();
  if (name.empty()) throw ArgumentError(fmt::format("output path '{}' names no file", target.string()));
  return target.parent_path() / fmt::format(".{}.tmp-{}-{}", name, ::getpid(), counter++);
}

AtomicOutput::AtomicOutput(std::filesystem::path target)
    : target_(std::move(target)), temporary_(temporary_path_for(target_)) {
  file_ = std::fopen(temporary_.c_str(), "wb");
  if (!file_) {
    throw Error(fmt::format("cannot write output '{}': {} (temporary file '{}')", target_.string(),
                            std::strerror(errno), temporary_.string()));
  }
}

AtomicOutput::~AtomicOutput() {
  if (file_) {
    std::fclose(file_);
    std::error_code ignored;
    std::filesystem::remove(temporary_, ignored);
  }
}

void AtomicOutput::write(const void* data, std::size_t bytes) {
  if (!file_) throw Error(fmt::format("output '{}' was already committed", target_.string()));
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes) {
    throw Error(fmt::format("writing '{}' failed: {}", temporary_.string(), std::strerror(errno)));
  }
}

void AtomicOutput::commit() {
  if (!file_) throw Error(fmt::format("output '{}' was already committed", target_.string()));
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  int saved_errno = errno;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  std::error_code ec;
  if (ok) std::filesystem::rename(temporary_, target_, ec);
  if (!ok || ec) {
    std::filesystem::remove(temporary_, ec);
    throw Error(fmt::format("cannot finish output '{}': {}", target_.string(),
                            ok ? ec.message() : std::strerror(saved_errno)));
  }
}

OutputGroup::~OutputGroup() {
  if (committed_) return;
  std::error_code ignored;
  for (auto p = written_.rbegin(); p != written_.rend(); ++p) std::filesystem::remove(*p, ignored);
}

void write_file_atomic(const std::filesystem::path& target, std::string_view contents) {
  AtomicOutput out(target);
  out.write(contents);
  out.commit();
}

}  // namespace ropescope::io
