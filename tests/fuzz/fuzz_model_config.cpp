// libFuzzer target for config.json parsing (scripts/run-fuzz.sh, clang, ASan
// and UBSan): JSON text through model::parse_model_config_text, every family's
// rules and the architecture. Malformed or unsupported input may only raise
// FormatError; an accepted config must have positive sizes, and its head layout
// for every variant must either be consistent or be refused with ArgumentError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "model/config.hpp"
#include "model/head_layout.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using ropescope::model::Variant;
  try {
    std::vector<std::string> warnings;
    const auto config = ropescope::model::parse_model_config_text(text, "fuzz", &warnings);
    if (config.hidden_size <= 0 || config.num_hidden_layers <= 0 || config.num_attention_heads <= 0 ||
        config.num_key_value_heads <= 0 || config.head_dim <= 0 || config.vocab_size <= 0)
      __builtin_trap();
    for (Variant variant : {Variant::rope, Variant::ec, Variant::eh}) {
      try {
        auto c = config;
        c.variant = variant;
        const auto layout = ropescope::model::head_layout(c);
        (void)ropescope::model::kv_cache_bytes_per_token(c);
        (void)layout;
      } catch (const ropescope::ArgumentError&) {
        // Head counts this variant cannot split (odd H for eh, GQA groups).
      }
    }
  } catch (const ropescope::FormatError&) {
    // Rejected input: the expected outcome for most of them.
  }
  return 0;
}
