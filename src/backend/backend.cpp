// Backend-independent pieces of the interface (see backend.hpp).
#include "backend/backend.hpp"

#include <algorithm>

namespace ropescope::backend {

bool HeadAblation::ablates(int layer, const model::AttentionHead& head) const {
  if (all_real && head.kind == model::HeadKind::real) return true;
  if (all_imaginary && head.kind == model::HeadKind::imaginary) return true;
  return std::find(heads.begin(), heads.end(), std::make_pair(layer, head.index)) != heads.end();
}

}  // namespace ropescope::backend
