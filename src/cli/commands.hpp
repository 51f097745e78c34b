// Every subcommand of the `ropescope` executable registers itself on the CLI11
// app through one of these functions (one .cpp per subcommand). A subcommand's
// callback throws on failure; main() maps exceptions to messages and exit codes.
#pragma once

#include <CLI/CLI.hpp>

namespace ropescope::cli {

void add_decay_command(CLI::App& app);
void add_version_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_ppl_command(CLI::App& app);
void add_attn_command(CLI::App& app);
void add_profile_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_plot_command(CLI::App& app);

}  // namespace ropescope::cli
