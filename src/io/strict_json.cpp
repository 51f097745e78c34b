// Duplicate-key-rejecting JSON parse on top of nlohmann's callback parser.
#include "io/strict_json.hpp"

#include <fmt/format.h>

#include <set>
#include <vector>

#include "core/error.hpp"

namespace ropescope::io {

std::string json_quoted(std::string_view text) {
  return nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json parse_json_strict(std::string_view text, const std::string& source) {
  // One set of keys per open object; a key event always belongs to the innermost one.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool found_duplicate = false;
  std::size_t open_values = 0;  // arrays and objects entered and not yet closed
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      // nlohmann's copy, comparison and dump recurse per level: a deep document would overflow the stack.
      if (++open_values > kMaxJsonDepth)
        throw FormatError(fmt::format("{}: arrays and objects nested deeper than {} levels", source,
                                      kMaxJsonDepth));
    } else if (event == E::object_end || event == E::array_end) {
      --open_values;
    }
    if (event == E::object_start) {
      open_objects.emplace_back();
    } else if (event == E::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == E::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && !found_duplicate) {
        found_duplicate = true;
        duplicate = key;
      }
    }
    return true;
  };
  // nlohmann skips a UTF-8 byte-order mark; JSON (RFC 8259) and the reference readers do not accept one.
  if (text.starts_with("\xEF\xBB\xBF")) throw FormatError(fmt::format("{}: not valid JSON: starts with a byte-order mark", source));
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ..." (or
    // out_of_range.406 for a number beyond double's range).
    std::string message = e.what();
    if (auto pos = message.find("] "); pos != std::string::npos) message = message.substr(pos + 2);
    throw FormatError(fmt::format("{}: not valid JSON: {}", source, message));
  }
  if (found_duplicate) throw FormatError(fmt::format("{}: duplicate key {}", source, json_quoted(duplicate)));
  return value;
}

}  // namespace ropescope::io
