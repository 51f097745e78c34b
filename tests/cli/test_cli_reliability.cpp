// Reliability of every subcommand as a hostile but fair user meets it (issue
// "Reliability"): a failed or interrupted run leaves earlier results exactly
// as they were and no staging file behind; bad paths and sizes are refused
// before any work, naming the argument; writes to stdout are checked. Each
// case asserts the exit code, the message, and the directory afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "../common/run_command.hpp"

using ropescope::testing::read_text;
using ropescope::testing::run_ropescope;
using ropescope::testing::TempDir;

namespace {

const std::string kModels = std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/models/";

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file under `dir` (names relative to it) with its bytes.
std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    files[std::filesystem::relative(e.path(), dir).string()] = e.is_regular_file() ? read_bytes(e.path()) : "<dir>";
  return files;
}

std::string names(const std::map<std::string, std::string>& files) {
  std::string s;
  for (const auto& [name, bytes] : files) s += name + " ";
  return s;
}

// A byte file of text-like content for the byte-level demo checkpoints.
std::filesystem::path text_file(const TempDir& dir, int bytes = 800) {
  std::string s;
  for (int i = 0; static_cast<int>(s.size()) < bytes; ++i) s += "rotary position " + std::to_string(i * 37 % 101) + ". ";
  const auto path = dir / "text.bin";
  write_file(path, s.substr(0, bytes));
  return path;
}

std::string ppl_command(const std::filesystem::path& text, const std::filesystem::path& prefix, const std::string& extra = "") {
  return "ppl " + kModels + "ec --tokens " + text.string() + " --bytes --lengths 32,64 --device cpu --quiet --out " +
         prefix.string() + " " + extra;
}

