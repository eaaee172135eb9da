// The inference engine: continuous batching over a paged KV cache with prefix caching,
// preemption by recompute, and per-request sampling. Embeddable without HTTP (like vLLM's `LLM`).
//
// Threading. One engine thread owns the scheduler, the KV cache and the model executor. Any thread
// may call `submit`, `submit_stream`, `abort`, `generate` and `stats`.
//
// Output delivery. Each request carries an `OutputCallback`, invoked ON THE ENGINE THREAD once
// per step in which the request produced something (new tokens or a finish), and exactly once
// with `finished == true` (finish reasons stop / length / abort) as its last call. The callback
// must not block and must be cheap: it runs between model steps, so a slow callback stalls every
// stream. A server with thousands of streams hands the output to its own executor (for example
// `asio::post` onto the connection's strand) and returns. No engine lock is held during the
// callback, so it may call `abort` (of any request) or `submit`. For callers that prefer to pull,
// `submit_stream` returns a `RequestStream`: a thread-safe queue filled by such a callback that
// the caller polls (`try_next`) or blocks on (`next`).
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "inferd/sampling_params.h"

namespace inferd {

namespace media {
struct PixelValues;
}
class ModelExecutor;
struct LoraAdapter;
class TextDecoder;

// ---- Errors (all derive from inferd::Error) ---------------------------------------------------

// The request is malformed or can never run: bad parameters, prompt + max_tokens longer than
// max_model_len, duplicate request id... (HTTP 400).
class InvalidRequestError : public Error {
 public:
  using Error::Error;
};
// The request's structured-output constraint cannot be compiled (bad schema, unsupported keyword,
// regex or grammar error); the message names the problem (HTTP 400).
class InvalidConstraintError : public InvalidRequestError {
 public:
  using InvalidRequestError::InvalidRequestError;
};
// The waiting queue holds max_queue requests already (HTTP 429).
class QueueFullError : public Error {
 public:
  using Error::Error;
};
// The engine is shut down (HTTP 503).
class EngineStoppedError : public Error {
 public:
  using Error::Error;
};

// The engine is asleep (sleep mode, Engine::sleep) and takes no request until woken (HTTP 503).
class EngineSleepingError : public Error {
 public:
  using Error::Error;
};

// ---- Tasks -----------------------------------------------------------------------------------

// What a model serves (--task): generation (sampling tokens), or embeddings (a pooled hidden
// state of the prompt; nothing is sampled).
enum class ModelTask { kGenerate, kEmbed };
const char* to_string(ModelTask task);  // "generate", "embed"

// How the final hidden states (after the last norm) of a prompt become one vector.
enum class PoolingType { kLast, kMean, kCls };
const char* to_string(PoolingType type);  // "LAST", "MEAN", "CLS" (sentence-transformers' names)

// An embedding request's pooling; unset fields take the model's (EngineConfig::pooling).
struct PoolingParams {
  std::optional<PoolingType> type;
  std::optional<bool> normalize;      // L2-normalise the vector (after truncation)
  std::optional<int32_t> dimensions;  // Matryoshka: keep the first `dimensions` values
};

// ---- Configuration ----------------------------------------------------------------------------

// Speculative decoding (--speculative-config, vLLM's JSON; docs/speculative.md). A proposer
// guesses up to num_speculative_tokens next tokens of a decoding sequence; one forward verifies
// them (k + 1 rows with logits); the sampler keeps the target distribution exactly. Proposers:
// n-gram (prompt lookup over prompt + output) and a draft model (a second executor sharing the
// target's vocabulary, with its own KV pool).
struct SpeculativeConfig {
  enum class Method { kNone, kNgram, kDraftModel, kEagle3 };
  Method method = Method::kNone;
  // kDraftModel: the draft's path (--speculative-config "model") and the executor that runs it
  // (LLM::load builds it; an embedder fills it). Its vocab_size must be the target's.
  // kEagle3: the head's path and executor (ModelExecutor::head_info); the target executor must
  // hand out the states the head fuses (aux_hidden_states, as wide as the head's fc input).
  std::string model;
  std::shared_ptr<ModelExecutor> draft_executor;
  int32_t num_speculative_tokens = 0;  // k, 1..kMaxSpeculativeTokens when a method is set
  int32_t prompt_lookup_min = 0;       // n-gram sizes tried, longest first
  int32_t prompt_lookup_max = 0;
  // Policy: no sequence speculates in a step where more than this many sequences decode (the
  // verification rows then cost more than the accepted tokens save). 0: never off by batch size.
  int32_t disable_by_batch_size = 32;
  bool enabled() const { return method != Method::kNone && num_speculative_tokens > 0; }
};
constexpr int32_t kMaxSpeculativeTokens = 16;

// LLM::load (inferd/llm.h) fills this from EngineArgs, where each limit is given once; an
// embedder that builds an Engine on its own executor fills it directly.
struct EngineConfig {
  int32_t max_num_seqs = 256;             // sequences running at once
  int32_t max_num_batched_tokens = 2048;  // tokens per step (prefill chunks + decodes)
  // 0: the executor's max_model_len, capped to what the KV pool holds. A larger explicit value
  // than either is an error at start.
  int32_t max_model_len = 0;
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;  // off: a prompt is admitted only when it fits one step
  // Fair chunked prefill (vLLM's names). A prompt with more than long_prefill_token_threshold
  // tokens left is "long": while other sequences have work it gets at most that many tokens a
  // step, at most max_long_partial_prefills long prompts get tokens in one step, and running
  // decodes keep their row. max_num_partial_prefills > 1: at most that many prompts get tokens in
  // one step (the threshold, when 0, becomes 4 % of max_model_len, as vLLM does). 0 / 1 / 1: off.
  int32_t long_prefill_token_threshold = 0;
  int32_t max_num_partial_prefills = 1;
  int32_t max_long_partial_prefills = 1;
  int32_t max_queue = 4096;  // requests waiting to start; submit fails beyond. 0: no limit
  // Admission by expected wait: submit fails (QueueFullError) when the requests waiting times the
  // recent seconds between request starts (measured while others waited) exceeds this. 0: off.
  double max_queue_wait_s = 0;
  int32_t max_logprobs = 20;  // largest SamplingParams::logprobs accepted
  // Longest one output constraint may take to compile (in submit, on the submitting thread);
  // longer: the request is an InvalidRequestError saying so. 0: no limit.
  double grammar_compile_timeout_s = 10;
  // Sleep mode (Engine::sleep): a request submitted while the engine sleeps waits this long for a
  // wake, then fails (RequestOutput::unavailable). 0: submit throws EngineSleepingError at once.
  double sleep_wait_s = 0;
  std::vector<int32_t> eos_token_ids;  // default EOS ids (a request may override them)
  uint64_t seed = 0;                   // seeds the generators of unseeded requests
  ModelTask task = ModelTask::kGenerate;
  // The model's pooling (its sentence-transformers config, or --task embed's defaults).
  struct Pooling {
    PoolingType type = PoolingType::kLast;
    bool normalize = true;
    // Matryoshka: truncation allowed (is_matryoshka), to any size when `dimensions` is empty.
    bool matryoshka = false;
    std::vector<int32_t> dimensions;
  } pooling;
  SpeculativeConfig speculative;
};

// ---- Requests ---------------------------------------------------------------------------------

// One image of a prompt (issue 34): prompt tokens [position, position + num_tokens) are its
// placeholder tokens (Gemma 3's <image_soft_token>s), whose input embeddings the executor replaces
// by the image's (ModelExecutor::image_tokens says how many rows an image takes). `hash` is
// media::image_hash(*pixels): the key of the executor's embedding cache and part of the
// prefix-cache key of the blocks the image's tokens are in.
struct ImageInput {
  int32_t position = 0;
  int32_t num_tokens = 0;
  std::array<uint8_t, 32> hash{};
  std::shared_ptr<const media::PixelValues> pixels;
};

struct GenerateRequest {
  std::string request_id;  // empty: the engine assigns "req-<number>"; must be unique among live
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
  int32_t priority = 0;  // lower values run first and are preempted last (vLLM convention)
  // Orders requests of equal priority (earlier first, later preempted first). Unset: now.
  std::optional<std::chrono::steady_clock::time_point> arrival_time;
  std::optional<std::vector<int32_t>> eos_token_ids;  // overrides EngineConfig::eos_token_ids
  // Set: an embedding request (needs EngineConfig::task == kEmbed). The prompt runs, nothing is
  // sampled (`params` is ignored but for nothing), and the finished output carries the vector.
  std::optional<PoolingParams> pooling;
  // The LoRA adapter to run with (issue 29): an id the executor was given with
  // ModelExecutor::add_lora_adapter; -1: the base model.
  int32_t lora_adapter_id = -1;
  // The prompt's images, by position, not overlapping (an executor with images only:
  // ModelExecutor::takes_images()).
  std::vector<ImageInput> images;
};

// ---- Outputs ----------------------------------------------------------------------------------

enum class FinishReason { kStop, kLength, kAbort };
const char* to_string(FinishReason reason);  // "stop", "length", "abort"

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

// Logprobs of one generated token: log-softmax of the raw model logits (before bias,
// penalties, temperature and filtering), the sampled token's rank (1 = most likely) and the
// `logprobs` most likely tokens, most likely first.
struct SampleLogprobs {
  int32_t token_id = 0;
  float logprob = 0.0f;
  int32_t rank = 0;
  std::vector<TokenLogprob> top;
};

// What one sequence of a request produced in one step.
struct SequenceDelta {
  int32_t index = 0;               // 0..n-1
  std::vector<int32_t> token_ids;  // new token ids (a stop token or EOS is included)
  std::string text;                // new final text (text that could still become a stop
                                   // string is held back; stop strings/tokens are not returned)
  std::vector<SampleLogprobs> logprobs;  // one per token id when requested
  std::optional<FinishReason> finish_reason;
  std::optional<int32_t> stop_token_id;  // the stop_token_ids entry that ended it (not EOS)
  std::optional<std::string> stop_string;
};

// When the engine handled one request: the engine thread's steady-clock readings, in the
// request's finished output. What vLLM's queue (first_scheduled - arrival), prefill (first_token -
// first_scheduled), decode (last_token - first_token) and inference (last_token -
// first_scheduled) times are made of. A time point left at its default did not happen (the
// request was aborted before it ran, or before its first token).
struct RequestTimes {
  std::chrono::steady_clock::time_point arrival{};          // accepted by submit
  std::chrono::steady_clock::time_point first_scheduled{};  // the first step that ran its prompt
  std::chrono::steady_clock::time_point first_token{};      // the step that sampled its first token
  std::chrono::steady_clock::time_point last_token{};       // the step that sampled its last one
};

struct RequestOutput {
  std::string request_id;
  std::vector<SequenceDelta> outputs;  // sequences with news in this step
  int32_t num_prompt_tokens = 0;
  int32_t num_cached_tokens = 0;  // prompt tokens found in the prefix cache (first admission)
  bool finished = false;          // every sequence finished: the last output of this request
  std::string error;              // set when the engine itself failed the request
  // With `error`: the engine's state failed the request, not the request itself (it waited for a
  // wake from sleep mode longer than EngineConfig::sleep_wait_s); HTTP 503.
  bool unavailable = false;
  // SamplingParams::prompt_logprobs: entry i belongs to prompt token i + 1 (num_prompt_tokens - 1
  // entries). Set once, in the first output after the whole prompt ran (with max_tokens 0 that
  // is the finished one); empty in every other output.
  std::vector<SampleLogprobs> prompt_logprobs;
  // Embedding requests (GenerateRequest::pooling): the pooled vector, in the finished output.
  std::vector<float> embedding;
  RequestTimes times;  // in the finished output; default in the others
};

using OutputCallback = std::function<void(RequestOutput&&)>;

// The whole result of one request, as `generate` returns it.
struct SequenceResult {
  int32_t index = 0;
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<SampleLogprobs> logprobs;
  FinishReason finish_reason = FinishReason::kAbort;
  std::optional<int32_t> stop_token_id;
  std::optional<std::string> stop_string;
};
struct GenerateResult {
  std::string request_id;
  std::vector<SequenceResult> outputs;  // n entries, by index
  int32_t num_prompt_tokens = 0;
  int32_t num_cached_tokens = 0;
  std::string error;
  std::vector<SampleLogprobs> prompt_logprobs;  // RequestOutput::prompt_logprobs
  std::vector<float> embedding;                 // RequestOutput::embedding
  // Appends one streamed output (creates the sequence entries as needed).
  void accumulate(RequestOutput&& out);
};

// A pull-style view of one request's outputs (filled on the engine thread).
class RequestStream {
 public:
  explicit RequestStream(std::string request_id) : request_id_(std::move(request_id)) {}
  const std::string& request_id() const { return request_id_; }
  // Blocks for the next output; nullopt once the finished output was taken.
  std::optional<RequestOutput> next();
  // Non-blocking: nullopt when nothing is queued right now.
  std::optional<RequestOutput> try_next();
  bool done() const;  // the finished output was taken

