// Shared model options and backend selection (see model_options.hpp).
#include "cli/model_options.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <initializer_list>

#include "core/error.hpp"
#include "engine/engine.hpp"
#include "tokenizer/text_input.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::cli {

void add_model_options(CLI::App* cmd, ModelArgs& args) {
  cmd->add_option("model", args.model_dir, "HF model directory (config.json + *.safetensors)")->required();
  auto* tokens = cmd->add_option("-t,--tokens", args.tokens_path, "token file (.npy of int32/int64/uint16/uint32, or raw)");
  auto* text = cmd->add_option("--text", args.text_path, "UTF-8 text file, tokenized with the model's tokenizer.json");
  tokens->excludes(text);
  text->excludes(tokens);
  cmd->add_option("--tokenizer", args.tokenizer_path, "with --text: tokenizer.json or its directory (default: MODEL)");
  cmd->add_flag("--no-special", args.no_special, "with --text: no special tokens (HF add_special_tokens=False)");
  cmd->add_flag("--replace-invalid", args.replace_invalid,
                "with --text: replace invalid UTF-8 by U+FFFD (errors=\"replace\") instead of refusing it");
  cmd->add_flag("--bytes", args.bytes, "treat the token file as raw bytes, one token each (byte-level models)");
  cmd->add_option("--format", args.token_format, "token file format: npy, raw or bytes (default: from --bytes / extension)");
  cmd->add_option("--dtype", args.raw_dtype, "integer type of a raw token file: uint16, uint32, int32, int64")
      ->capture_default_str();
  cmd->add_option("--variant", args.variant, "force the RoPE variant: rope, ec (imag2) or eh (imag1); must agree with the checkpoint");
  cmd->add_option("--device", args.device, "backend: cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--tensor-parallel", args.tensor_parallel,
                  "split heads and MLP rows over N ranks: N GPUs through NCCL (--devices names them), or with "
                  "--device cpu N CPU ranks (the split's reference)");
  cmd->add_option("--world", args.world_file,
                  "rendezvous file of a tensor-parallel group over processes (on several hosts: on a filesystem they "
                  "share); every process runs the same command, N / P ranks each, and process 0 writes the outputs");
  cmd->add_option("--world-size", args.world_size, "with --world: the number of processes P (default: from mpirun or Slurm)");
  cmd->add_option("--world-rank", args.world_rank, "with --world: this process, 0 .. P-1 (default: from mpirun or Slurm)");
  cmd->add_option("--angles", args.angles, "RoPE angle precision: exact (float128 reduction) or hf (HF's float32)")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", args.quiet, "no progress on stderr");
}

namespace {

// The model's warnings and the backend's notices, on stderr unless --quiet
// (the sidecars record them either way).
std::unique_ptr<backend::Backend> announced(std::unique_ptr<backend::Backend> backend, bool quiet) {
  if (!quiet) {
    for (const auto& w : backend->model().warnings) fmt::print(stderr, "ropescope: warning: {}\n", w);
    for (const auto& n : backend->notices()) fmt::print(stderr, "ropescope: note: {}\n", n);
  }
  return backend;
}

}  // namespace

void add_devices_option(CLI::App* cmd, ModelArgs& args) {
  cmd->add_option("--devices", args.devices,
                  "CUDA devices, all or 0,1,...: windows spread over them, each run whole on one (data parallel)");
}

namespace {

// The first of the environment variables `names` that is set, as an integer; -1 when none is.
int from_environment(std::initializer_list<const char*> names, const char* flag) {
  for (const char* name : names)
    if (const char* value = std::getenv(name)) {
      char* end = nullptr;
      const long v = std::strtol(value, &end, 10);
      if (end == value || *end != '\0' || v < 0 || v > 1'000'000)
        throw ArgumentError(flag, fmt::format("the environment's {}='{}' is not a process count or number", name, value));
      return static_cast<int>(v);
    }
  return -1;
}

}  // namespace

