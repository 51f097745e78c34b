// Running gnuplot (see gnuplot.hpp).
#include "plot/gnuplot.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

extern char** environ;

namespace ropescope::plot {
namespace {

std::string terminal_for(const std::filesystem::path& output, FigureSize size) {
  std::string ext = output.extension().string();
  if (ext == ".png") return fmt::format("set terminal pngcairo size {},{} enhanced font 'Sans,11'", size.width_px, size.height_px);
  if (ext == ".svg") return fmt::format("set terminal svg size {},{} enhanced font 'Sans,11' background '#ffffff'", size.width_px, size.height_px);
  if (ext == ".pdf")
    return fmt::format("set terminal pdfcairo size {:.2f}in,{:.2f}in enhanced font 'Sans,9'", size.width_px / 100.0,
                       size.height_px / 100.0);
  throw ArgumentError(fmt::format("plot file '{}': unsupported extension '{}' (expected .png, .svg or .pdf)",
                                  output.string(), ext));
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Removes the listed files when it goes out of scope.
struct TemporaryFiles {
  std::vector<std::filesystem::path> paths;
  ~TemporaryFiles() {
    std::error_code ignored;
    for (const auto& p : paths) std::filesystem::remove(p, ignored);
  }
};

}  // namespace

void check_plot_path(const std::filesystem::path& output) { terminal_for(output, {}); }

std::string quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += (c == '\'') ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string data_block(std::string_view name, const std::vector<std::vector<double>>& rows) {
  std::string out = fmt::format("{} << EOD\n", name);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) out += fmt::format("{}{:.10g}", i ? " " : "", row[i]);
    out += '\n';
  }
  return out + "EOD\n";
}

void render(const std::string& body, const std::filesystem::path& output, FigureSize size) {
  const std::string terminal = terminal_for(output, size);
  TemporaryFiles temp;
  const auto image = io::temporary_path_for(output);
  const auto script = io::temporary_path_for(output.parent_path() / (output.filename().string() + ".gp"));
  const auto messages = io::temporary_path_for(output.parent_path() / (output.filename().string() + ".log"));
  temp.paths = {image, script, messages};
  io::write_file_atomic(script, fmt::format("{}\nset output {}\n{}\nunset output\n", terminal,
                                            quote(image.string()), body));

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, messages.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string program = "gnuplot", script_arg = script.string();
  char* argv[] = {program.data(), script_arg.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOENT) {
    throw Error(fmt::format("cannot draw '{}': gnuplot is not installed or not on PATH (Debian: apt-get install gnuplot-nox)",
                            output.string()));
  }
  if (rc != 0) throw Error(fmt::format("cannot draw '{}': starting gnuplot failed: {}", output.string(), std::strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string log = read_all(messages);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !std::filesystem::exists(image)) {
    throw Error(fmt::format("gnuplot failed drawing '{}' ({}): {}", output.string(),
                            WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status)) : "killed by a signal",
                            log.empty() ? "no message" : log));
  }
  std::filesystem::rename(image, output);
}

}  // namespace ropescope::plot
