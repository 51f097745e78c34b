// A Hugging Face checkpoint directory's weights: either one model.safetensors
// or the shards named by model.safetensors.index.json ("weight_map"). Each file
// is mapped once; every tensor lives in exactly one shard.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.hpp"

namespace ropescope::io {

class Checkpoint {
 public:
  // Opens `directory`: model.safetensors if present (as transformers prefers it),
  // else model.safetensors.index.json and its shards. Throws FormatError for a
  // malformed index (shard names must be plain file names: no '/', '\', '..'),
  // a listed tensor missing from its shard, a shard tensor the index does not
  // list, or a tensor in two shards; Error when no weights file is there.
  explicit Checkpoint(const std::filesystem::path& directory);

  const std::filesystem::path& directory() const { return directory_; }
  // The mapped files, in the order first named.
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  bool sharded() const { return sharded_; }
  // All tensor names (sorted).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  // Throws FormatError naming the directory when absent.
  TensorView tensor(const std::string& name) const;
  // Total bytes of all files.
  std::uint64_t file_bytes() const;

 private:
  std::filesystem::path directory_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
  bool sharded_ = false;
};

}  // namespace ropescope::io
