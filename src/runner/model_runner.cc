// The model runner (model_runner.h).
#include "runner/model_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/logging.h"

namespace inferd {

namespace {
constexpr int64_t kMinLogitRowsPerPass = 128;

// The batch sizes graphs are captured for: 1, 2, 4, multiples of 8 up to 256, of 32 above (and
// max_n, at most kMaxGraphBatch).
constexpr int32_t kMaxGraphBatch = 512;

std::vector<int32_t> graph_buckets(int32_t max_n) {
  std::vector<int32_t> sizes;
  for (int32_t s : {1, 2, 4}) {
    if (s <= max_n) sizes.push_back(s);
  }
  // Every 8 up to 256, every 32 up to kMaxGraphBatch; larger decode batches run eagerly (their
  // kernels outlast the launches; capturing 1..1024 by 8 took 11.9 s of start-up on an H100).
  max_n = std::min(max_n, kMaxGraphBatch);
  for (int32_t s = 8; s < std::min(max_n, 256) + 8; s += 8) sizes.push_back(std::min(s, max_n));
  for (int32_t s = 288; s < max_n + 32; s += 32) sizes.push_back(std::min(s, max_n));
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

// Allocations of its scope are tagged `tag` (sleep mode); kOther again after it.
class MemoryTagScope {
 public:
  MemoryTagScope(Backend& be, MemoryTag tag) : be_(be) { be_.set_memory_tag(tag); }
  ~MemoryTagScope() { be_.set_memory_tag(MemoryTag::kOther); }
  MemoryTagScope(const MemoryTagScope&) = delete;
  MemoryTagScope& operator=(const MemoryTagScope&) = delete;

 private:
  Backend& be_;
};
}  // namespace

ModelRunner::ModelRunner(const std::string& model_dir, const RunnerOptions& opts,
                         std::unique_ptr<Backend> backend)
    : opts_(opts), model_dir_(model_dir), backend_(std::move(backend)) {
  config_ = load_model_config(model_dir);
  check_options();
  int64_t total_bytes = 0;
  (void)backend_->memory_info(&start_free_bytes_, &total_bytes);
  max_model_len_ = opts_.max_model_len > 0
                       ? opts_.max_model_len
                       : int32_t(std::min<int64_t>(config_.max_position_embeddings, 1 << 30));
  if (opts_.enable_sleep_mode) fixed_addresses_ = backend_->enable_sleep_mode();
  load_weights();
  if (opts_.max_loras > 0) {
    if (!backend_->supports_lora())
      fail("--enable-lora: LoRA adapters are not supported on {} yet", backend_->name());
    lora_ = std::make_unique<LoraWeights>(*backend_, config_, opts_.max_loras, opts_.max_lora_rank);
    model_->attach_lora(*lora_);
    lora_slots_ = std::make_unique<LoraSlotTable>(opts_.max_loras);
    LOG_INFO("LoRA: {} slots of rank {} ({} MiB)", opts_.max_loras, opts_.max_lora_rank,
             lora_->device_bytes() >> 20);
  }
  weight_bytes_ = backend_->device_bytes_allocated();
  allocate_workspace();
  workspace_bytes_ = backend_->device_bytes_allocated() - weight_bytes_;
  allocate_kv_cache();
  // An embedding model (no lm_head) runs prompts only: no decode graphs, and no warm-up step
  // (whose padding row would ask for logits); its buffers are made by its first steps.
  if (opts_.load.pooling_only) return;
  if (backend_->supports_graphs() && !opts_.enforce_eager) {
    capture_graphs();
  } else if (backend_->samples_on_device()) {
    // Eager: one padding-only step makes the buffers the first real steps would otherwise
    // allocate (nothing is allocated once serving starts).
    prepare_lora(ForwardBatch());
    device_step(backend_->prepare_batch(ForwardBatch(), opts_.block_size, nullptr, 1),
                SamplingBatch(), ForwardBatch());
    backend_->reset_step_timing();
  }
}

ModelRunner::~ModelRunner() = default;

void ModelRunner::load_weights() {
  const MemoryTagScope tag(*backend_, MemoryTag::kWeights);
  ModelLoader loader(model_dir_, load_model_config(model_dir_), opts_.load, *backend_,
                     max_model_len_);
  model_ = create_model(loader);
  config_ = model_->config();
  loaded_sharded_bytes_ = loader.sharded_bytes();
  loaded_whole_bytes_ = loader.whole_bytes();
  kv_scales_ = read_kv_cache_scales(loader.checkpoint_if_any(), config_.num_layers);
  if (opts_.expert_load_profile && model_->num_moe_layers() > 0) {
    expert_counts_ = backend_->alloc(DType::kI32, {model_->num_moe_layers(), config_.num_experts});
    model_->set_expert_counts(expert_counts_);
    expert_base_ = read_expert_counts();
  }
  if (lora_) model_->attach_lora(*lora_);  // a reload (wake from sleep level 2)
}

void ModelRunner::check_options() const {
  if (opts_.block_size <= 0 || opts_.block_size > 1024)
    fail("--block-size {} is out of range: expected 1..1024", opts_.block_size);
  if (opts_.max_num_batched_tokens <= 0)
    fail("--max-num-batched-tokens must be positive, got {}", opts_.max_num_batched_tokens);
  if (opts_.max_num_seqs <= 0) fail("--max-num-seqs must be positive, got {}", opts_.max_num_seqs);
  if (opts_.max_top_logprobs < 0)
    fail("max_top_logprobs must be >= 0, got {}", opts_.max_top_logprobs);
}

void ModelRunner::allocate_workspace() {
  Backend& be = *backend_;
  const ModelConfig& c = config();
  const int64_t T = opts_.max_num_batched_tokens, H = c.hidden_size;
  const DType act = be.activation_dtype();
  for (int64_t cols : model_->workspace_columns()) workspace_.push_back(be.alloc(act, {T, cols}));
  hidden_ = be.alloc(act, {T, H});
  // Logit rows of one lm_head pass: a step's every row (with speculation, the draft rows too, so
  // that a verification step is one pass and fits a graph).
  const int64_t step_rows = int64_t(opts_.max_num_seqs) + std::max(0, opts_.max_extra_logit_rows);
  rows_per_pass_ = std::max<int64_t>(kMinLogitRowsPerPass, std::min<int64_t>(step_rows, T));
  logits_in_ = be.alloc(act, {rows_per_pass_, H});
  // EAGLE-3 (issue 26): the target's auxiliary states; a head's hidden inputs and outputs.
  if (!opts_.aux_hidden_layers.empty()) {
    if (!model_->supports_aux_hidden_states())
      fail(
          "--speculative-config: EAGLE-3 needs the target's hidden states, which {} models do "
          "not hand out yet",
          c.architecture);
    for (int32_t l : opts_.aux_hidden_layers)
      if (l < 0 || l >= c.num_layers)
        fail(
            "--speculative-config: the EAGLE-3 head fuses the hidden states entering layer {}, "
            "but the target has {} layers",
            l, c.num_layers);
    aux_ = be.alloc(act, {T, int64_t(opts_.aux_hidden_layers.size()) * H});
  }
  if (const std::vector<int64_t> w = model_->hidden_input_widths(); !w.empty())
    hidden_in_ = be.alloc(act, {T, *std::max_element(w.begin(), w.end())});
  if (model_->recurrent_buffer() >= 0) recurrent_rows_ = be.alloc(act, {rows_per_pass_, H});
  if (be.device() == Device::kCPU) return;
  // fp32 logits: the lm_head GEMM writes them directly, no bf16 rounding before sampling.
  logits_ = be.alloc(DType::kF32, {rows_per_pass_, c.vocab_size});
  StepCapacity cap;
  cap.max_tokens = int32_t(std::max<int64_t>(T, rows_per_pass_));
  cap.max_blocks_per_seq = (max_model_len_ + opts_.block_size - 1) / opts_.block_size;
  cap.max_top_logprobs = opts_.max_top_logprobs;
  // Edits: logit_bias, banned ids and penalty tokens; 2048 a sequence covers all but requests
  // with long histories and penalties (more grows the buffer once).
  const int64_t rows = int64_t(opts_.max_num_seqs) + std::max(0, opts_.max_extra_logit_rows);
  cap.max_edits = rows * 2048;
  // Structured outputs: one bitmask row (vocab / 32 words) per sequence (and draft row).
  cap.max_mask_words = rows * sampling::bitmask_words(int32_t(c.vocab_size));
  cap.max_draft_floats = int64_t(std::max(0, opts_.max_draft_prob_rows)) * c.vocab_size;
  // LoRA: q/k/v stacked is the widest linear (three parts of max_lora_rank columns).
  if (lora_) cap.max_lora_columns = LoraLinear::kMaxParts * opts_.max_lora_rank;
  be.reserve(cap);
}

void ModelRunner::allocate_kv_cache() {
  Backend& be = *backend_;
  const std::vector<KvCacheSpec> spec = model_->kv_cache_spec();
  if (opts_.kv_cache_fp8 && !be.supports_fp8_kv_cache())
    fail(
        "--kv-cache-dtype fp8 is not supported by the {} backend yet (the CPU backend has it); "
        "use --kv-cache-dtype auto",
        be.name());
  if (!kv_scales_.empty() && kv_scales_.size() != spec.size())
    fail("the checkpoint has FP8 KV cache scales for {} layers, the model {} KV caches",
         kv_scales_.size(), spec.size());
  if (opts_.kv_cache_fp8) {
    if (kv_scales_.empty()) {
      LOG_INFO(
          "FP8 KV cache with scale 1.0 for keys and values (the checkpoint has no k_scale / "
          "v_scale): keys and values beyond +-448 saturate");
    } else {
      LOG_INFO("FP8 KV cache with the checkpoint's scales (layer 0: k {} v {})", kv_scales_[0].k,
               kv_scales_[0].v);
    }
  }
  int64_t bytes_per_block = 0;
  for (const KvCacheSpec& s : spec)
    bytes_per_block += 2 * int64_t(opts_.block_size) * s.num_kv_heads * s.head_dim;
  bytes_per_block *= int64_t(dtype_size(kv_dtype()));
  int64_t kv_bytes = opts_.kv_cache_bytes;
  int64_t free_bytes = 0, total_bytes = 0;
  if (be.memory_info(&free_bytes, &total_bytes)) {
    if (opts_.gpu_memory_utilization <= 0 || opts_.gpu_memory_utilization > 1)
      fail("--gpu-memory-utilization must be in (0, 1], got {}", opts_.gpu_memory_utilization);
    // In use now: the weights, the workspace, the CUDA context and whatever other processes
    // hold, so memory taken by another process before the start is never counted as ours.
    const int64_t used = total_bytes - free_bytes;
    kv_bytes = int64_t(double(total_bytes) * opts_.gpu_memory_utilization) - used;
    if (opts_.num_kv_blocks <= 0 && kv_bytes < bytes_per_block)
      fail_kv_memory(kv_bytes, bytes_per_block, free_bytes, total_bytes);
    if (opts_.num_kv_blocks <= 0) {
      LOG_INFO(
          "GPU memory: {} MiB in total, {} MiB in use before the start (CUDA context, other "
          "processes), weights {} MiB, workspace {} MiB, KV cache {} MiB "
          "(--gpu-memory-utilization {})",
          total_bytes >> 20, (total_bytes - start_free_bytes_) >> 20, weight_bytes_ >> 20,
          workspace_bytes_ >> 20, kv_bytes >> 20, opts_.gpu_memory_utilization);
    }
  }
  num_blocks_ = opts_.num_kv_blocks > 0
                    ? opts_.num_kv_blocks
                    : int32_t(std::min<int64_t>(std::max<int64_t>(1, kv_bytes / bytes_per_block),
                                                INT32_MAX / 2));
  kv_spec_ = spec;
  allocate_kv_layers();
  LOG_INFO("KV pool: {} blocks of {} tokens ({} MiB, {})", num_blocks_, opts_.block_size,
           bytes_per_block * num_blocks_ >> 20, dtype_name(kv_dtype()));
}

void ModelRunner::allocate_kv_layers() {
  Backend& be = *backend_;
  const DType dt = kv_dtype();
  const MemoryTagScope tag(be, MemoryTag::kKvCache);
  kv_.clear();
  for (size_t i = 0; i < kv_spec_.size(); ++i) {
    const KvCacheSpec& s = kv_spec_[i];
    KvLayer l;
    l.k = be.alloc(dt, {num_blocks_, opts_.block_size, s.num_kv_heads, s.head_dim});
    l.v = be.alloc(dt, {num_blocks_, opts_.block_size, s.num_kv_heads, s.head_dim});
    if (opts_.kv_cache_fp8 && !kv_scales_.empty()) {
      l.k_scale = kv_scales_[i].k;
      l.v_scale = kv_scales_[i].v;
    }
    kv_.push_back(l);
  }
  kv_bytes_ = 0;
  for (const KvLayer& l : kv_) kv_bytes_ += int64_t(l.k.nbytes() + l.v.nbytes());
}

DType ModelRunner::kv_dtype() const {
  return opts_.kv_cache_fp8 ? DType::kF8E4M3 : backend_->activation_dtype();
}

void ModelRunner::fail_kv_memory(int64_t kv_bytes, int64_t bytes_per_block, int64_t free_bytes,
                                 int64_t total_bytes) const {
  const int64_t blocks = (int64_t(max_model_len_) + opts_.block_size - 1) / opts_.block_size;
  const int64_t need = blocks * bytes_per_block;  // one sequence of max_model_len tokens
  const int64_t used = total_bytes - free_bytes;
  const double util = double(used + need) / double(total_bytes);
  const std::string raise = util <= 1.0
                                ? fmt::format("raise --gpu-memory-utilization to at least {:.2f}",
                                              std::ceil(util * 100) / 100)
                                : std::string("free GPU memory held by other processes");
  fail(
      "not enough GPU memory for the KV cache: --gpu-memory-utilization {} allows {} MiB of "
      "the GPU's {} MiB; {} MiB were in use before the start (the CUDA context and other "
      "processes), the weights take {} MiB and the workspace {} MiB, which leaves {} MiB where "
      "max_model_len {} needs {} MiB ({} blocks of {} tokens); {} MiB are free now. To fix: "
      "{}, lower --max-model-len, or lower --max-num-seqs / --max-num-batched-tokens (the "
      "workspace)",
      opts_.gpu_memory_utilization,
      int64_t(double(total_bytes) * opts_.gpu_memory_utilization) >> 20, total_bytes >> 20,
      (total_bytes - start_free_bytes_) >> 20, weight_bytes_ >> 20, workspace_bytes_ >> 20,
      kv_bytes / (1 << 20), max_model_len_, need >> 20, blocks, opts_.block_size, free_bytes >> 20,
      raise);
}

int32_t ModelRunner::max_top_logprobs() const {
  return backend_->samples_on_device() ? opts_.max_top_logprobs : INT32_MAX;
}

void ModelRunner::check_batch(const ForwardBatch& fb) const {
  for (const SeqBatchInfo& s : fb.seqs) {
    if (s.adapter_id < 0) continue;
    if (!lora_)
      fail("a batch row asks for LoRA adapter {}, but LoRA is off (--enable-lora)", s.adapter_id);
    if (lora_adapters_.count(s.adapter_id) == 0)
      fail("a batch row asks for LoRA adapter {}, which is not loaded", s.adapter_id);
  }
  std::string why;
  if (!fb.embedding_spans.empty() && !takes_images(&why))
    fail("a batch carries image embeddings, but {}", why);
  if (!fb.mrope_positions.empty() && backend_->device() != Device::kCPU)
    fail("M-RoPE positions run on the CPU backend only for now (issue 34)");
}

void ModelRunner::add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter) {
  if (!lora_) ModelExecutor::add_lora_adapter(id, std::move(adapter));
  INFERD_CHECK(id >= 0 && adapter != nullptr, "adapter id {}", id);
  if (adapter->layers.size() != size_t(config().num_layers))
    fail("LoRA adapter {} has {} layers, the model {}", adapter->path, adapter->layers.size(),
         config().num_layers);
  if (adapter->max_rank > opts_.max_lora_rank)
    fail("LoRA adapter {} has rank {}, more than --max-lora-rank {}", adapter->path,
         adapter->max_rank, opts_.max_lora_rank);
  lora_slots_->release(id);  // a new adapter under an old id: its slot is stale
  lora_adapters_[id] = std::move(adapter);
}

void ModelRunner::remove_lora_adapter(int32_t id) {
  if (!lora_) ModelExecutor::remove_lora_adapter(id);
  lora_slots_->release(id);
  lora_adapters_.erase(id);
}

void ModelRunner::prepare_lora(const ForwardBatch& fb) {
  if (!lora_) return;
  lora_rows_.assign(size_t(fb.num_tokens()), -1);
  lora_busy_.clear();
  for (const SeqBatchInfo& s : fb.seqs) {
    if (s.adapter_id < 0) continue;
    bool load = false;
    const int32_t slot = lora_slots_->acquire(s.adapter_id, lora_busy_, uint64_t(steps_), &load);
    if (slot < 0)
      fail("a step mixes more LoRA adapters than --max-loras {}", lora_slots_->num_slots());
    if (load) lora_->load(slot, *lora_adapters_.at(s.adapter_id));
    if (std::find(lora_busy_.begin(), lora_busy_.end(), slot) == lora_busy_.end())
      lora_busy_.push_back(slot);
    std::fill(lora_rows_.begin() + s.q_start, lora_rows_.begin() + s.q_start + s.q_len, slot);
  }
  backend_->set_lora_rows(lora_rows_);
}

void ModelRunner::run_model(const DeviceBatch& b) {
  // A step with images (forward() only: prepare_images ran for this batch).
  const bool images = !input_rows_.empty();
  DeviceBatch with = b;
  if (images && !attend_ranges_.empty()) with.attend_ranges = attend_ranges_.data();
  ForwardContext ctx{*backend_, with, workspace_, kv_, input_rows_};
  if (aux_.defined()) {  // EAGLE-3's target
    ctx.aux_hidden = aux_.slice_rows(0, b.num_tokens);
    ctx.aux_layers = opts_.aux_hidden_layers;
  }
  ctx.hidden_inputs = hidden_in_view_;  // EAGLE-3's head (forward() only)
  model_->forward(ctx, hidden_.slice_rows(0, b.num_tokens));
  if (images) {
    input_rows_.clear();
    attend_ranges_.clear();
  }
}

void ModelRunner::upload_hidden_inputs(const ForwardBatch& fb) {
  hidden_in_view_ = Tensor();
  if (fb.hidden_inputs.empty()) return;
  const int64_t T = fb.num_tokens(), W = fb.hidden_input_width;
  const std::vector<int64_t> widths = model_->hidden_input_widths();
  INFERD_CHECK(hidden_in_.defined() && std::find(widths.begin(), widths.end(), W) != widths.end() &&
                   int64_t(fb.hidden_inputs.size()) == T * W,
               "hidden inputs: {} values of width {} for {} rows", fb.hidden_inputs.size(), W, T);
  hidden_in_view_ = Tensor(hidden_in_.data(), hidden_in_.dtype(), {T, W}, hidden_in_.device());
  backend_->upload_f32(hidden_in_view_, fb.hidden_inputs);
}

void ModelRunner::download_aux(const ForwardBatch& fb, int32_t device_rows, int32_t rows_per_seq) {
  const size_t W = size_t(aux_.size(1)), T = size_t(fb.num_tokens());
  aux_host_.resize(T * W);
  if (rows_per_seq == 0) {
    backend_->copy_to_host_f32(aux_.slice_rows(0, int64_t(T)), aux_host_.data());
    return;
  }
  // A verification graph's rows: sequence s's at s * rows_per_seq + [0, q_len).
  aux_padded_.resize(size_t(device_rows) * W);
  backend_->copy_to_host_f32(aux_.slice_rows(0, device_rows), aux_padded_.data());
  for (size_t s = 0; s < fb.seqs.size(); ++s) {
    const SeqBatchInfo& q = fb.seqs[s];
    std::copy_n(aux_padded_.data() + s * size_t(rows_per_seq) * W, size_t(q.q_len) * W,
                aux_host_.data() + size_t(q.q_start) * W);
  }
}

void ModelRunner::download_recurrent(const DeviceBatch& b) {
  const int64_t R = b.num_logit_rows, H = config().hidden_size;
  recurrent_host_.resize(size_t(R * H));
  const Tensor out = workspace_[size_t(model_->recurrent_buffer())].slice_rows(0, b.num_tokens);
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_pass_) {
    const int64_t n = std::min(rows_per_pass_, R - r0);
    DeviceBatch sub = b;
    sub.logit_rows = b.logit_rows + r0;
    sub.num_logit_rows = int32_t(n);
    Tensor rows = recurrent_rows_.slice_rows(0, n);
    backend_->gather_rows(out, sub, rows);
    backend_->copy_to_host_f32(rows, recurrent_host_.data() + r0 * H);
  }
}