backend::World world_of(const ModelArgs& args) {
  backend::World world;
  if (args.world_file.empty()) {
    if (args.world_size != 0 || args.world_rank != -1)
      throw ArgumentError(args.world_size != 0 ? "world-size" : "world-rank",
                          "describes a group over processes: give its rendezvous file with --world");
    return world;
  }
  world.rendezvous = args.world_file;
  world.processes = args.world_size > 0
                        ? args.world_size
                        : from_environment({"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "PMI_SIZE"}, "world-size");
  world.process = args.world_rank >= 0
                      ? args.world_rank
                      : from_environment({"OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK"}, "world-rank");
  if (world.processes < 1)
    throw ArgumentError("world-size", "the number of processes: give it, or start the processes with mpirun or srun");
  if (world.process < 0)
    throw ArgumentError("world-rank", "this process's number: give it, or start the processes with mpirun or srun");
  if (world.process >= world.processes)
    throw ArgumentError("world-rank", fmt::format("{} is not a process of {} (0 .. {})", world.process,
                                                    world.processes, world.processes - 1));
  return world;
}

bool writes_outputs(const ModelArgs& args) { return world_of(args).process == 0; }

std::unique_ptr<backend::Backend> open_backend(const ModelArgs& args) {
  return announced(
      engine::open_backend(args.model_dir, {.device = args.device,
                                            .variant = args.variant,
                                            .devices = args.devices,
                                            .tensor_parallel = args.tensor_parallel,
                                            .world = world_of(args)}),
      args.quiet || !writes_outputs(args));
}

namespace {

InputTokens tokenize_input(const ModelArgs& args, int vocab_size) {
  if (args.bytes || !args.token_format.empty())
    throw ArgumentError("--text takes no --bytes / --format (those describe a --tokens file)");
  const std::string tokenizer_path = args.tokenizer_path.empty() ? args.model_dir : args.tokenizer_path;
  const auto tokenizer = tokenizer::Tokenizer::load(tokenizer_path);
  auto text = tokenizer::tokenize_file(tokenizer, args.text_path, !args.no_special, args.replace_invalid);
  if (text.replaced > 0)
    fmt::print(stderr, "ropescope: --text '{}': replaced {} invalid UTF-8 sequence(s) by U+FFFD\n", args.text_path,
               text.replaced);
  InputTokens input;
  const auto& ids = text.encoding.ids;
  if (ids.empty()) throw ArgumentError(fmt::format("--text '{}' gives no tokens", args.text_path));
  input.ids = tokenizer::model_token_ids(tokenizer, ids, vocab_size, "text", "'" + args.text_path + "': ");
  input.labels.reserve(ids.size());
  for (const std::uint32_t id : ids) input.labels.push_back(tokenizer.token_text(id));
  input.bytes = std::move(text.encoding.bytes);
  input.description = {{"text", args.text_path},
                       {"tokenizer", tokenizer.origin()},
                       {"tokenizer_pipeline", tokenizer.describe()},
                       {"add_special_tokens", !args.no_special},
                       {"text_bytes", text.text_bytes},
                       {"invalid_utf8_replaced", text.replaced},
                       {"count", input.ids.size()},
                       {"byte_level", false}};
  return input;
}

}  // namespace

InputTokens load_input(const ModelArgs& args, int vocab_size) {
  if (!args.text_path.empty()) return tokenize_input(args, vocab_size);
  if (args.tokens_path.empty()) throw ArgumentError("give the input as --tokens FILE or --text FILE");
  if (!args.tokenizer_path.empty() || args.no_special || args.replace_invalid)
    throw ArgumentError("--tokenizer, --no-special and --replace-invalid go with --text");
  InputTokens input;
  input.ids = load_input_tokens(args, vocab_size);
  input.byte_level = args.bytes || args.token_format == "bytes";
  input.description = {{"path", args.tokens_path}, {"count", input.ids.size()}, {"byte_level", input.byte_level}};
  return input;
}

nlohmann::json token_labels(const InputTokens& input, long begin, long end) {
  nlohmann::json ids = nlohmann::json::array(), texts = nlohmann::json::array();
  for (long p = begin; p < end; ++p) {
    std::size_t replaced;
    ids.push_back(input.ids[p]);
    texts.push_back(tokenizer::replace_invalid_utf8(input.labels[p], replaced));
  }
  return {{"first_position", begin}, {"ids", ids}, {"text", texts}};
}

std::vector<std::int32_t> load_input_tokens(const ModelArgs& args, int vocab_size) {
  if (!args.text_path.empty()) return tokenize_input(args, vocab_size).ids;
  if (args.tokens_path.empty()) throw ArgumentError("give the input as --tokens FILE or --text FILE");
  io::TokenInput input;
  input.path = args.tokens_path;
  input.raw_dtype = args.raw_dtype;
  if (!args.token_format.empty()) input.format = io::parse_token_format(args.token_format);
  else if (args.bytes) input.format = io::TokenFormat::bytes;
  else if (input.path.extension() == ".npy") input.format = io::TokenFormat::npy;
  else input.format = io::TokenFormat::raw;
  if (args.bytes && input.format != io::TokenFormat::bytes)
    throw ArgumentError("--bytes contradicts --format " + args.token_format);
  return io::load_tokens(input, vocab_size);
}

std::vector<io::RunInput> run_inputs(const ModelArgs& args) {
  std::vector<io::RunInput> inputs{{std::filesystem::path(args.model_dir) / "config.json", "model config"}};
  if (!args.tokens_path.empty()) inputs.push_back({args.tokens_path, "--tokens"});
  if (!args.text_path.empty()) inputs.push_back({args.text_path, "--text"});
  if (!args.tokenizer_path.empty()) inputs.push_back({args.tokenizer_path, "--tokenizer"});
  return inputs;
}

backend::ForwardOptions base_forward_options(const ModelArgs& args) {
  backend::ForwardOptions o;
  o.angles = model::parse_angle_precision(args.angles);
  return o;
}

}  // namespace ropescope::cli
