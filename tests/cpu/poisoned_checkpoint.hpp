// A copy of a committed test model with one weight replaced by a non-finite
// value (NaN or infinity), for the load-time scan and the CLI's exit codes.
#pragma once

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "io/safetensors_writer.hpp"

namespace ropescope::testing {

// Copies `model_dir` (config.json, model.safetensors) to `target` with element
// `index` of tensor `tensor` set to `value` (rounded to the tensor's dtype:
// NaN and infinity stay what they are).
inline void write_poisoned_checkpoint(const std::filesystem::path& model_dir, const std::filesystem::path& target,
                                      const std::string& tensor, std::uint64_t index, float value) {
  std::filesystem::create_directories(target);
  std::filesystem::copy_file(model_dir / "config.json", target / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  const io::SafetensorsFile file(model_dir / "model.safetensors");
  std::vector<std::vector<std::byte>> copies;
  copies.reserve(file.names().size());
  std::vector<io::TensorData> tensors;
  for (const auto& name : file.names()) {
    const io::TensorView t = file.tensor(name);
    copies.emplace_back(t.bytes().begin(), t.bytes().end());
    auto& bytes = copies.back();
    if (name == tensor) {
      if (t.dtype() == io::Dtype::F32) {
        std::memcpy(bytes.data() + 4 * index, &value, 4);
      } else {
        const std::uint16_t bits = t.dtype() == io::Dtype::BF16 ? io::float_to_bf16(value) : io::float_to_f16(value);
        std::memcpy(bytes.data() + 2 * index, &bits, 2);
      }
    }
    tensors.push_back({name, t.dtype(), t.shape(), bytes});
  }
  io::write_safetensors(target / "model.safetensors", tensors);
}

}  // namespace ropescope::testing
