// CSV text fields: a string written as one quoted field (RFC 4180: the field in
// double quotes, every quote inside doubled), so labels may hold commas and quotes.
#pragma once

#include <string>
#include <string_view>

namespace ropescope::io {

inline std::string csv_quote(std::string_view text) {
  std::string q = "\"";
  for (char c : text) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

}  // namespace ropescope::io
