// `ropescope info MODEL_DIR`: the architecture of a checkpoint as ropescope
// reads it (family and every feature that differs from Llama, windows and RoPE
// per layer, variant, heads and their real/imaginary split, GQA, RoPE,
// parameter counts, KV-cache size, dtype, files); --json for machines.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "io/run_metadata.hpp"
#include "model/head_layout.hpp"
#include "model/model_info.hpp"

namespace ropescope::cli {

namespace {

std::string variant_description(model::Variant v) {
  switch (v) {
    case model::Variant::rope: return "rope (vanilla RoPE)";
    case model::Variant::ec: return "ec (RoPE++ equal cache, imag2)";
    case model::Variant::eh: return "eh (RoPE++ equal heads, imag1)";
  }
  return "?";
}

std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void print_text(const nlohmann::json& j) {
  const auto& heads = j["attention_heads"];
  fmt::print("model             {}\n", j["directory"].get<std::string>());
  const auto& arch = j["architecture"];
  fmt::print("family            {}{}\n", j["family"].get<std::string>(),
             j["model_type"] != j["family"] ? fmt::format(" (text part of a {} checkpoint)", j["model_type"].get<std::string>())
                                            : std::string());
  fmt::print("norms             {} eps {}, {}\n", arch["norm"]["kind"].get<std::string>(), arch["norm"]["eps"].dump(),
             arch["block"].get<std::string>());
  fmt::print("MLP               {} {}{}\n", arch["mlp"]["gated"].get<bool>() ? "gated" : "plain",
             arch["mlp"]["activation"].get<std::string>(), arch["mlp"]["bias"].get<bool>() ? " with biases" : "");
  fmt::print("attention scale   {}\n", arch["attention"]["scale"].dump());
  for (const auto& feature : arch["features"]) fmt::print("feature           {}\n", feature.get<std::string>());
  fmt::print("variant           {} [from {}]\n", variant_description(model::parse_variant(j["variant"])),
             j["variant_source"].get<std::string>());
  fmt::print("layers            {}\n", j["layers"].get<int>());
  fmt::print("hidden size       {} (MLP {}, vocab {})\n", j["hidden_size"].get<int>(), j["intermediate_size"].get<int>(),
             j["vocab_size"].get<int>());
  fmt::print("query heads       {} (config.json: num_attention_heads {}, num_key_value_heads {})\n",
             j["query_heads"].get<int>(), j["config_heads"]["num_attention_heads"].get<int>(),
             j["config_heads"]["num_key_value_heads"].get<int>());
  if (arch.contains("local_rope"))
    fmt::print("local RoPE        base {}, scaling {} (sliding-window layers)\n", arch["local_rope"]["base"].dump(),
               arch["local_rope"]["scaling"].get<std::string>());
  if (heads["imaginary"].get<int>() > 0)
    fmt::print("attention heads   {}: {} real + {} imaginary (head 2j real, 2j+1 imaginary, of query head j)\n",
               heads["total"].get<int>(), heads["real"].get<int>(), heads["imaginary"].get<int>());
  else
    fmt::print("attention heads   {}: all real\n", heads["total"].get<int>());
  fmt::print("KV heads          {} (GQA group: {} attention heads per KV head)\n", j["kv_heads"].get<int>(),
             j["gqa_group_size"].get<int>());
  fmt::print("head dim          {}\n", j["head_dim"].get<int>());
  const auto& rope = j["rope"];
  fmt::print("RoPE              base {}, rotary dims {} of {}, scaling {}, max positions {}\n", rope["base"].dump(),
             rope["rotary_dim"].get<int>(), j["head_dim"].get<int>(),
             rope["scaling"]["type"].get<std::string>() == "none" ? std::string("none") : rope["scaling"].dump(),
             rope["max_position_embeddings"].get<int>());
  fmt::print("dtype             {}\n", j["dtype"].get<std::string>());
  const auto& p = j["parameters"];
  fmt::print("parameters        {} total: embedding {}, attention {}, MLP {}, norms {}, lm_head {}\n",
             grouped(p["total"]), grouped(p["embedding"]), grouped(p["attention"]), grouped(p["mlp"]),
             grouped(p["norm"]),
             j["tie_word_embeddings"].get<bool>() ? std::string("tied to embedding") : grouped(p["lm_head"]));
  fmt::print("KV cache          {} bytes per token\n", grouped(j["kv_cache_bytes_per_token"]));
  for (const auto& f : j["files"])
    fmt::print("file              {} ({} bytes, {} tensors)\n", f["name"].get<std::string>(), grouped(f["bytes"]),
               f["tensors"].get<std::size_t>());
}

}  // namespace

void add_info_command(CLI::App& app, const CommandLine& argv) {
  struct Options {
    std::string directory;
    std::string variant;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("info", "Print a checkpoint's architecture (variant, heads, RoPE, sizes)");
  cmd->add_option("MODEL_DIR", options->directory, "Hugging Face model directory (config.json + safetensors)")
      ->required();
  cmd->add_option("--variant", options->variant,
                  "force the RoPE variant: rope, ec (imag2) or eh (imag1); an error if config.json or the tensor "
                  "shapes disagree");
  cmd->add_flag("--json", options->json, "Print JSON instead of text");
  cmd->callback([options, &argv] {
    model::LoadOptions load;
    if (!options->variant.empty()) load.variant = model::parse_variant(options->variant);
    const model::Model m = model::load_model(options->directory, load);
    nlohmann::json j = model::model_info(m);
    for (const auto& w : m.warnings) fmt::print(stderr, "ropescope: warning: {}\n", w);
    if (options->json) {
      j["run"] = io::run_metadata("info", argv);
      fmt::print("{}\n", j.dump(2));
    } else {
      print_text(j);
    }
  });
}

}  // namespace ropescope::cli
