// Defaults of the optional parts of the backend interfaces: a backend that does not sample on the
// device, capture graphs or compute FP8 / GGUF-block GEMMs is never asked to (the runner and the
// quantization methods check samples_on_device(), supports_graphs(), fp8_gemm_supported() and
// supports_ggml() first), so
// reaching these is an internal error.
#include "backend/backend.h"

#include "core/error.h"

namespace inferd {

void KernelOps::sample(const Tensor& logits, const DeviceBatch& b, int32_t row0) {
  (void)logits;
  (void)b;
  (void)row0;
  INFERD_CHECK(false, "this backend does not sample on the device");
}

void KernelOps::linear_fp8(const Tensor& x, const Fp8Linear& w, Tensor out) {
  (void)x;
  (void)w;
  (void)out;
  INFERD_CHECK(false, "this backend does not compute FP8 linears");
}

void KernelOps::linear_int4(const Tensor& x, const Int4Linear& w, Tensor out) {
  (void)x;
  (void)w;
  (void)out;
  INFERD_CHECK(false, "this backend does not compute int4 linears");
}

void KernelOps::linear_ggml(const Tensor& x, const GgmlLinear& w, Tensor out) {
  (void)x;
  (void)w;
  (void)out;
  INFERD_CHECK(false, "this backend does not compute GGUF block-format linears");
}

void KernelOps::embedding_ggml(const GgmlLinear::Part& table, const DeviceBatch& b, float scale,
                               Tensor out) {
  (void)table;
  (void)b;
  (void)scale;
  (void)out;
  INFERD_CHECK(false, "this backend does not gather from GGUF block-format tables");
}

void KernelOps::embedding_shard(const Tensor& table, int64_t vocab_begin, const DeviceBatch& b,
                                float scale, Tensor out) {
  (void)table;
  (void)vocab_begin;
  (void)b;
  (void)scale;
  (void)out;
  INFERD_CHECK(false, "this backend does not gather from vocabulary-parallel tables");
}

void KernelOps::lora_add(const Tensor& x, const LoraLinear& w, const DeviceBatch& b, Tensor out) {
  (void)x;
  (void)w;
  (void)out;
  INFERD_CHECK(b.lora_slots == nullptr, "this backend does not apply LoRA adapters");
}

void KernelOps::moe_topk(const Tensor& router_logits, const MoeRouting& r, Tensor topk_ids,
                         Tensor topk_weights) {
  (void)router_logits;
  (void)r;
  (void)topk_ids;
  (void)topk_weights;
  INFERD_CHECK(false, "this backend does not route mixture-of-experts layers");
}

void KernelOps::moe_experts(const Tensor& x, const MoeExperts& w, const Tensor& topk_ids,
                            const Tensor& topk_weights, Tensor scratch, Tensor expert_counts,
                            Tensor out) {
  (void)x;
  (void)w;
  (void)topk_ids;
  (void)topk_weights;
  (void)scratch;
  (void)expert_counts;
  (void)out;
  INFERD_CHECK(false, "this backend does not compute mixture-of-experts layers");
}

MoeExperts DeviceRuntime::make_moe_experts(MoeExpertTensors t, int64_t hidden,
                                           int64_t intermediate) {
  (void)t;
  (void)hidden;
  (void)intermediate;
  fail("backend '{}' does not place mixture-of-experts weights", name());
}

void DeviceRuntime::quantize_moe_experts_fp8(MoeExperts& w) {
  (void)w;
  INFERD_CHECK(false, "backend '{}' does not compute FP8 experts", name());
}

void DeviceRuntime::upload_f32(Tensor dst, std::span<const float> src) {
  (void)dst;
  (void)src;
  INFERD_CHECK(false, "backend '{}' does not upload host values", name());
}

void DeviceRuntime::set_lora_rows(std::span<const int32_t> slots) {
  (void)slots;
  INFERD_CHECK(false, "backend '{}' does not apply LoRA adapters", name());
}

void DeviceRuntime::inject_device_fault() {
  throw DeviceFault(fmt::format(
      "device fault on {}: injected by --debug-inject-device-fault (the CPU stands in for a "
      "sticky GPU error)",
      name()));
}

Int4Linear DeviceRuntime::make_linear_int4(const Int4Linear& host) {
  (void)host;
  INFERD_CHECK(false, "backend '{}' does not compute int4 linears", name());
  return Int4Linear();
}

Int4Linear DeviceRuntime::random_linear_int4(int64_t out_features, int64_t in_features,
                                             int64_t group_size, uint64_t seed, float stddev,
                                             const Tensor& bias) {
  (void)out_features;
  (void)in_features;
  (void)group_size;
  (void)seed;
  (void)stddev;
  (void)bias;
  INFERD_CHECK(false, "backend '{}' does not compute int4 linears", name());
  return Int4Linear();
}

GgmlLinear DeviceRuntime::make_linear_ggml(std::vector<GgmlLinear::Part> parts,
                                           const Tensor& bias) {
  (void)parts;
  (void)bias;
  INFERD_CHECK(false, "backend '{}' does not compute GGUF block-format linears", name());
  return GgmlLinear();
}

void DeviceRuntime::finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                                   std::span<SampledToken> out) {
  (void)b;
  (void)sampling;
  (void)out;
  INFERD_CHECK(false, "backend '{}' does not sample on the device", name());
}

void DeviceRuntime::advance_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t round) {
  (void)b;
  (void)num_seqs;
  (void)round;
  INFERD_CHECK(false, "backend '{}' runs no greedy decode chains", name());
}

void DeviceRuntime::finish_decode_chain(const DeviceBatch& b, int32_t num_seqs, int32_t rounds,
                                        std::span<int32_t> out) {
  (void)b;
  (void)num_seqs;
  (void)rounds;
  (void)out;
  INFERD_CHECK(false, "backend '{}' runs no greedy decode chains", name());
}

void DeviceRuntime::begin_graph_capture() {
  INFERD_CHECK(false, "backend '{}' does not capture graphs", name());
}

void DeviceRuntime::end_graph_capture(int32_t key) {
  (void)key;
  INFERD_CHECK(false, "backend '{}' does not capture graphs", name());
}

Fp8Linear DeviceRuntime::make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                                         const Tensor& bias, float act_scale) {
  (void)parts;
  (void)scales;
  (void)bias;
  (void)act_scale;
  INFERD_CHECK(false, "backend '{}' does not compute FP8 linears", name());
  return Fp8Linear();
}

Fp8Linear DeviceRuntime::quantize_linear_fp8(const Linear& l) {
  (void)l;
  INFERD_CHECK(false, "backend '{}' does not compute FP8 linears", name());
  return Fp8Linear();
}

}  // namespace inferd
