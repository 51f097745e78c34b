// `ropescope attn`: dumps attention maps of chosen layers and heads over a
// token window (the paper's Figure 5): DIR/attn_probs.npy [n_maps, rows,
// columns], optionally attn_scores.npy and virtual_imaginary.npy, a
// manifest.json naming layer, head, kind and window of every map, and a JSON
// sidecar per array. The forward runs on tokens 0 .. start+length-1 (positions
// before the window shape it), the maps keep the window's rows.
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/attention_maps.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "core/memory.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/npy.hpp"

namespace ropescope::cli {
namespace {

struct AttnOptions {
  ModelArgs model;
  std::vector<int> layers, heads;
  long start = 0, length = 16;
  bool full_rows = false, scores = false, virtual_imaginary = false;
  std::string max_memory = "4G";
  std::string out;
};

// "4G", "512M", "100K" or a plain byte count (binary multiples).
std::uint64_t parse_bytes(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string suffix = used > 0 ? text.substr(used) : "";
  double unit = suffix.empty() ? 1 : suffix == "K" ? 1024.0 : suffix == "M" ? 1024.0 * 1024 : suffix == "G" ? 1024.0 * 1024 * 1024 : 0;
  if (used == 0 || unit == 0 || !(value * unit >= 1) || !(value * unit < 0x1p64))
    throw ArgumentError(fmt::format("--max-memory: '{}' is not a size from 1 byte to 16 EiB (e.g. 4G, 512M, 100000)", text));
  return static_cast<std::uint64_t>(value * unit);
}

// The output directory: created when missing (before any work, so an
// unusable path fails first) and removed again if the run leaves it empty.
class OutputDirectory {
 public:
  explicit OutputDirectory(const std::filesystem::path& dir) : dir_(dir) {
    if (dir.empty()) throw ArgumentError("--out DIR is required");
    std::error_code ec;
    created_ = std::filesystem::create_directory(dir, ec);
    if (ec || !std::filesystem::is_directory(dir))
      throw ArgumentError(fmt::format("--out '{}': cannot use it as the output directory{}", dir.string(),
                                      ec ? ": " + ec.message() : ": it exists and is not a directory"));
    if (created_) cleanup_ = io::InterruptCleanupPath(dir, io::InterruptCleanupPath::Kind::directory);
  }
  ~OutputDirectory() {
    std::error_code ignored;
    if (created_ && std::filesystem::is_empty(dir_, ignored)) std::filesystem::remove(dir_, ignored);
  }