ModelExecutor::HeadInfo ModelRunner::head_info() const {
  HeadInfo h;
  const std::vector<int64_t> w = model_->hidden_input_widths();
  if (w.empty()) return h;
  h.fused_width = int32_t(w[0]);
  h.target_vocab = int32_t(config().target_vocab_size);
  h.draft_to_target = model_->draft_to_target();
  return h;
}

void ModelRunner::pool(const ForwardBatch& fb) {
  const size_t H = size_t(config().hidden_size);
  pooled_.assign(fb.pool_spans.size() * H, 0.0f);
  for (size_t i = 0; i < fb.pool_spans.size(); ++i) {
    const PoolSpan& sp = fb.pool_spans[i];
    INFERD_CHECK(sp.row >= 0 && sp.num_rows > 0 && sp.row + sp.num_rows <= fb.num_tokens(),
                 "pool span [{}, +{}) outside {} rows", sp.row, sp.num_rows, fb.num_tokens());
    pool_rows_.resize(size_t(sp.num_rows) * H);
    backend_->copy_to_host_f32(hidden_.slice_rows(sp.row, sp.row + sp.num_rows), pool_rows_.data());
    float* dst = pooled_.data() + i * H;
    for (int32_t r = 0; r < sp.num_rows; ++r) {
      const float* src = pool_rows_.data() + size_t(r) * H;
      for (size_t c = 0; c < H; ++c) dst[c] += src[c];
    }
  }
}

