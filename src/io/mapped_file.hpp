// Opening input files: a read-only memory map of a whole file (RAII; checkpoints
// are never copied into memory, tensor views point into the map), a whole-file
// text read, and the check both make first: the path must name a regular file.
// A FIFO, directory or device given as a model, config, token or text input is
// refused up front instead of blocking in open() or reading forever.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace ropescope::io {

// Throws ArgumentError "<what> <path> is a FIFO, not a regular file" (or a
// directory, a device, a socket) when `path` exists but is not a regular file
// (symbolic links are followed), and Error "cannot open <what> <path>: ..."
// when it cannot be examined (missing, no permission). `what` names the role,
// e.g. "config", "token file".
void require_regular_file(const std::filesystem::path& path, const std::string& what);

// The whole contents of `path`, refused as require_regular_file does. The file
// is opened without blocking, so a FIFO is refused even if it appears between
// a caller's check and the open.
std::string read_regular_file(const std::filesystem::path& path, const std::string& what);

class MappedFile {
 public:
  // Throws as read_regular_file does, or Error naming the path when the map fails.
  explicit MappedFile(std::filesystem::path path, const std::string& what = "file");
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;  // null for an empty file
  std::size_t size_ = 0;
};

}  // namespace ropescope::io
