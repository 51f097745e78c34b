// Inputs that are not regular files (a FIFO, a directory, a device) are refused
// up front, naming the path and what it is, by every reader of model and token
// inputs: io::require_regular_file / read_regular_file / MappedFile, config.json,
// checkpoint files and token files. A reader that blocked in open() on a FIFO
// would hang: each call runs on a thread, and if it does not return within a
// few seconds the test opens the FIFO's other end to release it and fails.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <string>

#include "core/error.hpp"
#include "io/checkpoint.hpp"
#include "io/mapped_file.hpp"
#include "io/tokens.hpp"
#include "model/config.hpp"
#include "temp_dir.hpp"

using namespace ropescope;

namespace {

std::filesystem::path make_fifo(const std::filesystem::path& path) {
  if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed: " + path.string());
  return path;
}

// The ArgumentError message of `read`, which must return (throw) without
// blocking on `fifo`; if it blocks, a writer is opened and closed to release it.
std::string refusal(const std::filesystem::path& fifo, std::function<void()> read) {
  auto result = std::async(std::launch::async, [read] {
    try {
      read();
    } catch (const ArgumentError& e) {
      return std::string(e.what());
    } catch (const std::exception& e) {
      return std::string("other exception: ") + e.what();
    }
    return std::string("no exception");
  });
  if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // releases a reader blocked in open()
    if (fd >= 0) ::close(fd);
    ADD_FAILURE() << "reading " << fifo << " blocked";
  }
  return result.get();
}

}  // namespace

TEST(RegularFile, FifoDirectoryAndDeviceAreRefusedByName) {
  test::TempDir dir;
  const auto fifo = make_fifo(dir / "pipe");
  EXPECT_EQ(refusal(fifo, [&] { io::require_regular_file(fifo, "config"); }),
            "config " + fifo.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(refusal(fifo, [&] { io::read_regular_file(fifo, "tokenizer"); }),
            "tokenizer " + fifo.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(refusal(fifo, [&] { io::MappedFile map(fifo, "weights"); }),
            "weights " + fifo.string() + " is a FIFO, not a regular file");
  EXPECT_EQ(refusal(fifo, [&] { io::read_regular_file(dir.path(), "config"); }),
            "config " + dir.path().string() + " is a directory, not a regular file");
  EXPECT_EQ(refusal(fifo, [&] { io::MappedFile map("/dev/null"); }), "file /dev/null is a character device, not a regular file");
  // A missing file is an Error naming it; a regular one is read.
  try {
    io::read_regular_file(dir / "absent", "config");
    ADD_FAILURE() << "no error";
  } catch (const ArgumentError&) {
    ADD_FAILURE() << "a missing file is not an argument error of this helper";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot open config " + (dir / "absent").string() + ": No such file or directory");
  }
  test::write_file(dir / "text", "abc");
  EXPECT_EQ(io::read_regular_file(dir / "text", "config"), "abc");
  EXPECT_EQ(io::MappedFile(dir / "text").size(), 3u);
  EXPECT_NO_THROW(io::require_regular_file(dir / "text", "config"));
}

TEST(RegularFile, ModelAndTokenInputsRefuseAFifo) {
  test::TempDir dir;
  const auto config = make_fifo(dir / "config.json");
  EXPECT_EQ(refusal(config, [&] { model::load_model_config(config); }),
            "config " + config.string() + " is a FIFO, not a regular file");
  const auto weights = make_fifo(dir / "model.safetensors");
  EXPECT_EQ(refusal(weights, [&] { io::Checkpoint ck(dir.path()); }),
            "file " + weights.string() + " is a FIFO, not a regular file");
  std::filesystem::remove(weights);
  const auto index = make_fifo(dir / "model.safetensors.index.json");
  EXPECT_EQ(refusal(index, [&] { io::Checkpoint ck(dir.path()); }),
            "checkpoint index " + index.string() + " is a FIFO, not a regular file");
  const auto tokens = make_fifo(dir / "tokens.npy");
  for (auto format : {io::TokenFormat::npy, io::TokenFormat::raw, io::TokenFormat::bytes})
    EXPECT_EQ(refusal(tokens, [&] { io::load_tokens({tokens, format, "uint16"}, 256); }),
              "token file " + tokens.string() + " is a FIFO, not a regular file");
}
