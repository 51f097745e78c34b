// Facts about this build, recorded in every output's JSON sidecar.
// Defined in the generated build_info.cpp (cmake/build_info.cmake).
#pragma once

namespace ropescope {

const char* tool_version();  // project version, e.g. "0.1.0"
const char* git_commit();    // commit of the source tree, "-dirty" if modified, or "unknown"
bool built_with_cuda();      // the CUDA backend was compiled in

}  // namespace ropescope
