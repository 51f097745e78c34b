// JSON parsing for checkpoint metadata (safetensors headers, index files,
// config.json) that rejects what nlohmann::json would silently accept:
// duplicate keys anywhere in the document, and a leading byte-order mark. Errors are FormatErrors that name
// the source.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace ropescope::io {

// Parses `text` (only whitespace may surround the value). Throws FormatError
// "<source>: ..." for a syntax error (with nlohmann's line and column) or a
// duplicate key.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

// The JSON spelling of `text` with quotes, for error messages ("a\u0000b").
std::string json_quoted(std::string_view text);

}  // namespace ropescope::io
