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

#include <optional>

#include "analysis/attention_maps.hpp"
#include "analysis/run_record.hpp"
#include "cli/commands.hpp"
#include "cli/model_options.hpp"
#include "cli/terminal_progress.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "io/atomic_file.hpp"

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

void run_attn(const AttnOptions& o, const CommandLine& argv) {
  const auto limit = parse_memory_size(o.max_memory, "max_memory");
  const std::string& devices = o.model.devices;
  if (o.model.tensor_parallel < 2 && (devices == "all" || devices.find(',') != std::string::npos))
    throw ArgumentError("devices", fmt::format("'{}': attn maps one window, on one device: name one, or split the model "
                                               "over several with --tensor-parallel N",
                                               devices));
  if (o.start < 0) throw ArgumentError("start", fmt::format("must be >= 0, got {}", o.start));
  if (o.length < 1) throw ArgumentError("length", fmt::format("must be >= 1, got {}", o.length));
  const std::filesystem::path dir = o.out;
  const analysis::MapRequest request{o.layers, o.heads, o.start, o.length, o.full_rows, o.scores, o.virtual_imaginary};
  // Every output is checked and staged before the model is loaded (by process 0 of a group over processes).
  const bool writes = writes_outputs(o.model);
  std::optional<OutputDirectory> directory;
  std::optional<io::OutputTransaction> outputs;
  if (writes) {
    directory.emplace(dir);
    outputs.emplace(analysis::AttentionMaps::output_targets(dir, request), run_inputs(o.model));
  }
  auto backend = open_backend(o.model);
  const auto input = load_input(o.model, backend->model().config.vocab_size);
  analysis::RunRecord record("attn", argv, *backend);
  const auto maps = [&] {
    TerminalProgress progress("attn", o.model.quiet || !writes);
    return analysis::record_attention_maps(*backend, input.ids, request, limit, base_forward_options(o.model).angles,
                                           progress.callback());
  }();
  if (!writes) return;
  record.fields()["tokens"] = input.description;
  const auto& r = maps.request;
  maps.write(*outputs, dir, record,
             input.labels.empty() ? nlohmann::json(nullptr) : token_labels(input, r.key_begin(), r.key_end()));
  outputs->commit();
}

}  // namespace

void add_attn_command(CLI::App& app, const CommandLine& argv) {
  auto o = std::make_shared<AttnOptions>();
  auto* cmd = app.add_subcommand("attn", "Dump attention maps of chosen layers and heads over a token window (Figure 5)");
  add_model_options(cmd, o->model);
  cmd->add_option("--devices", o->model.devices,
                  "CUDA devices: the one to run on, or with --tensor-parallel N the N GPUs of the split (one window: "
                  "no data parallel)");
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
  cmd->callback([o, &argv] { run_attn(*o, argv); });
}

}  // namespace ropescope::cli
