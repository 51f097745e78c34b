// The host memory this process can really still use: the least of what the
// kernel reports as available (/proc/meminfo MemAvailable), what its cgroup
// allows (cgroup v2 memory.max - memory.current of this process's cgroup and
// every ancestor, the usage less its reclaimable page cache, memory.stat's
// inactive_file, as kubelet counts it; memory.limit_in_bytes - memory.usage_in_bytes where the
// memory controller is a cgroup v1 one, as on legacy and hybrid hosts), what
// `ulimit -v` allows (RLIMIT_AS minus the current VmSize of /proc/self/status)
// and, when set, the environment variable ROPESCOPE_MEMORY_LIMIT (bytes; a
// cap for tests and for sharing a machine). Physical RAM bounds it all when
// nothing else does. Missing files and "max" / unlimited entries impose no
// limit. Parsing is separate from reading, so every rule is unit-testable on
// file contents.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ropescope {

// The binding limit: its bytes and, for messages, what it is
// ("MemAvailable of /proc/meminfo", "cgroup limit of /sys/fs/cgroup/x (...)",
// "ulimit -v (...)", "ROPESCOPE_MEMORY_LIMIT", "physical RAM").
struct MemoryLimit {
  std::uint64_t bytes = 0;
  std::string source;
};

// One cgroup level's files (contents; empty when the file is missing).
struct CgroupLevel {
  std::string directory;      // for messages
  std::string limit, usage;   // v2: memory.max, memory.current; v1: memory.limit_in_bytes, memory.usage_in_bytes
  std::string stat;           // memory.stat: its inactive_file (v1: total_inactive_file) is reclaimable page cache
};

// What available_memory decides from: file contents (empty when missing) and RLIMIT_AS.
struct MemorySources {
  std::string meminfo;                         // /proc/meminfo
  std::vector<CgroupLevel> cgroups;            // this process's cgroup, then its ancestors
  bool cgroup_v1 = false;                      // the levels hold v1 files (else v2)
  std::optional<std::uint64_t> address_space;  // RLIMIT_AS soft limit; nullopt when unlimited
  std::string status;                          // /proc/self/status (VmSize)
  std::optional<std::string> override_limit;   // ROPESCOPE_MEMORY_LIMIT when set
};

// The value of field `key` ("MemAvailable", "VmSize") of a /proc file, in
// bytes ("kB" lines times 1024); nullopt when absent or malformed.
std::optional<std::uint64_t> parse_proc_kb(std::string_view contents, std::string_view key);
// Field `key` of a cgroup memory.stat ("key value" lines), in bytes; nullopt when absent.
std::optional<std::uint64_t> parse_cgroup_stat(std::string_view contents, std::string_view key);
// A cgroup memory file: a byte count, or nullopt for "max", empty or malformed contents.
std::optional<std::uint64_t> parse_cgroup_bytes(std::string_view contents);
// The cgroup path of this process from /proc/self/cgroup contents: the v2
// entry ("0::/path") when `controller` is empty, else the v1 line whose
// controller list holds it ("4:memory:/path"); nullopt when there is none.
std::optional<std::string> parse_cgroup_path(std::string_view proc_self_cgroup, std::string_view controller = {});

// The least of physical_ram and the limits in `sources`. Throws
// ArgumentError for a ROPESCOPE_MEMORY_LIMIT that is not a plain byte count.
MemoryLimit available_memory(const MemorySources& sources, std::uint64_t physical_ram);
// This process's sources, read now (cgroup v2 under /sys/fs/cgroup, else v1
// under /sys/fs/cgroup/memory).
MemorySources read_memory_sources();
// available_memory(read_memory_sources(), physical_memory_bytes()).
MemoryLimit available_memory();
std::uint64_t available_memory_bytes();

// A byte count for messages: "12.34 GiB", "5.67 MiB", "123 bytes".
std::string format_bytes(std::uint64_t bytes);

// Physical RAM (sysconf), for sanity checks and messages.
std::uint64_t physical_memory_bytes();

// A size as people write it: "4G", "512M", "100K" (binary multiples) or a
// plain byte count, 1 byte .. 16 EiB. ArgumentError naming `parameter` otherwise.
std::uint64_t parse_memory_size(const std::string& text, const std::string& parameter);

}  // namespace ropescope
