// The rendezvous file of a group of processes (see rendezvous.hpp). Its text:
//   ropescope rendezvous 1
//   processes P
//   ranks N
//   id HEX          (the id's bytes, two hex digits each)
#include "backend/rendezvous.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.hpp"

namespace ropescope::backend {

void check_world(const World& w) {
  if (w.processes < 1) throw ArgumentError("world", fmt::format("{} processes (1 or more)", w.processes));
  if (w.process < 0 || w.process >= w.processes)
    throw ArgumentError("world", fmt::format("process {} of {} (0 .. {})", w.process, w.processes, w.processes - 1));
  if (!w.spans_processes()) return;
  if (w.rendezvous.empty()) throw ArgumentError("world", fmt::format("{} processes need a rendezvous file", w.processes));
  if (w.ranks < w.processes || w.ranks % w.processes != 0)
    throw ArgumentError("world", fmt::format("{} ranks do not divide among {} processes (each holds the same number of "
                                             "GPUs)",
                                             w.ranks, w.processes));
}

void publish_rendezvous(const World& w, std::span<const std::byte> id) {
  std::error_code ec;
  if (std::filesystem::exists(w.rendezvous, ec))
    throw Error(fmt::format("rendezvous file {} exists already (an earlier run's?): remove it, or name a new file, and "
                            "start every process again",
                            w.rendezvous.string()));
  std::string text = fmt::format("ropescope rendezvous 1\nprocesses {}\nranks {}\nid ", w.processes, w.ranks);
  for (std::byte b : id) text += fmt::format("{:02x}", static_cast<unsigned>(b));
  text += '\n';
  const auto staging = w.rendezvous.parent_path() / fmt::format(".{}.staging-{}", w.rendezvous.filename().string(), ::getpid());
  {
    std::ofstream out(staging, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::filesystem::remove(staging, ec);
      throw Error(fmt::format("rendezvous file {}: cannot write {}", w.rendezvous.string(), staging.string()));
    }
  }
  std::filesystem::rename(staging, w.rendezvous, ec);
  if (ec) {
    std::filesystem::remove(staging, ec);
    throw Error(fmt::format("rendezvous file {}: cannot rename the staged file onto it: {}", w.rendezvous.string(),
                            ec.message()));
  }
}

namespace {

// The id in a rendezvous file's text, checked against this process's world.
std::vector<std::byte> parse_rendezvous(const World& w, const std::string& text, std::size_t id_bytes) {
  const std::string file = w.rendezvous.string();
  std::istringstream in(text);
  std::string magic, word, hex;
  int version = 0, processes = 0, ranks = 0;
  std::getline(in, magic);
  in >> word >> processes;
  const bool processes_ok = word == "processes";
  in >> word >> ranks;
  const bool ranks_ok = word == "ranks";
  in >> word >> hex;
  if (magic.rfind("ropescope rendezvous ", 0) != 0 || !processes_ok || !ranks_ok || word != "id" || !in)
    throw FormatError(fmt::format("rendezvous file {}: not a ropescope rendezvous (expected the lines 'ropescope "
                                  "rendezvous 1', 'processes P', 'ranks N', 'id HEX')",
                                  file));
  version = std::atoi(magic.c_str() + 21);
  if (version != 1) throw FormatError(fmt::format("rendezvous file {}: version {}, this build reads 1", file, version));
  if (processes != w.processes || ranks != w.ranks)
    throw FormatError(fmt::format("rendezvous file {}: a group of {} processes and {} ranks; this process was started "
                                  "for {} and {}",
                                  file, processes, ranks, w.processes, w.ranks));
  if (hex.size() != 2 * id_bytes)
    throw FormatError(fmt::format("rendezvous file {}: an id of {} hex digits, expected {}", file, hex.size(), 2 * id_bytes));
  std::vector<std::byte> id(id_bytes);
  for (std::size_t i = 0; i < id_bytes; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1)
      throw FormatError(fmt::format("rendezvous file {}: '{}' in the id is not hex", file, hex.substr(2 * i, 2)));
    id[i] = static_cast<std::byte>(v);
  }
  return id;
}

}  // namespace

std::vector<std::byte> await_rendezvous(const World& w, std::size_t id_bytes, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    std::ifstream in(w.rendezvous, std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      return parse_rendezvous(w, text.str(), id_bytes);
    }
    if (std::chrono::steady_clock::now() - start > timeout)
      throw Error(fmt::format("process {} of {}: the rendezvous file {} did not appear within {:.0f} s: is process 0 "
                              "running, with the same file (on a filesystem both hosts see)?",
                              w.process, w.processes, w.rendezvous.string(), timeout.count() / 1000.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void withdraw_rendezvous(const World& w) {
  std::error_code ec;
  std::filesystem::remove(w.rendezvous, ec);
}

}  // namespace ropescope::backend
