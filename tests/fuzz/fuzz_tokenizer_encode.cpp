// libFuzzer target for the encoder (scripts/run-fuzz.sh, clang, ASan and
// UBSan): the first byte picks one of the trained fixtures of
// tests/data/tokenizers, the rest is the text. Invalid UTF-8 may only raise
// ArgumentError; valid text must give ids below the id limit whose bytes
// partition the text.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {
const char* const kFixtures[] = {"llama3_like", "qwen2_like", "olmo2_like", "neox_like", "starcoder2_like",
                                 "llama2_like", "phi3_like", "mistral_v03_like", "metaspace_always_like",
                                 "gemma_like", "affixes_like"};
constexpr std::size_t kCount = sizeof(kFixtures) / sizeof(kFixtures[0]);

const ropescope::tokenizer::Tokenizer& fixture(std::size_t index) {
  static std::vector<std::unique_ptr<ropescope::tokenizer::Tokenizer>> loaded(kCount);
  if (!loaded[index])
    loaded[index] = std::make_unique<ropescope::tokenizer::Tokenizer>(ropescope::tokenizer::Tokenizer::load(
        std::string(ROPESCOPE_FIXTURES) + "/" + kFixtures[index]));
  return *loaded[index];
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& tokenizer = fixture(data[0] % kCount);
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto encoding = tokenizer.encode_with_bytes(text);
    std::size_t total = 0;
    for (std::size_t i = 0; i < encoding.ids.size(); ++i) {
      if (encoding.ids[i] >= tokenizer.id_limit()) __builtin_trap();
      total += encoding.bytes[i];
    }
    if (!tokenizer.encode(text, false).empty() && total != text.size()) __builtin_trap();
  } catch (const ropescope::ArgumentError&) {
    // Invalid UTF-8: refused with its offset.
  }
  return 0;
}
