// Every subcommand of the `ropescope` executable registers itself on the CLI11
// app through one of these functions (one .cpp per subcommand). A subcommand's
// callback throws on failure; main() maps exceptions to messages and exit codes.
// `argv` is the process's command line as main() received it, which the
// subcommands that write sidecars record; it outlives every callback.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace ropescope::cli {

using CommandLine = std::vector<std::string>;

void add_decay_command(CLI::App& app, const CommandLine& argv);
void add_version_command(CLI::App& app);
void add_info_command(CLI::App& app, const CommandLine& argv);
void add_ppl_command(CLI::App& app, const CommandLine& argv);
void add_attn_command(CLI::App& app, const CommandLine& argv);
void add_profile_command(CLI::App& app, const CommandLine& argv);
void add_tokenize_command(CLI::App& app, const CommandLine& argv);
void add_plot_command(CLI::App& app);

}  // namespace ropescope::cli