 private:
  std::filesystem::path dir_;
  bool created_ = false;
  io::InterruptCleanupPath cleanup_;  // an interrupted run removes the directory it created
};

void run_attn(const AttnOptions& o) {
  const auto limit = parse_bytes(o.max_memory);
  if (o.start < 0) throw ArgumentError(fmt::format("--start must be >= 0, got {}", o.start));
  if (o.length < 1) throw ArgumentError(fmt::format("--length must be >= 1, got {}", o.length));
  const std::filesystem::path dir = o.out;
  OutputDirectory directory(dir);
  std::vector<std::filesystem::path> map_files{dir / "attn_probs.npy"};
  if (o.scores) map_files.push_back(dir / "attn_scores.npy");
  if (o.virtual_imaginary) map_files.push_back(dir / "virtual_imaginary.npy");
  auto targets = analysis::with_sidecars(map_files);
  targets.push_back(dir / "manifest.json");
  // Every output is checked and staged before the model is loaded.
  io::OutputTransaction outputs(targets, run_inputs(o.model));
  auto backend = open_backend(o.model);
  const auto& model = backend->model();
  const auto input = load_input(o.model, model.config.vocab_size);
  const auto& tokens = input.ids;
  analysis::RunRecord record("attn", *backend);

  analysis::MapRequest request{o.layers, o.heads, o.start, o.length, o.full_rows, o.scores, o.virtual_imaginary};
  analysis::AttentionMapRecorder recorder(model, request, static_cast<long>(tokens.size()));
  const auto& r = recorder.request();
  if (recorder.bytes_needed() > limit)
    throw ArgumentError(fmt::format("the maps would need {} ({} maps x {} x {} x 4 bytes x {} array(s)), above "
                                    "--max-memory {}: choose fewer layers / heads or a shorter window",
                                    format_bytes(recorder.bytes_needed()), recorder.maps().size(), r.rows(), r.columns(),
                                    r.arrays(), format_bytes(limit)));
  // The maps live in host memory beside the forward's own buffers (host ones on the CPU backend).
  auto options = base_forward_options(o.model);
  options.loss = false;  // only the attention is needed
  options.observer = &recorder;
  const std::uint64_t forward_host = backend->name() == "cpu" ? backend->forward_bytes(r.key_end(), options) : 0;
  const auto available = available_memory();
  if (recorder.bytes_needed() > available.bytes || forward_host > available.bytes - recorder.bytes_needed())
    throw ArgumentError(fmt::format("the maps ({}) and the forward pass over {} tokens ({}) need {}, more than the {} "
                                    "available ({}): choose fewer layers / heads or a shorter window",
                                    format_bytes(recorder.bytes_needed()), r.key_end(), format_bytes(forward_host),
                                    format_bytes(recorder.bytes_needed() + forward_host), format_bytes(available.bytes),
                                    available.source));
  recorder.allocate();

  analysis::Progress progress("attn", 1, o.model.quiet);
  backend->forward({std::vector<std::int32_t>(tokens.begin(), tokens.begin() + r.key_end())}, options);
  progress.advance(r.key_end());
  progress.finish();

  const nlohmann::json window = {{"start", r.start},
                                 {"length", r.length},
                                 {"full_rows", r.full_rows},
                                 {"query_positions", {r.start, r.key_end()}},
                                 {"key_positions", {r.key_begin(), r.key_end()}}};
  nlohmann::json maps = nlohmann::json::array();
  for (std::size_t i = 0; i < recorder.maps().size(); ++i) {
    const auto& m = recorder.maps()[i];
    maps.push_back({{"index", i}, {"layer", m.layer}, {"head", m.head.index}, {"kind", model::to_string(m.head.kind)},
                    {"query_head", m.head.query_head}, {"kv_head", m.head.kv_head}, {"window", window}});
  }
  const std::vector<std::uint64_t> shape{recorder.maps().size(), static_cast<std::uint64_t>(r.rows()),
                                         static_cast<std::uint64_t>(r.columns())};
  nlohmann::json arrays = {{"probabilities", "attn_probs.npy"}};
  if (r.scores) arrays["scores"] = "attn_scores.npy";
  if (r.virtual_imaginary) arrays["virtual_imaginary"] = "virtual_imaginary.npy";
  nlohmann::json manifest = {
      {"shape", shape},
      {"layout", "[map, query row, key column]: row i is query position query_positions[0] + i, column j key position "
                 "key_positions[0] + j; keys after the query are masked (probability 0, score -inf)"},
      {"arrays", arrays},
      {"window", window},
      {"maps", maps}};
  if (!input.labels.empty()) manifest["token_text"] = token_labels(input, r.key_begin(), r.key_end());
  record.fields()["tokens"] = input.description;
  record.fields()["window"] = window;
  record.fields()["maps"] = recorder.maps().size();
  record.fields()["shape"] = shape;

  auto write = [&](const std::string& name, const std::vector<float>& data) {
    const auto path = dir / name;
    io::write_npy<float>(outputs.output(path), data, shape);
    record.write_sidecar(outputs, path);
  };
  write("attn_probs.npy", recorder.probabilities());
  if (r.scores) write("attn_scores.npy", recorder.scores());
  if (r.virtual_imaginary) write("virtual_imaginary.npy", recorder.virtual_imaginary());
  outputs.write(dir / "manifest.json", manifest.dump(2) + "\n");
  outputs.commit();
}

}  // namespace

void add_attn_command(CLI::App& app) {
  auto o = std::make_shared<AttnOptions>();
  auto* cmd = app.add_subcommand("attn", "Dump attention maps of chosen layers and heads over a token window (Figure 5)");
  add_model_options(cmd, o->model);
  cmd->add_option("--layers", o->layers, "layers to dump, comma-separated (default: all)")->delimiter(',');
  cmd->add_option("--heads", o->heads, "attention heads to dump in each layer, comma-separated (default: all)")->delimiter(',');
  cmd->add_option("--start", o->start, "first query position of the window")->capture_default_str();
  cmd->add_option("--length", o->length, "window length (rows; and columns unless --full-rows)")->capture_default_str();
  cmd->add_flag("--full-rows", o->full_rows, "keep every key 0 .. start+length-1, not only the square window");
  cmd->add_flag("--scores", o->scores, "also dump the raw pre-softmax scores (attn_scores.npy)");
  cmd->add_flag("--virtual-imaginary", o->virtual_imaginary,
                "vanilla RoPE models: also dump the virtual imaginary scores (virtual_imaginary.npy)");
  cmd->add_option("--max-memory", o->max_memory, "refuse maps larger than this (e.g. 4G, 512M)")->capture_default_str();
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  cmd->callback([o] { run_attn(*o); });
}

}  // namespace ropescope::cli
