// Reading analysis outputs for figures (see outputs.hpp).
#include "plot/outputs.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/error.hpp"
#include "io/mapped_file.hpp"

namespace ropescope::plot {
namespace {

std::string open_text(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw ArgumentError(fmt::format("{}: cannot open (expected {})", path.string(), what));
  return io::read_regular_file(path, fmt::format("plot input ({})", what));
}

// One CSV line split into fields (RFC 4180 quoting).
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

}  // namespace

std::size_t Table::column(std::string_view name) const {
  for (std::size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return i;
  throw Error(fmt::format("{}: no column '{}'", path.string(), name));
}

double Table::number(std::size_t row, std::string_view name) const {
  const std::string& field = rows[row][column(name)];
  if (field.empty() || field == "nan" || field == "NaN") return std::nan("");
  try {
    std::size_t used = 0;
    double value = std::stod(field, &used);
    if (used == field.size()) return value;
  } catch (const std::exception&) {
  }
  throw FormatError(fmt::format("{}: row {}, column '{}': '{}' is not a number", path.string(), row + 2, name, field));
}

Table read_table(const std::filesystem::path& path, const std::vector<std::string>& columns, std::string_view what) {
  std::stringstream text(open_text(path, what));
  Table table{path, {}, {}};
  std::string line;
  std::getline(text, line);
  table.header = split_fields(line);
  if (table.header != columns) {
    std::string expected;
    for (const auto& c : columns) expected += (expected.empty() ? "" : ",") + c;
    throw ArgumentError(fmt::format("{}: not {} (expected the header '{}')", path.string(), what, expected));
  }
  while (std::getline(text, line)) {
    if (line.empty()) continue;
    table.rows.push_back(split_fields(line));
    if (table.rows.back().size() != columns.size())
      throw FormatError(fmt::format("{}: row {} has {} fields; expected {}", path.string(), table.rows.size() + 1,
                                    table.rows.back().size(), columns.size()));
  }
  return table;
}

nlohmann::json read_json(const std::filesystem::path& path, std::string_view what) {
  std::string text = open_text(path, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw ArgumentError(fmt::format("{}: not {} (not JSON)", path.string(), what));
  }
}

nlohmann::json read_sidecar(const std::filesystem::path& path) {
  std::filesystem::path sidecar = path.string() + ".json";
  if (!std::filesystem::exists(sidecar)) return nlohmann::json::object();
  return read_json(sidecar, "a JSON sidecar");
}

std::string label_from_sidecar(const nlohmann::json& sidecar, const std::filesystem::path& path) {
  if (sidecar.contains("model") && sidecar["model"].contains("directory")) {
    std::filesystem::path dir = sidecar["model"]["directory"].get<std::string>();
    std::string name = (dir.filename().empty() ? dir.parent_path() : dir).filename().string();
    // "name (family, variant)", leaving out what the directory name already says.
    std::vector<std::string> facts;
    for (const char* key : {"family", "variant"}) {
      const std::string fact = sidecar["model"].value(key, "");
      if (!fact.empty() && name.find(fact) == std::string::npos) facts.push_back(fact);
    }
    if (!facts.empty()) name += fmt::format(" ({})", fmt::join(facts, ", "));
    return name;
  }
  return path.stem().string();
}

FloatArray read_npy_float32(const std::filesystem::path& path) {
  std::string bytes = open_text(path, "a float32 .npy array");
  auto fail = [&](const std::string& why) { return FormatError(fmt::format("{}: not a float32 .npy array: {}", path.string(), why)); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0 || bytes[6] != 1) throw fail("missing the version 1 \\x93NUMPY header");
  std::size_t header_length = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  if (bytes.size() < 10 + header_length) throw fail("truncated header");
  std::string header = bytes.substr(10, header_length);
  if (header.find("'descr': '<f4'") == std::string::npos) throw fail("dtype is not '<f4'");
  if (header.find("'fortran_order': True") != std::string::npos) throw fail("Fortran order; expected C order");
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) throw fail("no 'shape' in the header");
  FloatArray array;
  std::uint64_t count = 1;
  std::string dims = m[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it) {
    array.shape.push_back(std::stoull(it->str()));
    count *= array.shape.back();
  }
  if (bytes.size() - 10 - header_length != count * 4) throw fail(fmt::format("data size does not match shape ({})", dims));
  array.values.resize(count);
  std::memcpy(array.values.data(), bytes.data() + 10 + header_length, count * 4);
  return array;
}

}  // namespace ropescope::plot