// Runs ropescope in the background with `env` set; stderr goes to `err`.
pid_t spawn_ropescope(const std::string& args, const std::string& env, const std::filesystem::path& err) {
  const std::string command =
      env + " exec " + std::string(ROPESCOPE_BINARY) + " " + args + " >/dev/null 2>" + err.string();
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits until `err` contains `marker` (at most 60 s); false if the child ended first.
bool wait_for_marker(pid_t pid, const std::filesystem::path& err, const std::string& marker) {
  for (int i = 0; i < 600; ++i) {
    if (read_text(err).find(marker) != std::string::npos) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool process_alive(pid_t pid) {
  // A zombie awaiting its reaper counts as gone.
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] != 'Z';
}

bool has_staging_file(const std::map<std::string, std::string>& files) {
  for (const auto& [name, bytes] : files)
    if (name.find(".ropescope-tmp-") != std::string::npos) return true;
  return false;
}

// ---- 1. A failed run never destroys earlier results ------------------------

TEST(Reliability, OutputInTheWayIsRefusedBeforeWorkAndKeepsEarlierResults) {
  TempDir dir;
  const auto text = text_file(dir);
  const auto prefix = dir / "run";
  ASSERT_EQ(run_ropescope(ppl_command(text, prefix)).exit_code, 0);
  std::filesystem::create_directory(dir / "run_curve.csv");  // one output of the next run cannot be written
  const auto before = snapshot(dir.path);
  const auto r = run_ropescope(ppl_command(text, prefix, "--curve 64 --noise-imag 0.1"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("run_curve.csv': it is a directory"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(dir.path), before) << names(snapshot(dir.path));
}

TEST(Reliability, WriteFailureAfterTheWorkKeepsEarlierResults) {
  // A file-size limit makes the writes fail after the computation (as a full disk would).
  TempDir dir;
  const auto text = text_file(dir);
  const auto prefix = dir / "prof";
  const std::string profile = "profile " + kModels + "ec --tokens " + text.string() +
                              " --bytes --window 64 --device cpu --quiet --out " + prefix.string();
  ASSERT_EQ(run_ropescope(profile).exit_code, 0);
  const auto before = snapshot(dir.path);
  const auto r = run_ropescope(profile + " --noise-imag 0.5", "ulimit -f 8;");  // 8 blocks of 512 bytes
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("writing output"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(dir.path), before) << names(snapshot(dir.path));
}

TEST(Reliability, FailedPlotLeavesTheDecayCsvAsItWas) {
  TempDir dir;
  const auto csv = dir / "x.csv";
  write_file(csv, "an earlier result\n");
  const auto before = snapshot(dir.path);
  // No gnuplot on PATH: the figure fails after the curves were computed.
  const auto r = run_ropescope("decay --out " + csv.string() + " --plot " + (dir / "y.png").string(), "PATH=/nonexistent");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("gnuplot"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(dir.path), before) << names(snapshot(dir.path));
}

TEST(Reliability, AttnIntoANewDirectoryThatFailsLeavesNoDirectory) {
  TempDir dir;
  const auto text = text_file(dir, 100);
  const auto r = run_ropescope("attn " + kModels + "ec --tokens " + text.string() +
                               " --bytes --start 90 --length 16 --device cpu --quiet --out " + (dir / "maps").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "maps"));
}

// ---- 3. Interrupts: nothing half-written, no staging file, no orphan ------

struct Interrupt {
  int signal;
  int exit_code;
};

class InterruptedCommit : public ::testing::TestWithParam<Interrupt> {};

TEST_P(InterruptedCommit, LeavesTheEarlierOutputsExactly) {
  TempDir dir;
  const auto text = text_file(dir);
  const auto prefix = dir / "run";
  ASSERT_EQ(run_ropescope(ppl_command(text, prefix, "--curve 64")).exit_code, 0);
  const auto before = snapshot(dir.path);
  const auto err = dir.path.parent_path() / (dir.path.filename().string() + ".stderr");
  const pid_t pid = spawn_ropescope(ppl_command(text, prefix, "--curve 64 --noise-imag 0.3"), "ROPESCOPE_TEST_STALL=commit", err);
  ASSERT_TRUE(wait_for_marker(pid, err, "test stall at commit")) << read_text(err);
  // Every output is staged beside its target now.
  EXPECT_TRUE(has_staging_file(snapshot(dir.path))) << names(snapshot(dir.path));
  kill(pid, GetParam().signal);
  EXPECT_EQ(wait_exit_code(pid), GetParam().exit_code);
  EXPECT_NE(read_text(err).find("staged outputs removed"), std::string::npos) << read_text(err);
  std::filesystem::remove(err);
  EXPECT_EQ(snapshot(dir.path), before) << names(snapshot(dir.path));
}

INSTANTIATE_TEST_SUITE_P(Signals, InterruptedCommit,
                         ::testing::Values(Interrupt{SIGINT, 130}, Interrupt{SIGTERM, 143}));

TEST(Reliability, InterruptedPlotStopsGnuplotAndLeavesNothing) {
  TempDir dir;
  const auto err = dir.path.parent_path() / (dir.path.filename().string() + ".stderr");
  const pid_t pid = spawn_ropescope("decay --quiet --out " + (dir / "d.csv").string() + " --plot " + (dir / "d.png").string(),
                                    "ROPESCOPE_TEST_STALL=plot", err);
  ASSERT_TRUE(wait_for_marker(pid, err, "test stall at plot")) << read_text(err);
  const std::string message = read_text(err);
  const auto at = message.find("gnuplot pid ");
  ASSERT_NE(at, std::string::npos) << message;
  const pid_t gnuplot = std::stoi(message.substr(at + 12));
  EXPECT_TRUE(process_alive(gnuplot));
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit_code(pid), 143);
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = !process_alive(gnuplot);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "gnuplot (pid " << gnuplot << ") outlived ropescope";
  std::filesystem::remove(err);
  EXPECT_TRUE(snapshot(dir.path).empty()) << names(snapshot(dir.path));
}

TEST(Reliability, InterruptedAttnRemovesTheDirectoryItCreated) {
  TempDir dir;
  const auto text = text_file(dir, 100);
  const auto err = dir.path.parent_path() / (dir.path.filename().string() + ".stderr");
  const pid_t pid = spawn_ropescope("attn " + kModels + "ec --tokens " + text.string() +
                                        " --bytes --length 16 --device cpu --quiet --out " + (dir / "maps").string(),
                                    "ROPESCOPE_TEST_STALL=commit", err);
  ASSERT_TRUE(wait_for_marker(pid, err, "test stall at commit")) << read_text(err);
  EXPECT_TRUE(std::filesystem::is_directory(dir / "maps"));
  kill(pid, SIGINT);
  EXPECT_EQ(wait_exit_code(pid), 130);
  std::filesystem::remove(err);
  EXPECT_FALSE(std::filesystem::exists(dir / "maps")) << names(snapshot(dir.path));
}

TEST(Reliability, AClosedPipeIsAFailedRunNotASilentDeath) {
  TempDir dir;
  // 100,001 CSV rows to stdout; `head` closes the pipe after the first bytes.
  const std::string command = "bash -c '" + std::string(ROPESCOPE_BINARY) + " decay --range 0:100000 2>" +
                              (dir / "err").string() + " | head -c 10 >/dev/null; exit ${PIPESTATUS[0]}'";
  const int status = std::system(command.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(read_text(dir / "err").find("Broken pipe"), std::string::npos) << read_text(dir / "err");
}

TEST(Reliability, StagingFilesOfAKilledRunAreRemovedByTheNextRun) {
  TempDir dir;
  const auto err = dir.path.parent_path() / (dir.path.filename().string() + ".stderr");
  const pid_t pid = spawn_ropescope("decay --quiet --out " + (dir / "d.csv").string(), "ROPESCOPE_TEST_STALL=commit", err);
  ASSERT_TRUE(wait_for_marker(pid, err, "test stall at commit")) << read_text(err);
  kill(pid, SIGKILL);  // no handler runs: its staging files stay
  wait_exit_code(pid);
  std::filesystem::remove(err);
  EXPECT_TRUE(has_staging_file(snapshot(dir.path))) << names(snapshot(dir.path));
  ASSERT_EQ(run_ropescope("decay --quiet --out " + (dir / "e.csv").string()).exit_code, 0);
  const auto after = snapshot(dir.path);
  EXPECT_FALSE(has_staging_file(after)) << names(after);
  EXPECT_EQ(after.count("e.csv"), 1u);
  EXPECT_EQ(after.count("d.csv"), 0u);
}

// ---- 4. Output paths checked before any computation ------------------------

TEST(Reliability, BadOutputPathsAreRefusedUpFront) {
  TempDir dir;
  const auto text = text_file(dir);
  const std::string profile = "profile " + kModels + "ec --tokens " + text.string() + " --bytes --window 64 --device cpu --out ";
  struct Case {
    std::string args, message;
  };
  for (const auto& c : std::vector<Case>{
           {profile + (dir / "nodir/p").string(), "directory '" + (dir / "nodir").string() + "' does not exist"},
           {profile + (dir.path.string() + "/"), "give a file-name prefix"},
           {"decay --out " + dir.path.string(), "it is a directory"},
           {"decay --out " + (dir / "a.csv").string() + " --json " + (dir / "a.csv").string(), "two outputs of this run are the same file"},
           {"decay --out " + (dir / "p.csv").string() + " --plot " + (dir / "p.csv.json").string(), "expected .png"},
           {"decay --out /dev/null", "not a regular file"}}) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = run_ropescope(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 20.0) << c.args;
  }
  EXPECT_EQ(snapshot(dir.path).size(), 1u) << names(snapshot(dir.path));  // only text.bin
}

TEST(Reliability, AnOutputMayNotReplaceAnInput) {
  TempDir dir;
  write_file(dir / "in.npy", "text to tokenize");
  const auto before = snapshot(dir.path);
  const auto r = run_ropescope("tokenize " + std::string(ROPESCOPE_SOURCE_DIR) + "/tests/data/tokenizers/qwen2_like --text " +
                               (dir / "in.npy").string() + " --out " + (dir / "in.npy").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("would replace the run's input --text"), std::string::npos) << r.err;
  EXPECT_EQ(snapshot(dir.path), before);
}

TEST(Reliability, UnwritableDirectoryIsRefusedUpFront) {
  TempDir dir;
  const auto text = text_file(dir);
  // root may write into a mode-0555 directory, but into /proc nobody can.
  std::filesystem::create_directory(dir / "ro");
  chmod((dir / "ro").c_str(), 0555);
  const std::filesystem::path target = geteuid() == 0 ? "/proc/ropescope-test" : dir / "ro/p";
  const auto r = run_ropescope("profile " + kModels + "ec --tokens " + text.string() +
                               " --bytes --window 64 --device cpu --out " + target.string());
  chmod((dir / "ro").c_str(), 0755);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot write output '" + target.string() + "_prob.npy'"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(dir / "ro"));
}

TEST(Reliability, NonUtf8ArgumentsAreRefusedBeforeWork) {
  TempDir dir;
  const auto text = text_file(dir);
  for (const std::string& args : std::vector<std::string>
       {"decay --out " + (dir / "x\xff.csv").string(),
        "ppl " + kModels + "ec --tokens " + text.string() + " --bytes --lengths 32 --out " + (dir / "p\xc3").string(),
        "ppl " + kModels + "e\xe9" "c --tokens " + text.string() + " --bytes --lengths 32 --out " + (dir / "p").string()}) {
    const auto u = run_ropescope(args);
    EXPECT_EQ(u.exit_code, 2) << args << "\n" << u.err;
    EXPECT_NE(u.err.find("is not valid UTF-8"), std::string::npos) << u.err;
  }
  EXPECT_EQ(snapshot(dir.path).size(), 1u) << names(snapshot(dir.path));
}

// ---- 5, 7, 8, 10. Sizes and values refused up front, one rule per flag ----

TEST(Reliability, HugeOrOverflowingSizesAreRefusedUpFront) {
  TempDir dir;
  const auto text = text_file(dir);
  const std::string model = kModels + "ec --tokens " + text.string() + " --bytes --device cpu ";
  const std::string out = " --out " + (dir / "o").string();
  struct Case {
    std::string args, message;
  };
  for (const auto& c : std::vector<Case>{
           {"attn " + model + "--start 9223372036854775800 --length 16" + out, "the window needs tokens 9223372036854775800 .. 9223372036854775800+16-1"},
           {"attn " + model + "--length 30000 --heads 0" + out, "the input has 800"},
           {"profile " + model + "--window 1000000000000" + out, "--window: 1000000000000 is longer than the token input"},
           {"profile " + model + "--window 64 --bins-per-decade 2000000000" + out, "--bins-per-decade: must be 1 .. 1000"},
           {"profile " + model + "--window 64 --exact-limit 100" + out, "--exact-limit: 100 is above the window length 64"},
           {"decay -d 2000000000", "--head-dim: must be even, 2 .. 65536"},
           {"decay --context 100000000", "--context: must be 2 .. 1e+07"},
           {"decay --bound --bound-max 1000000000000", "--bound-max: 1000000000000 is above 1e+08"},
           {"decay --range 1e300:1e300", "--range STOP = 1e+300 is above 1e+12"},
           {"decay --log 1:1e100:5", "--log STOP = 1e+100 is above 1e+12"},
           {"decay --variant d=4000000", "head dimension 4000000 is above 65536"},
       }) {
    const auto started = std::chrono::steady_clock::now();
    const auto r = run_ropescope(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 20.0) << c.args;
  }
  EXPECT_EQ(snapshot(dir.path).size(), 1u) << names(snapshot(dir.path));
}

TEST(Reliability, AttentionMapsAreSizedAgainstTheMemoryReallyAvailable) {
  TempDir dir;
  const auto text = text_file(dir);
  // 16 maps (2 layers x 8 heads) of 700 x 700 floats (31 MB) fit --max-memory 4G but not a 20 MB limit.
  const auto r = run_ropescope("attn " + kModels + "ec --tokens " + text.string() +
                                   " --bytes --length 700 --device cpu --quiet --out " + (dir / "maps").string(),
                               "ROPESCOPE_MEMORY_LIMIT=20000000");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("available (ROPESCOPE_MEMORY_LIMIT)"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "maps"));
}

TEST(Reliability, APerplexitySweepThatCannotFitIsRefusedBeforeItsFirstWindow) {
  TempDir dir;
  const auto text = text_file(dir);
  // The 32-token windows would fit a 5 MB limit, the 800-token curve would not: nothing runs.
  const auto started = std::chrono::steady_clock::now();
  const auto r = run_ropescope(ppl_command(text, dir / "run", "--curve 800"), "ROPESCOPE_MEMORY_LIMIT=5000000");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("ROPESCOPE_MEMORY_LIMIT"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 5.0);
  EXPECT_EQ(snapshot(dir.path).size(), 1u) << names(snapshot(dir.path));
}

TEST(Reliability, TheSameFlagsFollowTheSameRulesEverywhere) {
  TempDir dir;
  const auto text = text_file(dir);
  const std::string model = kModels + "ec --tokens " + text.string() + " --bytes --device cpu --quiet ";
  const std::string rope = kModels + "rope --tokens " + text.string() + " --bytes --device cpu --quiet ";
  const std::string out = " --out " + (dir / "o").string();
  struct Case {
    std::string args, message;
  };
  for (const auto& c : std::vector<Case>{
           {"profile " + model + "--window 64 --noise-imag nan" + out, "--noise-imag: std must be finite and >= 0"},
           {"ppl " + model + "--lengths 32 --noise-imag nan" + out, "--noise-imag: std must be finite and >= 0"},
           {"profile " + model + "--window 64 --noise-real inf" + out, "--noise-real: std must be finite and >= 0"},
           {"ppl " + model + "--lengths 32 --noise-real -1" + out, "--noise-real: std must be finite and >= 0"},
           {"profile " + rope + "--window 64 --noise-imag 1" + out, "vanilla RoPE and has no imaginary query component"},
           {"ppl " + rope + "--lengths 32 --noise-imag 1" + out, "vanilla RoPE and has no imaginary query component"},
           {"profile " + model + "--window 64 --noise-imag 1 --seed -1" + out, "--seed: must be >= 0, got -1"},
           {"ppl " + model + "--lengths 32 --noise-imag 1 --seed -1" + out, "--seed: must be >= 0, got -1"},
           {"ppl " + model + "--lengths 8,8" + out, "--lengths: 8 is given twice"},
           {"ppl " + model + "--lengths 8 --max-windows 3" + out, "--max-windows: limits the curve windows"},
       }) {
    const auto r = run_ropescope(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\n" << r.err;
  }
  EXPECT_EQ(snapshot(dir.path).size(), 1u) << names(snapshot(dir.path));
  // The RoPE++ variant names of config.json are accepted alike by info and the analyses.
  EXPECT_EQ(run_ropescope("info " + kModels + "ec --variant imag2").exit_code, 0);
  EXPECT_EQ(run_ropescope("ppl " + model + "--lengths 32 --variant imag2" + out).exit_code, 0);
}

// ---- 6. Writes to stdout are checked ---------------------------------------

TEST(Reliability, FullStdoutIsAFailure) {
  TempDir dir;
  for (const std::string& args : std::vector<std::string>{"decay", "info " + kModels + "ec --json", "info " + kModels + "ec"}) {
    const auto err = dir / "stderr";
    const int status = std::system((std::string(ROPESCOPE_BINARY) + " " + args + " >/dev/full 2>" + err.string()).c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << args;
    EXPECT_NE(read_text(err).find("No space left on device"), std::string::npos) << args << "\n" << read_text(err);
  }
}

// ---- 11. The sidecar says how many threads summed the results --------------

TEST(Reliability, SidecarRecordsTheThreadCount) {
  TempDir dir;
  const auto text = text_file(dir);
  ASSERT_EQ(run_ropescope(ppl_command(text, dir / "run"), "OMP_NUM_THREADS=2").exit_code, 0);
  const auto sidecar = nlohmann::json::parse(read_text(dir / "run.csv.json"));
  EXPECT_EQ(sidecar.at("threads"), 2);
}

}  // namespace