  void push(RequestOutput&& out);  // called by the engine

 private:
  friend class Engine;
  std::string request_id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> queue_;
  bool finished_pushed_ = false;
  bool finished_taken_ = false;
};

// ---- Counters ---------------------------------------------------------------------------------

struct EngineStats {
  int32_t blocks_total = 0;
  int32_t blocks_used = 0;           // referenced by a sequence
  int32_t blocks_free = 0;           // unreferenced, holding nothing reusable
  int32_t blocks_cached = 0;         // unreferenced, holding a reusable prefix block (evictable)
  int64_t prefix_cache_queries = 0;  // tokens looked up in the prefix cache at admission
  int64_t prefix_cache_hits = 0;     // of those, tokens found
  int64_t evictions = 0;             // cached blocks reused for other content
  int64_t preemptions = 0;
  int32_t num_running = 0;  // sequences holding KV blocks
  int32_t num_waiting = 0;  // sequences waiting to start or resume
  int64_t num_steps = 0;
  // LoRA adapters (ids) with a running request, and with only waiting ones (lora_requests_info).
  std::vector<int32_t> lora_running, lora_waiting;
  int64_t tokens_computed = 0;    // tokens run through the model (prefill, recompute, decode)
  int64_t generation_tokens = 0;  // tokens sampled
  int64_t requests_finished = 0;  // finished with stop or length
  int64_t requests_aborted = 0;
  int64_t grammar_masks = 0;          // structured outputs: next-token bitmasks filled
  double grammar_mask_seconds = 0;    // wall time the engine thread spent filling them
  double grammar_accept_seconds = 0;  // and advancing the grammars by the sampled tokens
  // Steps by the number of tokens in their forward: entry i counts the steps of more than
  // 2^(i-1) and at most 2^i tokens (entry 0: one token). Their sum is num_steps, their tokens
  // tokens_computed (vLLM's iteration_tokens_total histogram is made from these).
  std::array<int64_t, 32> steps_by_tokens_log2{};
  int32_t sleep_level = 0;  // sleep mode: 0 awake, else the level the engine sleeps at
  // Speculative decoding (vLLM's spec_decode_* counters): verifications of a sequence with
  // drafts, draft tokens verified, of those accepted, and accepted by draft position (entry i:
  // drafts whose position i was accepted). Mean accepted length = 1 + accepted / drafts.
  int32_t spec_num_speculative_tokens = 0;  // k; 0: speculation off
  int64_t spec_num_drafts = 0;
  int64_t spec_num_draft_tokens = 0;
  int64_t spec_num_accepted_tokens = 0;
  std::array<int64_t, kMaxSpeculativeTokens> spec_accepted_per_pos{};
};

// ---- Engine -----------------------------------------------------------------------------------

class Engine {
 public:
  // `decoder` (optional) produces text and enables stop strings. Throws Error when the config
  // does not fit the executor (for example max_model_len larger than the KV pool).
  explicit Engine(std::shared_ptr<ModelExecutor> executor, EngineConfig config = {},
                  std::shared_ptr<const TextDecoder> decoder = nullptr);
  ~Engine();  // shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; returns its id. Throws InvalidRequestError, QueueFullError or
  // EngineStoppedError; on success `on_output` will be called until the finished output.
  std::string submit(GenerateRequest request, OutputCallback on_output);
  // Same, delivering into a RequestStream.
  std::shared_ptr<RequestStream> submit_stream(GenerateRequest request);
  // Aborts a request at any point (waiting, prefilling, decoding). Returns false when no live
  // request has this id. The request's finished output (reason abort) follows on the engine
  // thread and its KV blocks are released.
  bool abort(const std::string& request_id);

