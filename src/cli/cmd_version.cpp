// `ropescope version`: tool version, git commit, and the CUDA devices this build can use.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/build_info.hpp"
#include "engine/engine.hpp"

namespace ropescope::cli {

void add_version_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print version, git commit and CUDA devices");
  cmd->callback([] {
    fmt::print("ropescope {} (commit {})\n", tool_version(), git_commit());
    fmt::print("CUDA backend: {}\n", engine::describe_cuda_backend());
  });
}

}  // namespace ropescope::cli
