// Memory that is really available (core/memory.hpp): the /proc, cgroup and
// rlimit parsers on file contents, the least limit winning and named, this
// process's limit being sane; and the CPU backend refusing a context that does
// not fit, before allocating anything (an absurd request everywhere, and a
// small request under ROPESCOPE_MEMORY_LIMIT).
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "core/error.hpp"
#include "core/memory.hpp"
#include "cpu/cpu_backend.hpp"
#include "forward_fixtures.hpp"

using namespace ropescope;
using ropescope::testing::random_tokens;

namespace {

constexpr std::uint64_t GiB = std::uint64_t{1} << 30;

// Sets ROPESCOPE_MEMORY_LIMIT for one scope, restoring what was there.
class ScopedLimit {
 public:
  explicit ScopedLimit(const char* value) {
    if (const char* old = std::getenv("ROPESCOPE_MEMORY_LIMIT")) old_ = old;
    setenv("ROPESCOPE_MEMORY_LIMIT", value, 1);
  }
  ~ScopedLimit() {
    if (old_) setenv("ROPESCOPE_MEMORY_LIMIT", old_->c_str(), 1);
    else unsetenv("ROPESCOPE_MEMORY_LIMIT");
  }

 private:
  std::optional<std::string> old_;
};

}  // namespace

TEST(MemoryParsing, ProcFields) {
  const std::string meminfo =
      "MemTotal:       32765432 kB\nMemFree:         1234567 kB\nMemAvailable:   23415128 kB\nBuffers: 12 kB\n";
  EXPECT_EQ(parse_proc_kb(meminfo, "MemAvailable"), std::uint64_t{23415128} * 1024);
  EXPECT_EQ(parse_proc_kb(meminfo, "MemTotal"), std::uint64_t{32765432} * 1024);
  EXPECT_EQ(parse_proc_kb(meminfo, "Mem"), std::nullopt);  // a prefix of a key is not the key
  EXPECT_EQ(parse_proc_kb(meminfo, "SwapTotal"), std::nullopt);
  EXPECT_EQ(parse_proc_kb("VmPeak:\t  10 kB\nVmSize:\t 2048 kB\n", "VmSize"), std::uint64_t{2048} * 1024);
  EXPECT_EQ(parse_proc_kb("VmSize: lots kB\n", "VmSize"), std::nullopt);
  EXPECT_EQ(parse_proc_kb("VmSize: 12\n", "VmSize"), std::nullopt);  // no unit
  EXPECT_EQ(parse_proc_kb("", "MemAvailable"), std::nullopt);
}

TEST(MemoryParsing, CgroupFilesAndPaths) {
  EXPECT_EQ(parse_cgroup_bytes("1073741824\n"), GiB);
  EXPECT_EQ(parse_cgroup_bytes("max\n"), std::nullopt);
  EXPECT_EQ(parse_cgroup_bytes(""), std::nullopt);
  EXPECT_EQ(parse_cgroup_bytes("-1"), std::nullopt);
  EXPECT_EQ(parse_cgroup_bytes("99999999999999999999999"), std::nullopt);  // overflow
  EXPECT_EQ(parse_cgroup_path("0::/user.slice/user-1000.slice/session-2.scope\n"),
            "/user.slice/user-1000.slice/session-2.scope");
  const std::string v1 = "9:name=systemd:/\n4:memory:/process_api/a5d3\n3:cpu,cpuacct:/x\n0::/\n";
  EXPECT_EQ(parse_cgroup_path(v1, "memory"), "/process_api/a5d3");
  EXPECT_EQ(parse_cgroup_path(v1, "cpuacct"), "/x");
  EXPECT_EQ(parse_cgroup_path(v1), "/");
  EXPECT_EQ(parse_cgroup_path("4:memory:/a\n", ""), std::nullopt);  // v1 only: no v2 entry
  EXPECT_EQ(parse_cgroup_path("0::/a\n", "memory"), std::nullopt);
  EXPECT_EQ(parse_cgroup_path("0::/a:b\n"), "/a:b");  // ':' inside the path
}

