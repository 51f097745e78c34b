// The JSON sidecar every output carries: tool version, git commit, the command
// and its arguments, and when it ran. Commands add their own fields (model,
// precision path, backend, wall time) to the object this returns.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ropescope::io {

nlohmann::json run_metadata(const std::string& command, const std::vector<std::string>& argv);

}  // namespace ropescope::io
