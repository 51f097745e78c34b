// Options shared by the model subcommands (attn, profile, ppl): the model
// directory, the token input, the variant override, the device, the angle
// precision and --quiet; and opening the model on the chosen backend.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "backend/backend.hpp"
#include "io/tokens.hpp"

namespace ropescope::cli {

struct ModelArgs {
  std::string model_dir;
  std::string tokens_path;
  std::string token_format;  // npy | raw | bytes (default: bytes with --bytes, else by extension)
  bool bytes = false;
  std::string raw_dtype = "uint32";
  std::string variant;        // rope | ec | eh override
  std::string device = "auto";
  std::string angles = "exact";
  bool quiet = false;
};

// Adds MODEL_DIR (positional), --tokens, --bytes, --format, --dtype, --variant,
// --device, --angles, --quiet to `cmd`.
void add_model_options(CLI::App* cmd, ModelArgs& args);

// Loads the model and creates the backend `args.device` names. auto: CUDA when
// built and a device is present, else CPU. Throws ArgumentError for a device
// this build cannot provide.
std::unique_ptr<backend::Backend> open_backend(const ModelArgs& args);

// The token ids of --tokens, checked against the model's vocabulary.
std::vector<std::int32_t> load_input_tokens(const ModelArgs& args, int vocab_size);

// The forward options the shared flags imply (angle precision).
backend::ForwardOptions base_forward_options(const ModelArgs& args);

}  // namespace ropescope::cli
