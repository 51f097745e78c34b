// Regular-file checks, whole-file reads and the POSIX mmap of a whole file,
// read-only and private (see mapped_file.hpp).
#include "io/mapped_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace ropescope::io {

namespace {

// "a FIFO", "a directory", ... for a stat mode that is not a regular file.
const char* kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

[[noreturn]] void refuse(const std::filesystem::path& path, const std::string& what, mode_t mode) {
  throw ArgumentError(fmt::format("{} {} is {}, not a regular file", what, path.string(), kind_of(mode)));
}

// Closes the descriptor on every path out of a scope.
struct Descriptor {
  int fd;
  ~Descriptor() { ::close(fd); }
};

// Opens `path` read-only without blocking (a FIFO with no writer would block a
// plain open) and checks that it is a regular file; returns its size.
std::size_t open_regular(const std::filesystem::path& path, const std::string& what, int& fd) {
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw Error(fmt::format("cannot open {} {}: {}", what, path.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error(fmt::format("cannot open {} {}: {}", what, path.string(), std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    refuse(path, what, st.st_mode);
  }
  return static_cast<std::size_t>(st.st_size);
}

}  // namespace

void require_regular_file(const std::filesystem::path& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(fmt::format("cannot open {} {}: {}", what, path.string(), std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) refuse(path, what, st.st_mode);
}

std::string read_regular_file(const std::filesystem::path& path, const std::string& what) {
  int fd = -1;
  const std::size_t size = open_regular(path, what, fd);
  const Descriptor closer{fd};
  std::string text;
  text.reserve(size);
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(fmt::format("cannot read {} {}: {}", what, path.string(), std::strerror(errno)));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

MappedFile::MappedFile(std::filesystem::path path, const std::string& what) : path_(std::move(path)) {
  int fd = -1;
  size_ = open_regular(path_, what, fd);
  const Descriptor closer{fd};
  if (size_ > 0) {
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) throw Error(fmt::format("cannot map {} {}: {}", what, path_.string(), std::strerror(errno)));
    data_ = static_cast<const std::byte*>(map);
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace ropescope::io
