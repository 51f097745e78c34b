// The bootstrap of a tensor-parallel group that spans processes (and hosts):
// every process of the group is started with the same rendezvous file, the
// group's size and its own number. Process 0 makes the group's id (NCCL's
// unique id, which carries the address its bootstrap listens on) and
// publishes it in the file; the others wait for the file to appear. On
// several hosts the file lies on a filesystem they share. The file names the
// group's size, so a process started with another size is refused; it is
// written under a staging name and renamed, so nobody reads half of it.
// Process 0 refuses a file that exists already (an earlier run's id would
// send processes to a group that is gone) and removes it once every process
// has joined.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace ropescope::backend {

struct World {
  std::filesystem::path rendezvous;  // empty: one process
  int processes = 1;                 // P
  int process = 0;                   // this process, 0 .. P-1
  int ranks = 0;                     // the group's ranks over all processes (P times the ranks of each)
  bool spans_processes() const { return processes > 1; }
};

// Throws ArgumentError (parameter "world") for a size or number out of range,
// ranks that do not divide among the processes, or a missing file name.
void check_world(const World& world);

// Process 0: writes `id` to the rendezvous file; throws Error naming the file
// when it exists already or cannot be written.
void publish_rendezvous(const World& world, std::span<const std::byte> id);

// Other processes: waits (polling) until the file appears and returns its id
// of `id_bytes` bytes. Throws Error naming the file after `timeout`, and
// FormatError for a file that is not a rendezvous of this group's size.
std::vector<std::byte> await_rendezvous(const World& world, std::size_t id_bytes, std::chrono::milliseconds timeout);

// Process 0, once every process has joined: removes the file.
void withdraw_rendezvous(const World& world);

}  // namespace ropescope::backend
