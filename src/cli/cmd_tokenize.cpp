// `ropescope tokenize TOKENIZER --text FILE --out IDS.npy`: encodes a UTF-8
// text file exactly as HF tokenizers' Tokenizer.from_file(...).encode(text)
// does and writes the ids as a 1-D .npy (int32, or uint32 when the vocabulary
// reaches 2^31), with a JSON sidecar; a summary (bytes, tokens, bytes/token,
// speed) goes to stderr.
#include <fmt/format.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/npy.hpp"
#include "io/run_metadata.hpp"
#include "tokenizer/text_input.hpp"

namespace ropescope::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, out;
  bool no_special = false, replace_invalid = false, quiet = false;
};

void run_tokenize(const TokenizeOptions& o, const CommandLine& argv) {
  if (!o.out.ends_with(".npy")) throw ArgumentError(fmt::format("--out '{}' must end in .npy", o.out));
  io::OutputTransaction outputs({o.out, o.out + ".json"}, {{o.text, "--text"}, {o.tokenizer, "tokenizer"}});
  const auto load_start = std::chrono::steady_clock::now();
  const auto tokenizer = tokenizer::Tokenizer::load(o.tokenizer);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  auto text = tokenizer::tokenize_file(tokenizer, o.text, !o.no_special, o.replace_invalid);
  const auto& ids = text.encoding.ids;

  const bool wide = tokenizer.id_limit() > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max());
  if (wide) {
    io::write_npy<std::uint32_t>(outputs.output(o.out), ids, {ids.size()});
  } else {
    std::vector<std::int32_t> narrow(ids.begin(), ids.end());
    io::write_npy<std::int32_t>(outputs.output(o.out), narrow, {ids.size()});
  }
  auto sidecar = io::run_metadata("tokenize", argv);
  sidecar["tokenizer"] = {{"path", tokenizer.origin()}, {"pipeline", tokenizer.describe()},
                          {"id_limit", tokenizer.id_limit()}, {"load_seconds", load_seconds}};
  sidecar["text"] = {{"path", o.text}, {"file_bytes", text.file_bytes}, {"text_bytes", text.text_bytes},
                     {"invalid_utf8_replaced", text.replaced}};
  sidecar["add_special_tokens"] = !o.no_special;
  sidecar["tokens"] = ids.size();
  sidecar["dtype"] = wide ? "uint32" : "int32";
  sidecar["semantics"] = "ids of tokenizers.Tokenizer.from_file(tokenizer).encode(text, add_special_tokens)"
                         " (HF tokenizers), text read as bytes (no newline translation)";
  sidecar["encode_seconds"] = text.seconds;
  outputs.write(o.out + ".json", sidecar.dump(2) + "\n");
  outputs.commit();
  if (text.replaced > 0)
    fmt::print(stderr, "tokenize: replaced {} invalid UTF-8 sequence(s) by U+FFFD\n", text.replaced);
  if (!o.quiet)
    fmt::print(stderr, "tokenize: {} bytes -> {} tokens ({:.3f} bytes/token); load {:.3f} s, encode {:.3f} s ({:.1f} MB/s)\n",
               text.text_bytes, ids.size(), ids.empty() ? 0.0 : double(text.text_bytes) / double(ids.size()),
               load_seconds, text.seconds, text.seconds > 0 ? text.text_bytes / text.seconds / 1e6 : 0.0);
}

}  // namespace

void add_tokenize_command(CLI::App& app, const CommandLine& argv) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "Encode a UTF-8 text file with a HF tokenizer.json (ids as HF tokenizers gives them)");
  cmd->add_option("tokenizer", o->tokenizer, "tokenizer.json, or a model directory holding one")->required();
  cmd->add_option("--text", o->text, "UTF-8 text file (read as bytes)")->required();
  cmd->add_option("-o,--out", o->out, "output .npy of the ids (+ .json sidecar)")->required();
  cmd->add_flag("--no-special", o->no_special, "no special tokens (HF add_special_tokens=False)");
  cmd->add_flag("--replace-invalid", o->replace_invalid,
                "replace invalid UTF-8 by U+FFFD (as Python's errors=\"replace\") instead of refusing it");
  cmd->add_flag("-q,--quiet", o->quiet, "no summary on stderr");
  cmd->callback([o, &argv] { run_tokenize(*o, argv); });
}

}  // namespace ropescope::cli
