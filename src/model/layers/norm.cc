// RMSNorm weights (norm.h).
#include "model/layers/norm.h"

#include "model/loader/model_loader.h"

namespace inferd {

RmsNorm::RmsNorm(ModelLoader& loader, const std::string& name, int64_t dim, double e, bool plus_one)
    : weight(loader.norm(name, dim, plus_one)), eps(float(e)) {}

}  // namespace inferd
