// Atomic output files: everything is written to a temporary file beside the
// target and renamed over it only when complete, so a crash or an exception
// never leaves a half-written result.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string_view>
#include <vector>

namespace ropescope::io {

// Streams bytes into `<target>.tmp-<pid>-<n>`; commit() flushes, fsyncs and renames
// it to the target. Destroyed without commit(), it removes the temporary file.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::filesystem::path target);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  void write(const void* data, std::size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void commit();

  const std::filesystem::path& target() const { return target_; }
  const std::filesystem::path& temporary() const { return temporary_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  std::FILE* file_ = nullptr;
};

// The outputs of one run: each file is written atomically on its own; the
// group removes every output added so far (last first) unless commit() is
// called, so a run that fails after its first output leaves nothing behind.
// Add a path only once it is written: nothing that was there before is touched.
class OutputGroup {
 public:
  OutputGroup() = default;
  ~OutputGroup();
  OutputGroup(const OutputGroup&) = delete;
  OutputGroup& operator=(const OutputGroup&) = delete;
  void add(const std::filesystem::path& written) { written_.push_back(written); }
  void commit() { committed_ = true; }

 private:
  std::vector<std::filesystem::path> written_;
  bool committed_ = false;
};

// Writes `contents` to `target` atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view contents);

// A temporary path beside `target` (same directory, so rename() is atomic),
// unique within this process.
std::filesystem::path temporary_path_for(const std::filesystem::path& target);

}  // namespace ropescope::io
