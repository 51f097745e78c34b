// Output files that appear complete or not at all, and the outputs of one run
// committed together. Every output is staged in a hidden file beside its
// target (`.<name>.ropescope-tmp-<pid>-<n>`, same directory, so rename() is atomic),
// locked (flock) while its process lives and registered for removal on
// SIGINT / SIGTERM (io/interrupt_cleanup.hpp). A staging file that survived a
// SIGKILL is unlocked: the next transaction in that directory removes it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/interrupt_cleanup.hpp"

namespace ropescope::io {

// One staged output. commit() = finish() + publish(). Destroyed before
// publish(), it removes its staging file; the target is never touched then.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::filesystem::path target);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  void write(const void* data, std::size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  // Flushes the staging file to disk (fsync); it stays staged.
  void finish();
  // Renames the finished staging file over the target.
  void publish();
  void commit() {
    finish();
    publish();
  }

  const std::filesystem::path& target() const { return target_; }
  // Where the bytes go until publish(); an external writer (gnuplot) may write here by name.
  const std::filesystem::path& temporary() const { return temporary_; }

 private:
  std::filesystem::path target_;
  std::filesystem::path temporary_;
  int fd_ = -1;
  bool finished_ = false, published_ = false;
  InterruptCleanupPath cleanup_;
};

// Writes `contents` to `target` atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view contents);

// A file a run reads, which none of its outputs may replace; `role` names it
// in messages (e.g. "--tokens").
struct RunInput {
  std::filesystem::path path;
  std::string role;
};

// All outputs of one run, declared before any computation. The constructor
// checks every target (a file name in an existing directory, not a directory
// or another non-regular file, no two the same, none an input of the run)
// and stages each one, so an unwritable directory fails before the work
// starts. commit() finishes every staged file, checks the targets again and
// renames them all, with interrupts held back; until then no earlier file at a
// target is touched, and a transaction destroyed without commit() leaves the
// targets as they were. If a rename fails midway, the outputs already renamed
// are rolled back (earlier files restored from hard links taken just before).
class OutputTransaction {
 public:
  explicit OutputTransaction(const std::vector<std::filesystem::path>& targets, const std::vector<RunInput>& inputs = {});
  OutputTransaction(const OutputTransaction&) = delete;
  OutputTransaction& operator=(const OutputTransaction&) = delete;

  // The staged output of a declared target.
  AtomicOutput& output(const std::filesystem::path& target);
  void write(const std::filesystem::path& target, std::string_view contents) { output(target).write(contents); }
  void commit();

 private:
  std::vector<std::unique_ptr<AtomicOutput>> outputs_;
};

// Checks that `prefix` (an --out PREFIX that outputs append suffixes to) ends
// in a file-name stem: "runs/" or "runs/." would write hidden files in runs/.
// Throws ArgumentError naming `option`.
void check_output_prefix(const std::string& prefix, std::string_view option);

// Removes staging files in `directory` left by processes that no longer run
// (unlocked, and their pid gone); returns how many. Transactions call it.
int remove_stale_staging_files(const std::filesystem::path& directory);

// A staging path beside `target` (same directory), unique within this process.
std::filesystem::path temporary_path_for(const std::filesystem::path& target);

}  // namespace ropescope::io
