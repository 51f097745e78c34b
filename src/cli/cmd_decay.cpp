#include "cli/commands.hpp"
namespace ropescope::cli {
void add_decay_command(CLI::App& app) { app.add_subcommand("decay", "Theoretical attention-decay curves"); }
}