void ModelRunner::count_step() {
  if (opts_.inject_device_fault_after_steps >= 0 && steps_ == opts_.inject_device_fault_after_steps)
    backend_->inject_device_fault();
  ++steps_;
}

void ModelRunner::forward(const ForwardBatch& fb, float* logits) {
  count_step();
  const int32_t T = fb.num_tokens();
  INFERD_CHECK(T > 0 && T <= opts_.max_num_batched_tokens, "batch of {} tokens (max {})", T,
               opts_.max_num_batched_tokens);
  check_batch(fb);
  prepare_lora(fb);
  prepare_images(fb);
  Backend& be = *backend_;
  upload_hidden_inputs(fb);
  const DeviceBatch& b = be.prepare_batch(fb, opts_.block_size);
  run_model(b);
  hidden_in_view_ = Tensor();
  if (aux_.defined()) download_aux(fb, T, 0);
  if (recurrent_rows_.defined()) download_recurrent(b);
  if (!fb.pool_spans.empty()) pool(fb);
  // The lm_head only for the rows whose logits are wanted.
  const int64_t R = int64_t(fb.logit_rows.size()), V = config().vocab_size;
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_pass_) {
    const int64_t n = std::min(rows_per_pass_, R - r0);
    float* dst = logits + r0 * V;
    if (be.device() == Device::kCPU) {
      lm_head_pass(b, r0, n, Tensor(dst, DType::kF32, {n, V}));
    } else {
      Tensor out = logits_.slice_rows(0, n);
      lm_head_pass(b, r0, n, out);
      be.copy_to_host_f32(out, dst);
    }
  }
}

