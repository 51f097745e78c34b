// ropescope: entry point. Parses the subcommand line, runs it, and is the only
// place that turns an exception into an exit code:
//   0 success, 1 a failed run (I/O, numerics, external tools), 2 bad arguments,
//   130 / 143 interrupted by SIGINT / SIGTERM (staged outputs removed).
// Standard output is flushed and checked before a success is reported.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <exception>
#include <string_view>

#include "cli/commands.hpp"
#include "core/build_info.hpp"
#include "core/error.hpp"
#include "io/interrupt_cleanup.hpp"
#include "tokenizer/utf8.hpp"

namespace {

// Every argument is recorded in the JSON sidecars, which hold only UTF-8:
// refuse a non-UTF-8 argument (a path or a label) before any work.
void check_arguments_are_utf8(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (const auto at = ropescope::tokenizer::find_invalid_utf8(arg); at != std::string_view::npos)
      throw ropescope::ArgumentError(fmt::format(
          "argument {} is not valid UTF-8 (byte {} of it, 0x{:02x}): outputs record their arguments as JSON, which "
          "holds UTF-8 only; rename the file or use another path",
          i, at, static_cast<unsigned char>(arg[at])));
  }
}

}  // namespace

namespace ropescope::cli {

// A library error names its parameter ("exact_limit: ..."); here it is the flag that sets it ("--exact-limit: ...").
std::string as_flag_message(const ArgumentError& e) {
  if (e.parameter().empty()) return e.what();
  std::string flag = "--" + e.parameter();
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag + ": " + e.detail();
}

}  // namespace ropescope::cli

int main(int argc, char** argv) {
  ropescope::io::install_interrupt_cleanup();
  const ropescope::cli::CommandLine command_line(argv, argv + argc);
  CLI::App app{"ropescope: rotary position embedding (RoPE / RoPE++) research toolkit"};
  app.set_version_flag("--version", std::string(ropescope::tool_version()) + " (" + ropescope::git_commit() + ")");
  app.require_subcommand(1);
  ropescope::cli::add_decay_command(app, command_line);
  ropescope::cli::add_version_command(app);
  ropescope::cli::add_info_command(app, command_line);
  ropescope::cli::add_ppl_command(app, command_line);
  ropescope::cli::add_attn_command(app, command_line);
  ropescope::cli::add_profile_command(app, command_line);
  ropescope::cli::add_tokenize_command(app, command_line);
  ropescope::cli::add_plot_command(app);

  try {
    check_arguments_are_utf8(argc, argv);
    app.parse(argc, argv);
    // A full disk or a closed pipe behind stdout is a failed run, not an empty success.
    errno = 0;
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw ropescope::Error(fmt::format("writing to standard output failed{}", errno ? std::string(": ") + std::strerror(errno) : ""));
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    fmt::print(stderr, "ropescope: {}\n", e.what());
    fmt::print(stderr, "Run with --help for usage.\n");
    return 2;
  } catch (const ropescope::ArgumentError& e) {
    fmt::print(stderr, "ropescope: {}\n", ropescope::cli::as_flag_message(e));
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ropescope: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