TEST(MemoryLimits, TheLeastLimitWinsAndIsNamed) {
  const std::uint64_t ram = 64 * GiB;
  MemorySources s;
  EXPECT_EQ(available_memory(s, ram).bytes, ram);
  EXPECT_EQ(available_memory(s, ram).source, "physical RAM");
  s.meminfo = "MemAvailable: 41943040 kB\n";  // 40 GiB
  EXPECT_EQ(available_memory(s, ram).bytes, 40 * GiB);
  EXPECT_EQ(available_memory(s, ram).source, "MemAvailable of /proc/meminfo");
  // cgroup v2: the leaf says max, its parent 16 GiB with 10 used.
  s.cgroups = {{"/sys/fs/cgroup/a/b", "max\n", "123\n", ""}, {"/sys/fs/cgroup/a", "17179869184\n", "10737418240\n", ""},
               {"/sys/fs/cgroup", "", "", ""}};
  auto limit = available_memory(s, ram);
  EXPECT_EQ(limit.bytes, 6 * GiB);
  EXPECT_NE(limit.source.find("cgroup limit of /sys/fs/cgroup/a (memory.max 16.0 GiB, memory.current 10.0 GiB"),
            std::string::npos)
      << limit.source;
  // Reclaimable page cache (inactive_file of memory.stat) counts as available, as kubelet counts it.
  s.cgroups[1].stat = "anon 1000\nfile 5368709120\ninactive_file 4294967296\nactive_file 1073741824\n";
  EXPECT_EQ(available_memory(s, ram).bytes, 10 * GiB);
  EXPECT_EQ(parse_cgroup_stat(s.cgroups[1].stat, "inactive_file"), 4 * GiB);
  EXPECT_EQ(parse_cgroup_stat(s.cgroups[1].stat, "inactive_anon"), std::nullopt);
  s.cgroups[1].stat.clear();
  // Usage above the limit: nothing is available.
  s.cgroups[1].usage = "20000000000\n";
  EXPECT_EQ(available_memory(s, ram).bytes, 0u);
  // cgroup v1 files.
  s.cgroups = {{"/sys/fs/cgroup/memory/docker/x", "", "", ""}, {"/sys/fs/cgroup/memory", "8589934592\n", "1073741824\n", ""}};
  s.cgroup_v1 = true;
  limit = available_memory(s, ram);
  EXPECT_EQ(limit.bytes, 7 * GiB);
  EXPECT_NE(limit.source.find("cgroup v1 limit of /sys/fs/cgroup/memory (memory.limit_in_bytes 8.0 GiB"),
            std::string::npos)
      << limit.source;
  // ulimit -v: the limit minus the address space in use.
  s.address_space = 5 * GiB;
  s.status = "Name:\tropescope\nVmSize:\t 1048576 kB\n";
  limit = available_memory(s, ram);
  EXPECT_EQ(limit.bytes, 4 * GiB);
  EXPECT_NE(limit.source.find("ulimit -v"), std::string::npos) << limit.source;
  // The environment override.
  s.override_limit = "1000";
  EXPECT_EQ(available_memory(s, ram).bytes, 1000u);
  EXPECT_EQ(available_memory(s, ram).source, "ROPESCOPE_MEMORY_LIMIT");
  s.override_limit = "100T";
  EXPECT_THROW(available_memory(s, ram), ArgumentError);
}

TEST(MemoryLimits, ThisProcessIsSane) {
  const MemoryLimit limit = available_memory();
  EXPECT_GT(limit.bytes, 0u);
  EXPECT_LE(limit.bytes, physical_memory_bytes());
  EXPECT_FALSE(limit.source.empty());
  EXPECT_EQ(available_memory_bytes() > 0, true);
  const MemorySources s = read_memory_sources();
  EXPECT_TRUE(parse_proc_kb(s.meminfo, "MemAvailable").has_value()) << "no MemAvailable in /proc/meminfo";
  EXPECT_TRUE(parse_proc_kb(s.status, "VmSize").has_value()) << "no VmSize in /proc/self/status";
}

TEST(CpuMemoryCheck, AnAbsurdContextIsRefusedWithoutAllocating) {
  auto ec = ropescope::testing::load_test_model("tests/data/models/ec");
  cpu::CpuBackend backend(ec);
  backend::ForwardOptions o;
  o.keep_logits = true;
  const long T = 1'000'000'000'000;  // 10^12 tokens: many PiB on any machine
  EXPECT_GT(backend.forward_bytes(T, o), std::uint64_t{1} << 50);
  try {
    backend.check_memory(T, o);
    FAIL() << "no error";
  } catch (const ArgumentError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("a context of T = 1000000000000 tokens needs about"), std::string::npos) << m;
    EXPECT_NE(m.find("GiB is available (the limit that applies: "), std::string::npos) << m;
  }
  // Saturates rather than wrapping.
  EXPECT_EQ(backend.forward_bytes(std::numeric_limits<long>::max(), o), std::numeric_limits<std::uint64_t>::max());
}

TEST(CpuMemoryCheck, ASmallLimitRefusesAnOrdinaryForward) {
  auto ec = ropescope::testing::load_test_model("tests/data/models/ec");
  cpu::CpuBackend backend(ec);
  const auto tokens = random_tokens(64, 256, 1);
  EXPECT_NO_THROW(backend.forward({tokens}, {}));
  ASSERT_GT(backend.forward_bytes(64, {}), 100000u);
  {
    ScopedLimit limit("100000");
    // Up front (the CLI's check before any work) the refusal is a bad argument ...
    try {
      backend.check_memory(64, {});
      FAIL() << "no error";
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find("the limit that applies: ROPESCOPE_MEMORY_LIMIT"), std::string::npos)
          << e.what();
    }
    // ... inside a run, memory that vanished is a failed run (exit 1), not a bad argument.
    try {
      backend.forward({tokens}, {});
      FAIL() << "no error";
    } catch (const ArgumentError& e) {
      FAIL() << "an ArgumentError mid-run: " << e.what();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the limit that applies: ROPESCOPE_MEMORY_LIMIT"), std::string::npos)
          << e.what();
    }
  }
  {
    ScopedLimit limit("a lot");
    EXPECT_THROW(backend.check_memory(64, {}), ArgumentError);
  }
  EXPECT_NO_THROW(backend.forward({tokens}, {}));
}