void ModelRunner::lm_head_pass(const DeviceBatch& b, int64_t r0, int64_t n, Tensor out) {
  DeviceBatch sub = b;
  sub.logit_rows = b.logit_rows + r0;
  sub.num_logit_rows = int32_t(n);
  Tensor rows = logits_in_.slice_rows(0, n);
  backend_->gather_rows(hidden_.slice_rows(0, b.num_tokens), sub, rows);
  model_->compute_logits(*backend_, rows, out);
}

void ModelRunner::device_step(const DeviceBatch& b, const SamplingBatch& sampling,
                              const ForwardBatch& fb) {
  Backend& be = *backend_;
  run_model(b);
  if (!fb.pool_spans.empty()) pool(fb);
  be.upload_masks(b, sampling);
  const int64_t R = b.num_logit_rows;
  for (int64_t r0 = 0; r0 < R; r0 += rows_per_pass_) {
    const int64_t n = std::min(rows_per_pass_, R - r0);
    Tensor out = logits_.slice_rows(0, n);
    lm_head_pass(b, r0, n, out);
    be.sample(out, b, int32_t(r0));
  }
}

void ModelRunner::graph_forward(const DeviceBatch& b) {
  const int64_t R = b.num_logit_rows;
  INFERD_CHECK(R <= rows_per_pass_, "a graph step of {} logit rows (at most {} a pass)", R,
               rows_per_pass_);
  run_model(b);
  lm_head_pass(b, 0, R, logits_.slice_rows(0, R));
}

