// Encodes every document of a JSONL file (one JSON string per line) with a
// tokenizer.json, for the corpus comparison against HF tokenizers
// (compare_corpus.py) and the speed benchmark (bench/tokenizer_speed.py).
//   tokenize_documents TOKENIZER DOCS.jsonl [--out IDS.bin] [--threads N] [--no-special] [--repeat R]
// IDS.bin: per document a little-endian uint32 count, then the ids. Prints one
// JSON line: load seconds, encode seconds (best of R), bytes, tokens, MB/s.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.hpp"

using ropescope::tokenizer::Tokenizer;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenize_documents TOKENIZER DOCS.jsonl [--out IDS.bin] [--threads N] [--no-special] [--repeat R]\n");
    return 2;
  }
  std::string out_path;
  int threads = 1, repeat = 1;
  bool add_special = true;
  for (int i = 3; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out_path = argv[++i];
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else if (a == "--no-special") add_special = false;
    else {
      std::fprintf(stderr, "tokenize_documents: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  try {
    std::vector<std::string> docs;
    std::ifstream in(argv[2]);
    for (std::string line; std::getline(in, line);) docs.push_back(nlohmann::json::parse(line).get<std::string>());
    std::size_t bytes = 0;
    for (const auto& d : docs) bytes += d.size();

    auto t0 = std::chrono::steady_clock::now();
    const Tokenizer tokenizer = Tokenizer::load(argv[1]);
    const double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::vector<std::vector<std::uint32_t>> ids(docs.size());
    double best = 1e300;
    for (int r = 0; r < repeat; ++r) {
      // Documents are shared out dynamically; each thread keeps its own BPE cache (as HF's per-thread cache).
      std::atomic<std::size_t> next{0};
      auto worker = [&] {
        Tokenizer::Cache cache;
        for (std::size_t i; (i = next.fetch_add(1)) < docs.size();) ids[i] = tokenizer.encode(docs[i], add_special, &cache);
      };
      auto start = std::chrono::steady_clock::now();
      std::vector<std::thread> pool;
      for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
      worker();
      for (auto& t : pool) t.join();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::size_t tokens = 0;
    for (const auto& v : ids) tokens += v.size();
    if (!out_path.empty()) {
      std::ofstream out(out_path, std::ios::binary);
      for (const auto& v : ids) {
        std::uint32_t n = static_cast<std::uint32_t>(v.size());
        out.write(reinterpret_cast<const char*>(&n), 4);
        out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
      }
      if (!out) throw std::runtime_error("cannot write " + out_path);
    }
    fmt::print("{}\n", nlohmann::json{{"load_seconds", load}, {"encode_seconds", best}, {"documents", docs.size()},
                                      {"bytes", bytes}, {"tokens", tokens}, {"threads", threads},
                                      {"mb_per_s", bytes / best / 1e6}}.dump());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenize_documents: %s\n", e.what());
    return 1;
  }
  return 0;
}
