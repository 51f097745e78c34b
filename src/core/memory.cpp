// Available host memory from /proc, cgroups, RLIMIT_AS and ROPESCOPE_MEMORY_LIMIT (see memory.hpp).
#include "core/memory.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace ropescope {

namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// A whole string of decimal digits as an unsigned 64-bit count; nullopt otherwise (or on overflow).
std::optional<std::uint64_t> parse_count(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::uint64_t minus(std::uint64_t a, std::uint64_t b) { return a > b ? a - b : 0; }

// The rest of the first line of `contents` that reads `key` then `separator`
// (trimmed); nullopt when no line does.
std::optional<std::string_view> field_value(std::string_view contents, std::string_view key, char separator) {
  std::size_t at = 0;
  while (at < contents.size()) {
    const auto end = std::min(contents.find('\n', at), contents.size());
    const std::string_view line = contents.substr(at, end - at);
    at = end + 1;
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == separator)
      return trim(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::uint64_t> parse_proc_kb(std::string_view contents, std::string_view key) {
  const auto value = field_value(contents, key, ':');
  if (!value || !value->ends_with("kB")) return std::nullopt;
  const auto kb = parse_count(trim(value->substr(0, value->size() - 2)));
  if (!kb || *kb > UINT64_MAX / 1024) return std::nullopt;
  return *kb * 1024;
}

std::optional<std::uint64_t> parse_cgroup_stat(std::string_view contents, std::string_view key) {
  const auto value = field_value(contents, key, ' ');
  return value ? parse_count(*value) : std::nullopt;
}

std::optional<std::uint64_t> parse_cgroup_bytes(std::string_view contents) { return parse_count(trim(contents)); }

std::optional<std::string> parse_cgroup_path(std::string_view proc_self_cgroup, std::string_view controller) {
  std::size_t at = 0;
  while (at < proc_self_cgroup.size()) {
    const auto end = std::min(proc_self_cgroup.find('\n', at), proc_self_cgroup.size());
    const std::string_view line = proc_self_cgroup.substr(at, end - at);
    at = end + 1;
    // hierarchy-id:controller-list:path (the path may itself hold ':')
    const auto first = line.find(':');
    if (first == std::string_view::npos) continue;
    const auto second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string path(line.substr(second + 1));
    if (path.empty() || path[0] != '/') continue;
    if (controller.empty()) {
      if (line.substr(0, first) == "0" && controllers.empty()) return path;
      continue;
    }
    std::size_t c = 0;
    while (c <= controllers.size()) {
      const auto comma = std::min(controllers.find(',', c), controllers.size());
      if (controllers.substr(c, comma - c) == controller) return path;
      c = comma + 1;
    }
  }
  return std::nullopt;
}

MemoryLimit available_memory(const MemorySources& sources, std::uint64_t physical_ram) {
  MemoryLimit best{physical_ram, "physical RAM"};
  auto consider = [&](std::uint64_t bytes, std::string source) {
    if (bytes < best.bytes) best = {bytes, std::move(source)};
  };
  if (const auto available = parse_proc_kb(sources.meminfo, "MemAvailable"))
    consider(*available, "MemAvailable of /proc/meminfo");
  const bool v1 = sources.cgroup_v1;
  for (const auto& level : sources.cgroups) {
    const auto limit = parse_cgroup_bytes(level.limit);
    if (!limit) continue;
    // Page cache the kernel reclaims under pressure is usage that is still available.
    const std::uint64_t reclaimable = parse_cgroup_stat(level.stat, v1 ? "total_inactive_file" : "inactive_file").value_or(0);
    const std::uint64_t usage = minus(parse_cgroup_bytes(level.usage).value_or(0), reclaimable);
    consider(minus(*limit, usage),
             fmt::format("{} limit of {} ({} {:.1f} GiB, {} {:.1f} GiB less {:.1f} GiB of reclaimable page cache)",
                         v1 ? "cgroup v1" : "cgroup", level.directory, v1 ? "memory.limit_in_bytes" : "memory.max",
                         *limit / 1073741824.0, v1 ? "memory.usage_in_bytes" : "memory.current",
                         (usage + reclaimable) / 1073741824.0, reclaimable / 1073741824.0));
  }
  if (sources.address_space) {
    const std::uint64_t used = parse_proc_kb(sources.status, "VmSize").value_or(0);
    consider(minus(*sources.address_space, used),
             fmt::format("ulimit -v (RLIMIT_AS {:.1f} GiB, of which this process's VmSize holds {:.1f} GiB)",
                         *sources.address_space / 1073741824.0, used / 1073741824.0));
  }
  if (sources.override_limit) {
    const auto bytes = parse_count(trim(*sources.override_limit));
    if (!bytes)
      throw ArgumentError(fmt::format("ROPESCOPE_MEMORY_LIMIT must be a number of bytes (digits only), got \"{}\"",
                                      *sources.override_limit));
    consider(*bytes, "ROPESCOPE_MEMORY_LIMIT");
  }
  return best;
}

MemorySources read_memory_sources() {
  namespace fs = std::filesystem;
  MemorySources s;
  s.meminfo = read_file("/proc/meminfo");
  s.status = read_file("/proc/self/status");
  const std::string cgroup = read_file("/proc/self/cgroup");
  // A v1 memory controller (legacy or hybrid mounts) holds the memory limits; else the v2 hierarchy.
  fs::path base;
  std::string limit_file, usage_file;
  std::optional<std::string> path = parse_cgroup_path(cgroup, "memory");
  if (path) {
    base = "/sys/fs/cgroup/memory";
    limit_file = "memory.limit_in_bytes";
    usage_file = "memory.usage_in_bytes";
    s.cgroup_v1 = true;
  } else if ((path = parse_cgroup_path(cgroup))) {
    base = "/sys/fs/cgroup";
    limit_file = "memory.max";
    usage_file = "memory.current";
  }
  if (path) {
    // The process's cgroup and each ancestor up to the mount root (inside a
    // container the root is often the container's own cgroup).
    fs::path relative = fs::path(*path).relative_path();
    while (true) {
      const fs::path dir = relative.empty() ? base : base / relative;
      s.cgroups.push_back(
          {dir.string(), read_file(dir / limit_file), read_file(dir / usage_file), read_file(dir / "memory.stat")});
      if (relative.empty()) break;
      relative = relative.has_parent_path() ? relative.parent_path() : fs::path();
    }
  }
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) s.address_space = as.rlim_cur;
  if (const char* env = std::getenv("ROPESCOPE_MEMORY_LIMIT")) s.override_limit = env;
  return s;
}

MemoryLimit available_memory() { return available_memory(read_memory_sources(), physical_memory_bytes()); }

std::uint64_t available_memory_bytes() { return available_memory().bytes; }

std::uint64_t physical_memory_bytes() {
  return static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(sysconf(_SC_PAGE_SIZE));
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes >= (std::uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", bytes / double(std::uint64_t{1} << 30));
  if (bytes >= (std::uint64_t{1} << 20)) return fmt::format("{:.2f} MiB", bytes / double(std::uint64_t{1} << 20));
  return fmt::format("{} bytes", bytes);
}

std::uint64_t parse_memory_size(const std::string& text, const std::string& parameter) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string suffix = used > 0 ? text.substr(used) : "";
  double unit = suffix.empty() ? 1 : suffix == "K" ? 1024.0 : suffix == "M" ? 1024.0 * 1024 : suffix == "G" ? 1024.0 * 1024 * 1024 : 0;
  if (used == 0 || unit == 0 || !(value * unit >= 1) || !(value * unit < 0x1p64))
    throw ArgumentError(parameter, fmt::format("'{}' is not a size from 1 byte to 16 EiB (e.g. 4G, 512M, 100000)", text));
  return static_cast<std::uint64_t>(value * unit);
}

}  // namespace ropescope