bool ModelRunner::fills_masks_late() const {
  return backend_->samples_on_device();
}

void ModelRunner::execute(const ForwardBatch& fb, const SamplingBatch& sampling,
                          std::span<SampledToken> out) {
  Backend& be = *backend_;
  if (!be.samples_on_device()) {
    ModelExecutor::execute(fb, sampling, out);  // forward() counts the step
    return;
  }
  count_step();
  const int32_t T = fb.num_tokens();
  const size_t R = fb.logit_rows.size();
  INFERD_CHECK(T > 0 && T <= opts_.max_num_batched_tokens, "batch of {} tokens (max {})", T,
               opts_.max_num_batched_tokens);
  INFERD_CHECK(sampling.rows.size() == R && out.size() == R,
               "{} logit rows, {} sampling rows, {} outputs", R, sampling.rows.size(), out.size());
  check_batch(fb);
  check_drafts(sampling);  // rows verifying sampled drafts: the device sampler's rejection rule
  // A decode batch (one new token per sequence, each sampled) replays the graph of its size, a
  // verification step (1..1 + k tokens a sequence, each sampled) the verification graph of its
  // sequence count, its rows padded to 1 + k a sequence. (Scoring rows and pooled spans come
  // from prompts: such a step runs eagerly.)
  bool decode = size_t(T) == fb.seqs.size() && R == size_t(T) && fb.pool_spans.empty();
  for (size_t i = 0; decode && i < fb.seqs.size(); ++i) decode = fb.seqs[i].q_len == 1;
  for (size_t i = 0; decode && i < R; ++i) decode = sampling.rows[i].score_token < 0;
  const bool verify = !decode && verify_shaped(fb, sampling);
  int32_t g = 0, key = 0, rows_per_seq = 0;
  if (graphs_enabled_ && decode) {
    g = key = graph_size_for(graph_sizes_, T);
  } else if (graphs_enabled_ && verify && !verify_sizes_.empty()) {
    bool fits = true;
    for (const SeqBatchInfo& sq : fb.seqs)
      fits = fits && sq.q_len >= 1 && sq.q_len <= 1 + opts_.num_speculative_tokens;
    g = fits ? graph_size_for(verify_sizes_, int32_t(fb.seqs.size())) : 0;
    key = verify_key(g);
    rows_per_seq = g > 0 ? 1 + opts_.num_speculative_tokens : 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  prepare_lora(fb);
  const DeviceBatch& b = be.prepare_batch(fb, opts_.block_size, &sampling, g, rows_per_seq);
  if (g > 0 && be.replay_graph(key)) {
    be.upload_masks(b, sampling);  // built on the host while the graph runs
    // Padding rows are not sampled (their tokens are dropped anyway).
    be.sample(logits_.slice_rows(0, rows_per_seq > 0 ? b.num_real_rows : b.num_logit_rows), b, 0);
    if (rows_per_seq > 0) ++verify_replays_;
  } else {
    device_step(b, sampling, fb);
  }
  be.finish_samples(b, sampling, out);
  if (aux_.defined()) download_aux(fb, b.num_tokens, rows_per_seq);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (verify) {
    profile_.add_verify(T, ms);
  } else {
    profile_.add(decode, T, ms);
  }
}

void ModelRunner::execute_greedy_chain(const ForwardBatch& fb, int32_t rounds,
                                       std::span<int32_t> out) {
  Backend& be = *backend_;
  const int32_t S = int32_t(fb.seqs.size());
  const int32_t g = graphs_enabled_ ? graph_size_for(graph_sizes_, S) : 0;
  // Eager steps, LoRA rows, a head's hidden inputs and the target's aux states go round by round.
  if (rounds < 2 || g == 0 || !be.samples_on_device() || rounds > be.max_decode_chain_rounds() ||
      lora_ || aux_.defined() || head_info().fused_width > 0) {
    ModelExecutor::execute_greedy_chain(fb, rounds, out);
    return;
  }
  check_greedy_chain(fb, rounds, out);
  check_batch(fb);
  chain_sampling_.clear();
  chain_sampling_.rows.resize(size_t(S));  // temperature 0: argmax, lowest id on ties
  const auto t0 = std::chrono::steady_clock::now();
  const DeviceBatch& b = be.prepare_batch(fb, opts_.block_size, &chain_sampling_, g);
  for (int32_t j = 0; j < rounds; ++j) {
    count_step();
    if (j > 0) be.advance_decode_chain(b, S, j);
    if (!be.replay_graph(g)) {
      // The graphs were dropped (this chain's metadata grew the buffer): at j == 0 nothing ran
      // yet, so the chain goes round by round; nothing grows the buffer between rounds.
      INFERD_CHECK(j == 0, "the decode graph of {} sequences vanished in a greedy chain", g);
      be.finish_decode_chain(b, S, 0, {});
      ModelExecutor::execute_greedy_chain(fb, rounds, out);
      return;
    }
    be.sample(logits_.slice_rows(0, b.num_logit_rows), b, 0);
  }
  be.finish_decode_chain(b, S, rounds, out);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (int32_t j = 0; j < rounds; ++j) profile_.add(true, S, ms / rounds);
}

void ModelRunner::check_drafts(const SamplingBatch& sampling) const {
  const int64_t V = config().vocab_size;
  for (size_t r = 0; r < sampling.rows.size(); ++r) {
    const SamplingRow& row = sampling.rows[r];
    if (row.draft_row < 0) continue;
    INFERD_CHECK(row.draft_token >= 0 && row.draft_token < V &&
                     (int64_t(row.draft_row) + 1) * V <= int64_t(sampling.draft_probs.size()),
                 "sampling row {}: draft token {} / distribution {} outside the batch's {} values",
                 r, row.draft_token, row.draft_row, sampling.draft_probs.size());
  }
}

bool ModelRunner::verify_shaped(const ForwardBatch& fb, const SamplingBatch& sampling) {
  // Speculative verification: every token sampled (no scoring rows), some sequence has several.
  const size_t R = fb.logit_rows.size();
  if (R != size_t(fb.num_tokens()) || !fb.pool_spans.empty() || fb.seqs.empty()) return false;
  for (size_t i = 0; i < R; ++i)
    if (sampling.rows[i].score_token >= 0) return false;
  return true;
}

int32_t ModelRunner::graph_size_for(const std::vector<int32_t>& sizes, int32_t n) {
  auto it = std::lower_bound(sizes.begin(), sizes.end(), n);
  return it == sizes.end() ? 0 : *it;
}

void ModelRunner::capture_graphs() {
  Backend& be = *backend_;
  const int32_t max_b = std::min(opts_.max_num_seqs, opts_.max_num_batched_tokens);
  const std::vector<int32_t> sizes = graph_buckets(max_b);
  const auto t0 = std::chrono::steady_clock::now();
  // Largest first: the GEMM plans and the attention buffers of every size exist before any
  // capture starts (the warm-up run of each size makes them).
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) capture_one(*it, *it, 0);
  be.reset_step_timing();
  graph_sizes_ = sizes;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  LOG_INFO("captured {} CUDA graphs for decode batches of 1..{} sequences in {:.2f} s",
           sizes.size(), max_b, s);
  if (opts_.num_speculative_tokens > 0) capture_verify_graphs();
}

