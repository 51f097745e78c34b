// UTF-8 validation shared by everything that reads text: safetensors headers
// (io), tokenizer input and vocabularies (tokenizer), command-line arguments
// (cli). Overlong forms, surrogates and code points above U+10FFFF are invalid.
#pragma once

#include <cstddef>
#include <string_view>

namespace ropescope::io {

// Length of the valid UTF-8 sequence at `pos`, or, when it is invalid, minus
// the length of its maximal valid prefix (at least 1): the unit that Python's
// decoder replaces by one U+FFFD (Unicode "maximal subpart" practice).
long utf8_sequence_length(std::string_view text, std::size_t pos);

// Offset of the first byte that does not start a valid UTF-8 sequence, or npos.
std::size_t find_invalid_utf8(std::string_view text);

}  // namespace ropescope::io