  // Offline batch: submits every request (ignoring max_queue) and blocks until all finished.
  // Results are in request order. Throws InvalidRequestError for a bad request (none run then).
  std::vector<GenerateResult> generate(std::vector<GenerateRequest> requests);

  // LoRA adapters (issue 29; executors with ModelExecutor::max_loras() > 0, else Error): after
  // add, requests may name `id` in GenerateRequest::lora_adapter_id; after remove they may not,
  // and the executor forgets the adapter once no live request uses it. Both are applied on the
  // engine thread between steps; ids should not be reused (prefix-cache keys include them).
  void add_lora_adapter(int32_t id, std::shared_ptr<const LoraAdapter> adapter);
  void remove_lora_adapter(int32_t id);
  EngineStats stats() const;           // snapshot taken after the latest step
  const EngineConfig& config() const;  // resolved (max_model_len filled in)
  int32_t vocab_size() const;

  // Stops the engine thread; live requests finish with reason abort. Idempotent.
  void shutdown();

  // Empty while the device works. After a device fault (DeviceFault: a sticky GPU error) during
  // a step, its message: the engine thread has stopped, every request then live finished with
  // reason abort and RequestOutput::error set to this message, and submit throws
  // EngineStoppedError. The process should exit (the device can run nothing more).
  std::string device_fault() const;

  // ---- Sleep mode (the executor's sleep(): --enable-sleep-mode) ----
  // Stops admitting (submit throws EngineSleepingError, or with EngineConfig::sleep_wait_s the
  // request waits for a wake), lets the requests in flight finish for up to drain_timeout_s, then
  // puts the executor to sleep at `level` and forgets the prefix cache (its KV is gone). Blocks
  // until asleep; never drops a request. Throws InvalidRequestError for a level other than 1 or 2,
  // Error when requests still ran at the bound (nothing sleeps then and admission resumes) or the
  // executor could not sleep. No-op when asleep already.
  void sleep(int level, double drain_timeout_s);
  // Wakes the executor; the requests that waited start. No-op when awake. Throws Error when the
  // executor cannot wake (the engine stays asleep).
  void wake_up();
  int sleep_level() const;  // 0: awake (or still draining for a sleep)

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace inferd
