// The MoE layer factory (moe.h): until the fused MoE kernels exist (issue 27), a model that needs
// one stops at load with an error naming the layer.
#include "model/layers/moe.h"

#include "core/error.h"

namespace inferd {

std::unique_ptr<MoeLayer> make_moe_layer(const MoeSpec& spec, ModelLoader& loader) {
  (void)loader;
  fail("{}: mixture-of-experts layers ({} experts, top {}) are not supported yet (issue 27)",
       spec.prefix, spec.num_experts, spec.top_k);
}

}  // namespace inferd