void ModelRunner::capture_one(int32_t key, int32_t n, int32_t rows_per_seq) {
  Backend& be = *backend_;
  const ForwardBatch empty;
  const SamplingBatch none;
  prepare_lora(empty);  // padding rows only: no adapter, but the slots' kernels are captured
  const DeviceBatch& b = be.prepare_batch(empty, opts_.block_size, &none, n, rows_per_seq);
  be.set_gemm_tuning(true);
  device_step(b, none, empty);  // warm-up: GEMM algorithm choice, buffers
  be.set_gemm_tuning(false);
  be.begin_graph_capture();
  try {
    graph_forward(b);
  } catch (...) {
    try {
      be.end_graph_capture(key);
    } catch (...) {
    }
    throw;
  }
  be.end_graph_capture(key);
}

void ModelRunner::capture_verify_graphs() {
  Backend& be = *backend_;
  const int32_t k = opts_.num_speculative_tokens, rows = 1 + k;
  INFERD_CHECK(k > 0 && k < 1024, "num_speculative_tokens {}", k);
  // Every row of a verification graph is a logit row of one lm_head pass, and a token of the
  // step's budget.
  const int64_t max_rows = std::min<int64_t>(rows_per_pass_, opts_.max_num_batched_tokens);
  const int32_t max_s = int32_t(std::min<int64_t>(
      {int64_t(std::max(opts_.max_speculative_seqs, 0)), opts_.max_num_seqs, max_rows / rows}));
  const std::vector<int32_t> sizes = graph_buckets(max_s);
  if (sizes.empty()) {
    LOG_INFO("no CUDA graphs for verification steps: {} rows a sequence do not fit {} rows a step",
             rows, max_rows);
    return;
  }
  int64_t free0 = 0, free1 = 0, total = 0;
  const bool mem = be.memory_info(&free0, &total);
  const int64_t alloc0 = be.device_bytes_allocated();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto it = sizes.rbegin(); it != sizes.rend(); ++it) capture_one(verify_key(*it), *it, rows);
  be.reset_step_timing();
  verify_sizes_ = sizes;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (mem) (void)be.memory_info(&free1, &total);
  LOG_INFO(
      "captured {} CUDA graphs for verification steps of 1..{} sequences x {} tokens (k = {}) in "
      "{:.2f} s; GPU memory {:.1f} MiB (graphs and buffers; inferd's own allocations {:.1f} MiB)",
      sizes.size(), sizes.back(), rows, k, s, mem ? double(free0 - free1) / 1048576.0 : 0.0,
      double(be.device_bytes_allocated() - alloc0) / 1048576.0);
}

std::vector<int64_t> ModelRunner::read_expert_counts() const {
  // The int32 counters copied as they are: a 4-byte float view needs no conversion.
  const Tensor bits(expert_counts_.data(), DType::kF32, expert_counts_.shape(),
                    expert_counts_.device());
  std::vector<int32_t> raw(size_t(expert_counts_.numel()));
  backend_->copy_to_host_f32(bits, reinterpret_cast<float*>(raw.data()));
  return std::vector<int64_t>(raw.begin(), raw.end());
}

std::string ModelRunner::step_profile() const {
  std::string s = profile_.to_string();
  if (!expert_counts_.defined()) return s;
  std::vector<int64_t> now = read_expert_counts();
  for (size_t i = 0; i < now.size(); ++i) now[i] -= expert_base_[i];
  return s + expert_load_summary(now, expert_counts_.size(0), expert_counts_.size(1),
                                 config_.num_experts_per_tok);
}

}  // namespace inferd
