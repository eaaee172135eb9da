// Defaults of the optional parts of the Backend interface: a backend that does not sample on the
// device or capture graphs is never asked to (DecoderModel checks samples_on_device() and
// supports_graphs() first), so reaching these is an internal error.
#include "backend/backend.h"

#include "core/error.h"

namespace inferd {

void Backend::sample(const Tensor& logits, const DeviceBatch& b, int32_t row0) {
  (void)logits;
  (void)b;
  (void)row0;
  INFERD_CHECK(false, "backend '{}' does not sample on the device", name());
}

void Backend::finish_samples(const DeviceBatch& b, const SamplingBatch& sampling,
                             std::span<SampledToken> out) {
  (void)b;
  (void)sampling;
  (void)out;
  INFERD_CHECK(false, "backend '{}' does not sample on the device", name());
}

void Backend::begin_graph_capture() {
  INFERD_CHECK(false, "backend '{}' does not capture graphs", name());
}

void Backend::end_graph_capture(int32_t key) {
  (void)key;
  INFERD_CHECK(false, "backend '{}' does not capture graphs", name());
}

Linear Backend::make_linear_fp8(std::vector<Tensor> parts, std::vector<Tensor> scales,
                                const Tensor& bias, float act_scale) {
  (void)parts;
  (void)scales;
  (void)bias;
  (void)act_scale;
  INFERD_CHECK(false, "backend '{}' does not compute FP8 linears", name());
  return Linear();
}

Linear Backend::quantize_linear_fp8(const Linear& l) {
  (void)l;
  INFERD_CHECK(false, "backend '{}' does not compute FP8 linears", name());
  return Linear();
}

}  // namespace inferd
