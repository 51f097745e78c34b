// Running gnuplot (see gnuplot.hpp).
#include "plot/gnuplot.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <gnuplot-iostream.h>
#include <sstream>
#include <utility>

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

}  // namespace

void check_plot_path(const std::filesystem::path& output) { terminal_for(output, {}); }

std::string quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) out += (c == '\'') ? std::string("''") : std::string(1, c);
  return out + "'";
}

Figure::Figure(io::AtomicOutput& output, FigureSize size)
    : output_(output.target()),
      image_(output.temporary()),
      messages_(output_.parent_path() / (output_.filename().string() + ".log")) {
  const std::string terminal = terminal_for(output_, size);
  // A gnuplot that dies early must surface as its exit status, not kill us on the next write.
  signal(SIGPIPE, SIG_IGN);
  // Gnuplot starts with no signal blocked and default actions (this process
  // blocks SIGINT/SIGTERM/SIGHUP for its cleanup thread and ignores SIGPIPE).
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGXFSZ}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw Error(fmt::format("cannot draw '{}': pipe: {}", output_.string(), std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, messages_.temporary().c_str(), O_WRONLY | O_TRUNC, 0);
  std::string program = "gnuplot";
  char* argv[] = {program.data(), nullptr};
  int rc = posix_spawnp(&pid_, "gnuplot", &actions, &attributes, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(fds[0]);
  if (rc != 0) {
    close(fds[1]);
    pid_ = -1;
    if (rc == ENOENT)
      throw Error(fmt::format("cannot draw '{}': gnuplot is not installed or not on PATH (Debian: apt-get install gnuplot-nox)",
                              output_.string()));
    throw Error(fmt::format("cannot draw '{}': starting gnuplot failed: {}", output_.string(), std::strerror(rc)));
  }
  child_ = std::make_unique<io::InterruptCleanupChild>(pid_);
  // Gnuplot writes through the descriptor (its own buffer) and fcloses the FILE when destroyed.
  std::FILE* pipe = fdopen(fds[1], "w");
  if (!pipe) {
    const int error = errno;
    close(fds[1]);
    kill(pid_, SIGTERM);
    reap();
    throw Error(fmt::format("cannot draw '{}': fdopen: {}", output_.string(), std::strerror(error)));
  }
  gnuplot_ = std::make_unique<Gnuplot>(pipe);
  command(fmt::format("{}\nset output {}", terminal, quote(image_.string())));
}

Figure::~Figure() {
  if (!finished_) stop();
}

void Figure::stop() {
  gnuplot_.reset();  // flushes and closes the pipe
  if (pid_ > 0) {
    if (!finished_) kill(pid_, SIGTERM);
    reap();
  }
}

int Figure::reap() {
  // Wait for the exit without reaping, forget the registration, then reap:
  // an interrupt meanwhile never signals a pid that was handed to another process.
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  child_.reset();
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

void Figure::command(std::string_view commands) { *gnuplot_ << std::string(commands) << '\n'; }

std::string Figure::points(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<std::pair<double, double>> rows;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
    if (!std::isnan(x[i]) && !std::isnan(y[i])) rows.emplace_back(x[i], y[i]);
  if (rows.empty()) rows.emplace_back(std::nan(""), std::nan(""));  // an item with no point to draw
  std::string spec = "'-' binary" + gnuplot_->binFmt1d(rows, "record");
  pending_.push_back([rows = std::move(rows)](Gnuplot& gp) { gp.sendBinary1d(rows); });
  return spec;
}

std::string Figure::image(const std::vector<float>& values, std::size_t rows, std::size_t cols, double x0, double y0) {
  std::vector<std::vector<float>> grid(rows, std::vector<float>(cols));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) grid[r][c] = values[r * cols + c];
  // binFmt2d sends grid[r][c] with c fastest, as array=(cols,rows): x is the column, y the row.
  std::string spec = fmt::format("'-' binary{} origin=({},{})", gnuplot_->binFmt2d(grid, "array"), x0, y0);
  pending_.push_back([grid = std::move(grid)](Gnuplot& gp) { gp.sendBinary2d(grid); });
  return spec;
}

void Figure::plot(const std::vector<std::string>& items) {
  std::string line = "plot ";
  for (std::size_t i = 0; i < items.size(); ++i) line += (i ? ", " : "") + items[i];
  command(line);
  for (auto& send : pending_) send(*gnuplot_);
  pending_.clear();
}

void Figure::finish() {
  io::stall_for_test("plot", fmt::format("gnuplot pid {}", pid_));
  command("unset output\nexit");
  gnuplot_.reset();  // flushes and closes the pipe: gnuplot reads to its end
  const int status = reap();
  finished_ = true;
  std::string log = read_all(messages_.temporary());
  std::error_code ignored;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !std::filesystem::exists(image_) ||
      std::filesystem::file_size(image_, ignored) == 0) {
    while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
    throw Error(fmt::format("gnuplot failed drawing '{}' ({}): {}", output_.string(),
                            WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status)) : "killed by a signal",
                            log.empty() ? "no message" : log));
  }
}

}  // namespace ropescope::plot
