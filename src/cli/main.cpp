// ropescope: entry point. Parses the subcommand line, runs it, and is the only
// place that turns an exception into an exit code:
//   0 success, 1 a failed run (I/O, numerics, external tools), 2 bad arguments.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "io/run_metadata.hpp"

int main(int argc, char** argv) {
  ropescope::io::set_command_line(argc, argv);
  CLI::App app{"ropescope: rotary position embedding (RoPE / RoPE++) research toolkit"};
  app.set_version_flag("--version", std::string(ropescope::tool_version()) + " (" + ropescope::git_commit() + ")");
  app.require_subcommand(1);
  ropescope::cli::add_decay_command(app);
  ropescope::cli::add_version_command(app);
  ropescope::cli::add_info_command(app);
  ropescope::cli::add_ppl_command(app);
  ropescope::cli::add_attn_command(app);
  ropescope::cli::add_profile_command(app);
  ropescope::cli::add_tokenize_command(app);
  ropescope::cli::add_plot_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "ropescope: {}\n", e.what());
    fmt::print(stderr, "Run with --help for usage.\n");
    return 2;
  } catch (const ropescope::ArgumentError& e) {
    fmt::print(stderr, "ropescope: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ropescope: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
