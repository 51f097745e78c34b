// libFuzzer target for the tokenizer.json loader (scripts/run-fuzz.sh, clang,
// ASan and UBSan): malformed or unsupported input may only raise FormatError;
// an accepted tokenizer must encode a fixed text to ids below its id limit.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const auto tokenizer = ropescope::tokenizer::Tokenizer::from_json(json, "fuzz");
    for (auto id : tokenizer.encode("Hello <s> world 123 \xC3\xA9\xE2\x96\x81 \xF0\x9F\x98\x80 don't\r\n\n  x"))
      if (id >= tokenizer.id_limit()) __builtin_trap();
  } catch (const ropescope::FormatError&) {
    // Rejected input: the expected outcome for most of them.
  } catch (const ropescope::Error&) {
    // A loadable file whose use fails by HF's own rules (an unk_token missing from the vocabulary).
  }
  return 0;
}
