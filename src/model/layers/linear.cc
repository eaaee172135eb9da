// Linear layers (linear.h).
#include "model/layers/linear.h"

#include "model/loader/model_loader.h"

namespace inferd {

LinearLayer::LinearLayer(const LinearSpec& spec, ModelLoader& loader)
    : quant_(loader.quantization_ptr()), method_(&quant_->linear_method(spec, loader)) {
  w_ = method_->create_weights(spec, loader);
  method_->process_weights_after_loading(*w_, loader.runtime());
}

LinearSpec plain_linear(const std::string& name, int64_t out, int64_t in, bool bias,
                        LinearSpec::Parallel parallel) {
  LinearSpec s;
  s.parts = {{name, out}};
  s.in_features = in;
  s.bias = bias;
  s.parallel = parallel;
  return s;
}

LinearSpec merged_column_linear(std::vector<LinearSpec::Part> parts, int64_t in, bool bias) {
  LinearSpec s;
  s.parts = std::move(parts);
  s.in_features = in;
  s.bias = bias;
  s.parallel = LinearSpec::Parallel::kColumn;
  return s;
}

LinearSpec row_linear(const std::string& name, int64_t out, int64_t in, bool bias) {
  return plain_linear(name, out, in, bias, LinearSpec::Parallel::kRow);
}

}  // namespace inferd
