// Reading the analysis outputs a figure is drawn from: CSV tables (checked
// against the columns the figure needs), JSON files and their sidecars, and
// float32 .npy arrays. A file of the wrong kind is an ArgumentError naming it
// and what was expected; a missing file too (both are mistakes on the command
// line); a malformed one is a FormatError.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ropescope::plot {

struct Table {
  std::filesystem::path path;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;

  // The index of column `name` (present: read_table checked it).
  std::size_t column(std::string_view name) const;
  // Field `name` of row `row` as a number; an empty field is NaN.
  double number(std::size_t row, std::string_view name) const;
  const std::string& text(std::size_t row, std::string_view name) const { return rows[row][column(name)]; }
};

// Reads a CSV whose header must be exactly `columns`; `what` names the
// expected kind of file in messages (e.g. "a ppl CSV (`ropescope ppl --out`)").
Table read_table(const std::filesystem::path& path, const std::vector<std::string>& columns, std::string_view what);

// Reads a JSON file; `what` as above.
nlohmann::json read_json(const std::filesystem::path& path, std::string_view what);

// The sidecar `<file>.json` of an output, or an empty object when there is none.
nlohmann::json read_sidecar(const std::filesystem::path& path);

// A default label for an output from its sidecar: the model directory's name
// with the model family and RoPE variant the name does not already say
// ("qwen3-0.6b (qwen3, rope)", "ec"), else the file's stem.
std::string label_from_sidecar(const nlohmann::json& sidecar, const std::filesystem::path& path);

struct FloatArray {
  std::vector<std::uint64_t> shape;
  std::vector<float> values;
};
// A little-endian float32 .npy array in C order.
FloatArray read_npy_float32(const std::filesystem::path& path);

}  // namespace ropescope::plot
