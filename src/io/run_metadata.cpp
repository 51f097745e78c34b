// Run metadata for JSON sidecars (see run_metadata.hpp).
#include "io/run_metadata.hpp"

#include <chrono>
#include <ctime>

#include "core/build_info.hpp"

namespace ropescope::io {
namespace {
std::string utc_now_iso8601() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}
}  // namespace

nlohmann::json run_metadata(const std::string& command, const std::vector<std::string>& argv) {
  return {
      {"tool", "ropescope"},
      {"tool_version", tool_version()},
      {"git_commit", git_commit()},
      {"command", command},
      {"argv", argv},
      {"started_utc", utc_now_iso8601()},
  };
}

}  // namespace ropescope::io
