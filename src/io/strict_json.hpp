// JSON parsing for checkpoint metadata (safetensors headers, index files,
// config.json) that rejects what nlohmann::json would silently accept:
// duplicate keys anywhere in the document, a leading byte-order mark, and
// nesting deeper than kMaxJsonDepth. Errors are FormatErrors that name
// the source.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ropescope::io {

// Arrays and objects may nest this deep; checkpoint metadata never nests more
// than a few levels, and deeper documents would overflow the stack in
// nlohmann's recursive copy, comparison and dump.
inline constexpr std::size_t kMaxJsonDepth = 64;

// Parses `text` (only whitespace may surround the value). Throws FormatError
// "<source>: ..." for a syntax error (with nlohmann's line and column), a
// duplicate key, or nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

// The JSON spelling of `text` with quotes, for error messages ("a\u0000b").
std::string json_quoted(std::string_view text);

}  // namespace ropescope::io
