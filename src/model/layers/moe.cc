// The mixture-of-experts layer (moe.h): router logits through a dense linear, the top-k choice
// (KernelOps::moe_topk), the experts (KernelOps::moe_experts). The scratch buffer is carved into
// the router logits, the choices, their weights and the experts op's own scratch.
#include "model/layers/moe.h"

#include "backend/communicator.h"
#include "core/error.h"
#include "model/loader/model_loader.h"

namespace inferd {

namespace {

constexpr int64_t kAlign = 256;

int64_t align_up(int64_t n) {
  return (n + kAlign - 1) / kAlign * kAlign;
}

class MoeLayerImpl final : public MoeLayer {
 public:
  MoeLayerImpl(const MoeSpec& spec, ModelLoader& loader) : spec_(spec) {
    if (spec.num_experts <= 0 || spec.top_k <= 0 || spec.top_k > spec.num_experts ||
        spec.expert_intermediate <= 0)
      fail("{}: {} experts, top {}, expert intermediate size {}: expected 0 < top_k <= experts",
           spec.prefix, spec.num_experts, spec.top_k, spec.expert_intermediate);
    if (spec.activation != Activation::kSilu)
      fail("{}: experts with a GELU activation are not supported", spec.prefix);
    if (spec.shared_expert_intermediate > 0)
      fail("{}: shared experts are not supported", spec.prefix);
    const LinearSpec router = plain_linear(spec.prefix + spec.router_name, spec.num_experts,
                                           spec.hidden, spec.router_bias);
    router_ = unquantized_linear_method().create_weights(router, loader);
    // Tensor parallelism: each rank's experts hold 1/N of the intermediate size (the router is
    // whole), and their outputs are summed over the ranks.
    const TensorParallel& tp = loader.options().tp;
    experts_ = loader.quantization().create_moe_experts(moe_experts_spec(spec), loader);
    local_intermediate_ = spec.expert_intermediate / tp.size;
    if (tp.enabled()) reduce_ = tp.comm;
    routing_.num_experts = int32_t(spec.num_experts);
    routing_.top_k = int32_t(spec.top_k);
    routing_.softmax_before_topk = spec.softmax_before_topk;
    routing_.renormalize = spec.renormalize;
  }

  int64_t workspace_columns() const override {
    // Per row: logits (E, up to 4 bytes), ids and weights (k each), the experts op's scratch,
    // and the alignment of four regions (T >= 1 rows carry it).
    const int64_t bytes = 4 * spec_.num_experts + 8 * spec_.top_k + 4 * kAlign +
                          moe_scratch_bytes_per_row(spec_.num_experts, spec_.top_k, spec_.hidden,
                                                    local_intermediate_);
    return (bytes + 1) / 2;
  }

  void forward(KernelOps& ops, const Tensor& x, Tensor scratch, Tensor out) const override {
    const int64_t T = x.size(0), E = spec_.num_experts, K = spec_.top_k;
    INFERD_CHECK(scratch.is_contiguous() && scratch.size(0) >= T &&
                     int64_t(scratch.nbytes()) >= T * 2 * workspace_columns(),
                 "{}: MoE scratch {} for {} tokens", spec_.prefix, scratch.shape_str(), T);
    char* base = static_cast<char*>(scratch.data());
    const Device dev = x.device();
    const DType act = x.dtype();
    int64_t off = 0;
    auto carve = [&](DType dt, int64_t cols) {
      Tensor t(base + off, dt, {T, cols}, dev);
      off = align_up(off + T * cols * int64_t(dtype_size(dt)));
      return t;
    };
    Tensor logits = carve(act, E);
    Tensor ids = carve(DType::kI32, K);
    Tensor weights = carve(DType::kF32, K);
    Tensor rest(base + off, DType::kU8, {int64_t(scratch.nbytes()) - off}, dev);
    unquantized_linear_method().apply(ops, *router_, x, logits);
    ops.moe_topk(logits, routing_, ids, weights);
    ops.moe_experts(x, experts_, ids, weights, rest, counts_, out);
    if (reduce_ != nullptr) reduce_->all_reduce_sum(out);
  }

  void set_expert_counts(Tensor counts) override { counts_ = std::move(counts); }
  const MoeSpec& spec() const override { return spec_; }
  const MoeExperts& experts() const override { return experts_; }

 private:
  MoeSpec spec_;
  MoeRouting routing_;
  std::unique_ptr<LinearWeights> router_;
  MoeExperts experts_;
  int64_t local_intermediate_ = 0;  // this rank's share of spec_.expert_intermediate
  Communicator* reduce_ = nullptr;  // tensor parallelism: the ranks' group
  Tensor counts_;
};

}  // namespace

MoeExpertsSpec moe_experts_spec(const MoeSpec& spec) {
  MoeExpertsSpec es;
  es.prefix = spec.prefix;
  es.num_experts = spec.num_experts;
  es.hidden = spec.hidden;
  es.intermediate = spec.expert_intermediate;
  es.gate_name = spec.gate_name;
  es.up_name = spec.up_name;
  es.down_name = spec.down_name;
  es.transposed = spec.experts_transposed;
  es.interleaved = spec.gate_up_interleaved;
  es.bias = spec.expert_bias;
  es.act = spec.expert_act;
  es.act_alpha = spec.act_alpha;
  es.act_limit = spec.act_limit;
  return es;
}

std::unique_ptr<MoeLayer> make_moe_layer(const MoeSpec& spec, ModelLoader& loader) {
  return std::make_unique<MoeLayerImpl>(spec, loader);
}

}  // namespace inferd
