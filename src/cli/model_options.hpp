// Options shared by the model subcommands (attn, profile, ppl): the model
// directory, the token input (a token file, or --text tokenized with the
// model's tokenizer.json), the variant override, the device, the angle
// precision and --quiet; and opening the model on the chosen backend.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backend/backend.hpp"
#include "backend/rendezvous.hpp"
#include "io/atomic_file.hpp"
#include "io/tokens.hpp"

namespace ropescope::cli {

struct ModelArgs {
  std::string model_dir;
  std::string tokens_path;
  std::string token_format;  // npy | raw | bytes (default: bytes with --bytes, else by extension)
  bool bytes = false;
  std::string raw_dtype = "uint32";
  std::string text_path;       // --text FILE, instead of --tokens
  std::string tokenizer_path;  // --tokenizer PATH (default: the model directory)
  bool no_special = false;     // --no-special: add_special_tokens=false
  bool replace_invalid = false;
  std::string variant;        // rope | ec | eh override
  std::string device = "auto";
  std::string devices;  // --devices: CUDA devices for data parallel (engine::OpenOptions::devices)
  int tensor_parallel = 0;  // --tensor-parallel N (engine::OpenOptions::tensor_parallel)
  // --world FILE, --world-size P, --world-rank R: a tensor-parallel group over
  // processes (engine::OpenOptions::world); size and rank default to the
  // launcher's environment (world_of).
  std::string world_file;
  int world_size = 0, world_rank = -1;
  std::string angles = "exact";
  bool quiet = false;
};

// Adds MODEL_DIR (positional), --tokens, --bytes, --format, --dtype, --text,
// --tokenizer, --no-special, --replace-invalid, --variant, --device,
// --tensor-parallel, --world, --world-size, --world-rank, --angles, --quiet to `cmd`.
void add_model_options(CLI::App* cmd, ModelArgs& args);

// The process group of --world: size and rank from --world-size / --world-rank,
// else from the launcher's environment (mpirun: OMPI_COMM_WORLD_SIZE / _RANK;
// Slurm: SLURM_NTASKS / SLURM_PROCID; MPICH and others: PMI_SIZE / PMI_RANK).
// One process without --world. Throws ArgumentError naming the flag for a
// size or rank given without --world, or one that cannot be found.
backend::World world_of(const ModelArgs& args);

// Whether this process writes the outputs (and prints): every process but
// 0 of a group over processes computes the same results and writes nothing.
bool writes_outputs(const ModelArgs& args);

// The model's input: token ids and, for --text, what each token stands for.
struct InputTokens {
  std::vector<std::int32_t> ids;
  bool byte_level = false;            // one token per byte (--bytes / --format bytes)
  std::vector<std::uint32_t> bytes;   // --text: text bytes per token (tokenizer::Encoding::bytes)
  std::vector<std::string> labels;    // --text: each token's text (for attention-map labels)
  nlohmann::json description;         // for the sidecar: source, tokenizer, counts
};

// Reads --tokens, or tokenizes --text (refusing invalid UTF-8 unless
// --replace-invalid, and ids beyond the model's `vocab_size` embedding rows),
// before any forward pass.
InputTokens load_input(const ModelArgs& args, int vocab_size);

// Adds --devices (the analyses over many windows: ppl, profile).
void add_devices_option(CLI::App* cmd, ModelArgs& args);

// Loads the model on the backend `args.device` names (engine::open_backend)
// and shows the model's warnings and the backend's notices unless --quiet.
std::unique_ptr<backend::Backend> open_backend(const ModelArgs& args);

// For the manifest of attention maps: {"first_position", "ids", "text"} of
// positions [begin, end) of a --text input, each text valid UTF-8 (a token
// that is part of a character shows U+FFFD).
nlohmann::json token_labels(const InputTokens& input, long begin, long end);

// The token ids of --tokens or --text, checked against the model's vocabulary.
std::vector<std::int32_t> load_input_tokens(const ModelArgs& args, int vocab_size);

// The files a run reads (token or text file, tokenizer, the model's
// config.json), which no output may replace.
std::vector<io::RunInput> run_inputs(const ModelArgs& args);

// The forward options the shared flags imply (angle precision).
backend::ForwardOptions base_forward_options(const ModelArgs& args);

}  // namespace ropescope::cli
