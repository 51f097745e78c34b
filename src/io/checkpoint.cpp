// HF checkpoint directories: single-file and sharded safetensors.
#include "io/checkpoint.hpp"

#include <fmt/format.h>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "io/strict_json.hpp"

namespace ropescope::io {

namespace {

void check_shard_name(const std::string& shard, const std::string& tensor, const std::string& source) {
  if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos ||
      shard.find("..") != std::string::npos || shard.find('\0') != std::string::npos || shard == ".")
    throw FormatError(fmt::format("{}: weight_map[{}] is {}, expected a plain file name in the same directory", source,
                                  json_quoted(tensor), json_quoted(shard)));
}

}  // namespace

Checkpoint::Checkpoint(const std::filesystem::path& directory) : directory_(directory) {
  const auto single = directory / "model.safetensors";
  const auto index_path = directory / "model.safetensors.index.json";
  if (std::filesystem::exists(single)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single));
    for (const auto& t : files_.back()->header().tensors) where_.emplace(t.name, files_.back().get());
    return;
  }
  if (!std::filesystem::exists(index_path))
    throw Error(fmt::format("{}: no model.safetensors or model.safetensors.index.json", directory.string()));

  sharded_ = true;
  const std::string source = index_path.string();
  const auto index = parse_json_strict(read_regular_file(index_path, "checkpoint index"), source);
  if (!index.is_object()) throw FormatError(fmt::format("{}: expected a JSON object", source));
  const auto map = index.find("weight_map");
  if (map == index.end()) throw FormatError(fmt::format("{}: missing \"weight_map\"", source));
  if (!map->is_object()) throw FormatError(fmt::format("{}: \"weight_map\" is not an object", source));
  if (map->empty()) throw FormatError(fmt::format("{}: \"weight_map\" is empty", source));

  std::map<std::string, const SafetensorsFile*> shard_files;  // each shard mapped once
  std::map<std::string, std::string> listed;                  // tensor -> shard name
  for (const auto& [tensor, shard_value] : map->items()) {
    if (!shard_value.is_string())
      throw FormatError(fmt::format("{}: weight_map[{}] is {}, expected a file name", source, json_quoted(tensor),
                                    shard_value.dump()));
    const auto& shard = shard_value.get_ref<const std::string&>();
    check_shard_name(shard, tensor, source);
    listed.emplace(tensor, shard);
    if (!shard_files.count(shard)) {
      files_.push_back(std::make_unique<SafetensorsFile>(directory / shard));
      shard_files.emplace(shard, files_.back().get());
    }
  }
  // Every tensor of every shard must be listed, and listed for that shard.
  for (const auto& [shard, file] : shard_files) {
    for (const auto& t : file->header().tensors) {
      const auto it = listed.find(t.name);
      if (it == listed.end())
        throw FormatError(fmt::format("{}: tensor {} of shard {} is not in weight_map", source, json_quoted(t.name),
                                      json_quoted(shard)));
      if (it->second != shard)
        throw FormatError(fmt::format("{}: tensor {} is in shard {} but weight_map puts it in shard {}", source,
                                      json_quoted(t.name), json_quoted(shard), json_quoted(it->second)));
    }
  }
  for (const auto& [tensor, shard] : listed) {
    const SafetensorsFile* file = shard_files.at(shard);
    if (!file->contains(tensor))
      throw FormatError(fmt::format("{}: weight_map puts tensor {} in shard {}, which does not contain it", source,
                                    json_quoted(tensor), json_quoted(shard)));
    where_.emplace(tensor, file);
  }
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : where_) names.push_back(name);
  return names;
}

TensorView Checkpoint::tensor(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw FormatError(fmt::format("{}: no tensor {}", directory_.string(), json_quoted(name)));
  return it->second->tensor(name);
}

std::uint64_t Checkpoint::file_bytes() const {
  std::uint64_t total = 0;
  for (const auto& f : files_) total += f->header().data_offset + (f->header().tensors.empty() ? 0 : f->header().tensors.back().end);
  return total;
}

}  // namespace ropescope::io
