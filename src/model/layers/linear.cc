// Linear layers (linear.h).
#include "model/layers/linear.h"

#include "core/error.h"
#include "model/loader/model_loader.h"

namespace inferd {

namespace {

// `s` as this rank holds it: column parts without a shard of their own get 1/size of their rows,
// a row-parallel linear 1/size of its inputs and (ranks other than 0) no bias.
LinearSpec rank_spec(LinearSpec s, const TensorParallel& tp) {
  if (!tp.enabled()) return s;
  if (s.parallel == LinearSpec::Parallel::kColumn) {
    for (LinearSpec::Part& p : s.parts)
      if (p.shard.dim < 0) p.shard = tp.shard(0);
  } else if (s.parallel == LinearSpec::Parallel::kRow) {
    if (s.in_shard.dim < 0) s.in_shard = tp.shard(1);
    if (tp.rank != 0) s.bias = false;  // added once, before the sum
  }
  return s;
}

}  // namespace

LinearLayer::LinearLayer(const LinearSpec& full, ModelLoader& loader)
    : quant_(loader.quantization_ptr()) {
  const TensorParallel& tp = loader.options().tp;
  const LinearSpec spec = rank_spec(full, tp);
  method_ = &quant_->linear_method(spec, loader);
  if (spec.sharded() && !method_->supports_shards())
    fail(
        "--tensor-parallel-size {}: '{}' is a {} linear, whose weights are not sharded yet "
        "(tensor parallelism covers unquantized weights)",
        tp.size, spec.parts[0].name, method_->name());
  if (spec.parallel == LinearSpec::Parallel::kRow && tp.enabled()) reduce_ = tp.comm;
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
