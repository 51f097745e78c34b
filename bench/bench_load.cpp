// Checkpoint loading cost against reading the same bytes: `cat FILES > /dev/null`
// and a read() loop, timed in the same run as load_model (mmap + full header and
// index validation + config + checked Weights views), and as load_model plus one
// touch per 4 KiB page (what first use of every weight costs on top).
//
//   bench_load [MODEL_DIR] [--repeat N]
// Without MODEL_DIR it writes a ~1 GB BF16 Llama checkpoint in two shards to a
// temporary directory (removed at exit). A bench, not a test: nothing asserts.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/safetensors_writer.hpp"
#include "model/weights.hpp"

using namespace ropescope;

namespace {

// ~1.02e9 bytes: vocab 32000, hidden 2048, 8 layers, 16 q / 8 kv heads, d 128, MLP 5632, BF16.
const nlohmann::json kConfig = {
    {"model_type", "llama"},      {"vocab_size", 32000},        {"hidden_size", 2048},
    {"intermediate_size", 5632},  {"num_hidden_layers", 8},      {"num_attention_heads", 16},
    {"num_key_value_heads", 8},   {"head_dim", 128},            {"rms_norm_eps", 1e-5},
    {"rope_theta", 10000.0},      {"max_position_embeddings", 4096}, {"tie_word_embeddings", false},
    {"torch_dtype", "bfloat16"},  {"rope_config", {{"imag", false}}}};

std::vector<io::TensorSpec> tensor_specs() {
  const std::uint64_t V = 32000, h = 2048, I = 5632, q = 16 * 128, kv = 8 * 128;
  std::vector<io::TensorSpec> specs = {{"model.embed_tokens.weight", io::Dtype::BF16, {V, h}}};
  for (int i = 0; i < 8; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    specs.push_back({p + "input_layernorm.weight", io::Dtype::BF16, {h}});
    specs.push_back({p + "self_attn.q_proj.weight", io::Dtype::BF16, {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", io::Dtype::BF16, {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", io::Dtype::BF16, {kv, h}});
    specs.push_back({p + "self_attn.o_proj.weight", io::Dtype::BF16, {h, q}});
    specs.push_back({p + "post_attention_layernorm.weight", io::Dtype::BF16, {h}});
    specs.push_back({p + "mlp.gate_proj.weight", io::Dtype::BF16, {I, h}});
    specs.push_back({p + "mlp.up_proj.weight", io::Dtype::BF16, {I, h}});
    specs.push_back({p + "mlp.down_proj.weight", io::Dtype::BF16, {h, I}});
  }
  specs.push_back({"model.norm.weight", io::Dtype::BF16, {h}});
  specs.push_back({"lm_head.weight", io::Dtype::BF16, {V, h}});
  return specs;
}

std::uint64_t bytes_of(const io::TensorSpec& s) {
  std::uint64_t n = io::dtype_size(s.dtype);
  for (auto d : s.shape) n *= d;
  return n;
}

// Writes the synthetic checkpoint (two shards + index + config) into `dir`.
void write_checkpoint(const std::filesystem::path& dir) {
  std::vector<std::uint16_t> pattern(1 << 22);  // 8 MiB of finite BF16 values, reused
  std::uint32_t state = 12345;
  for (auto& v : pattern) {
    state = state * 1664525u + 1013904223u;
    v = io::float_to_bf16(static_cast<float>(static_cast<int>(state >> 8) - (1 << 23)) / float(1 << 29));
  }
  const auto chunk = std::as_bytes(std::span(pattern));
  const auto specs = tensor_specs();
  const std::size_t split = specs.size() / 2;
  nlohmann::json weight_map = nlohmann::json::object();
  for (int s = 0; s < 2; ++s) {
    const std::string shard = fmt::format("model-{:05d}-of-00002.safetensors", s + 1);
    std::vector<io::TensorSpec> part(specs.begin() + (s ? split : 0), s ? specs.end() : specs.begin() + split);
    io::SafetensorsWriter writer(dir / shard, part, {{"format", "pt"}});
    for (const auto& t : part) {
      weight_map[t.name] = shard;
      for (std::uint64_t left = bytes_of(t); left > 0;) {
        const std::uint64_t n = std::min<std::uint64_t>(left, chunk.size());
        writer.write(chunk.first(n));
        left -= n;
      }
    }
    writer.commit();
  }
  io::write_file_atomic(dir / "model.safetensors.index.json", nlohmann::json{{"weight_map", weight_map}}.dump(1));
  io::write_file_atomic(dir / "config.json", kConfig.dump(2));
}

double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path dir;
  int repeat = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--repeat" && i + 1 < argc) repeat = std::max(1, std::atoi(argv[++i]));
    else dir = arg;
  }
  bool generated = false;
  if (dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "ropescope-bench-load-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) return 1;
    dir = pattern;
    generated = true;
    fmt::print("writing a synthetic checkpoint to {} ...\n", dir.string());
    fmt::print("  written in {:.2f} s\n", seconds([&] { write_checkpoint(dir); }));
  }

  std::vector<std::filesystem::path> files;
  std::uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") files.push_back(e.path()), total += e.file_size();
  std::sort(files.begin(), files.end());
  std::string cat = "cat";
  for (const auto& f : files) cat += " '" + f.string() + "'";
  cat += " > /dev/null";

  std::vector<char> buffer(1 << 20);
  auto read_all = [&] {
    for (const auto& f : files) {
      const int fd = ::open(f.c_str(), O_RDONLY);
      while (::read(fd, buffer.data(), buffer.size()) > 0) {
      }
      ::close(fd);
    }
  };
  volatile std::uint64_t sink = 0;
  auto load_and_touch = [&] {
    const model::Model m = model::load_model(dir);
    std::uint64_t sum = 0;
    for (const auto& f : m.checkpoint->files())
      for (const auto& t : f->header().tensors) {
        const auto bytes = f->tensor(t.name).bytes();
        for (std::size_t at = 0; at < bytes.size(); at += 4096) sum += static_cast<unsigned char>(bytes[at]);
      }
    sink = sink + sum;
  };

  if (std::system(cat.c_str()) != 0) return 1;  // warm the page cache: every timing below reads from memory
  std::vector<double> t_cat, t_read, t_load, t_touch;
  for (int r = 0; r < repeat; ++r) {
    t_cat.push_back(seconds([&] {
      if (std::system(cat.c_str()) != 0) std::exit(1);
    }));
    t_read.push_back(seconds(read_all));
    t_load.push_back(seconds([&] { const model::Model m = model::load_model(dir); }));
    t_touch.push_back(seconds(load_and_touch));
  }
  const double cat_s = median(t_cat);
  fmt::print("checkpoint: {} ({} files, {:.3f} GB), page cache warm, median of {}\n", dir.string(), files.size(),
             total / 1e9, repeat);
  fmt::print("  cat FILES > /dev/null        {:9.3f} ms   1.000 x cat   ({:.2f} GB/s)\n", cat_s * 1e3, total / cat_s / 1e9);
  fmt::print("  read() loop, 1 MiB buffer    {:9.3f} ms   {:.3f} x cat\n", median(t_read) * 1e3, median(t_read) / cat_s);
  fmt::print("  load_model (map + validate)  {:9.3f} ms   {:.4f} x cat\n", median(t_load) * 1e3, median(t_load) / cat_s);
  fmt::print("  load_model + touch each page {:9.3f} ms   {:.3f} x cat\n", median(t_touch) * 1e3, median(t_touch) / cat_s);
  if (generated) std::filesystem::remove_all(dir);
  return 0;
}
