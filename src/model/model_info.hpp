// A checkpoint's description as one JSON document, for every front end
// (`ropescope info --json`, Python's Model.info): family and architecture,
// variant, heads and their real/imaginary split, GQA, RoPE and its scaling,
// parameter counts, KV-cache size, dtype, files and the loader's warnings.
#pragma once

#include <nlohmann/json.hpp>

#include "model/weights.hpp"

namespace ropescope::model {

nlohmann::json model_info(const Model& model);

}  // namespace ropescope::model
