// `ropescope version`: tool version, git commit, and the CUDA devices this build can use.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/build_info.hpp"
#ifdef ROPESCOPE_HAVE_CUDA
#include "kernels/device_info.hpp"
#endif

namespace ropescope::cli {

void add_version_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print version, git commit and CUDA devices");
  cmd->callback([] {
    fmt::print("ropescope {} (commit {})\n", tool_version(), git_commit());
#ifdef ROPESCOPE_HAVE_CUDA
    fmt::print("CUDA backend: compiled in; {}\n", kernels::describe_cuda_devices());
#else
    fmt::print("CUDA backend: not compiled in (configure with -DROPESCOPE_CUDA=ON and nvcc on PATH)\n");
#endif
  });
}

}  // namespace ropescope::cli
