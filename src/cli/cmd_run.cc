// `inferd run MODEL "text"` / `inferd run MODEL --prompt-ids 1,2,3`: one-shot generation through
// the engine (the same path the server uses), streaming text (or ids) to stdout; with --task
// embed, the prompt's pooled vector as a JSON array.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "inferd/engine.h"
#include "inferd/llm.h"
#include "model/loader/gguf_model.h"
#include "model/loader/model_source.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

std::vector<int32_t> parse_id_list(const std::string& s, const char* what) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    const std::string tok = s.substr(i, j - i);
    try {
      size_t used = 0;
      const long v = std::stol(tok, &used);
      if (used != tok.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(tok);
      ids.push_back(int32_t(v));
    } catch (const std::exception&) {
      fail("{}: '{}' is not a token id (expected comma-separated non-negative integers)", what,
           tok);
    }
    i = j + 1;
  }
  return ids;
}

namespace {

struct RunArgs {
  ModelFlags model;
  std::string prompt;
  std::string prompt_ids;
  int32_t max_tokens = 64;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  std::optional<uint64_t> sample_seed;
  bool ignore_eos = false;
  bool no_special_tokens = false;
};

GenerateRequest make_request(const RunArgs& a, const Tokenizer* tok) {
  GenerateRequest req;
  req.prompt_token_ids = a.prompt.empty() ? parse_id_list(a.prompt_ids, "--prompt-ids")
                                          : tok->encode(a.prompt, !a.no_special_tokens);
  req.params.max_tokens = a.max_tokens;
  req.params.temperature = a.temperature;
  req.params.top_p = a.top_p;
  req.params.top_k = a.top_k;
  req.params.seed = a.sample_seed;
  req.params.ignore_eos = a.ignore_eos;
  req.params.detokenize = tok != nullptr;
  return req;
}

// Streams the text (or, with print_ids, the ids at the end) to stdout and a summary to stderr.
void generate(Engine& engine, GenerateRequest req, bool print_ids) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto t_first = t0;
  size_t n = 0;
  std::string ids_line;
  auto stream = engine.submit_stream(std::move(req));
  FinishReason reason = FinishReason::kAbort;
  std::string error;
  while (auto out = stream->next()) {
    if (!out->error.empty()) error = out->error;
    for (const SequenceDelta& d : out->outputs) {
      for (int32_t id : d.token_ids) {
        if (n++ == 0) t_first = clock::now();
        if (print_ids) {
          if (!ids_line.empty()) ids_line += ',';
          ids_line += std::to_string(id);
        }
      }
      if (!print_ids && !d.text.empty()) {
        std::fwrite(d.text.data(), 1, d.text.size(), stdout);
        std::fflush(stdout);
      }
      if (d.finish_reason) reason = *d.finish_reason;
    }
  }
  const auto t1 = clock::now();
  if (!error.empty()) fail("generation failed: {}", error);
  std::printf("%s\n", print_ids ? ids_line.c_str() : "");
  const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
  const double decode_s = std::chrono::duration<double>(t1 - t_first).count();
  const EngineStats st = engine.stats();
  std::fprintf(stderr,
               "finish %s; first token after %.3f s; generated %zu tokens, decode %.2f tok/s; "
               "%lld tokens computed in %lld steps\n",
               to_string(reason), prefill_s, n, n > 1 ? double(n - 1) / decode_s : 0.0,
               static_cast<long long>(st.tokens_computed), static_cast<long long>(st.num_steps));
}

// --task embed: the prompt's vector, as a JSON array on one line, and a summary to stderr.
void embed(Engine& engine, GenerateRequest req) {
  req.pooling = PoolingParams{};
  const size_t n = req.prompt_token_ids.size();
  const auto t0 = std::chrono::steady_clock::now();
  auto stream = engine.submit_stream(std::move(req));
  std::vector<float> v;
  std::string error;
  while (auto out = stream->next()) {
    if (!out->error.empty()) error = out->error;
    if (out->finished) v = std::move(out->embedding);
  }
  if (!error.empty()) fail("embedding failed: {}", error);
  if (v.empty()) fail("embedding failed: the engine returned no vector");
  std::string line = "[";
  for (size_t i = 0; i < v.size(); ++i) line += fmt::format("{}{}", i ? "," : "", v[i]);
  std::printf("%s]\n", line.c_str());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "embedded %zu tokens into %zu dimensions in %.3f s\n", n, v.size(), s);
}

void run(const RunArgs& a) {
  if (a.prompt.empty() == a.prompt_ids.empty())
    fail("give either a prompt text or --prompt-ids (exactly one of them)");
  if (a.max_tokens < 0) fail("--max-tokens must be >= 0, got {}", a.max_tokens);
  EngineArgs args = a.model.args;
  // A directory's tokenizer.json, or a GGUF file's vocabulary.
  const std::string source = resolve_model_source(args.model.model);
  const bool has_tokenizer =
      is_gguf_model_path(source)
          ? GgufFile::open(source).find("tokenizer.ggml.tokens") != nullptr
          : std::filesystem::exists(std::filesystem::path(source) / "tokenizer.json");
  if (!a.prompt.empty() && !has_tokenizer)
    fail("'{}' has no tokenizer ({}): give the prompt as --prompt-ids", args.model.model,
         is_gguf_model_path(source) ? "no tokenizer.ggml.tokens" : "no tokenizer.json");
  args.model.skip_tokenizer_init = !has_tokenizer;
  args.scheduler.max_num_seqs = 1;  // one request
  const std::unique_ptr<LLM> llm = LLM::load(args);
  if (llm->engine()->config().task == ModelTask::kEmbed)
    return embed(*llm->engine(), make_request(a, llm->tokenizer().get()));
  generate(*llm->engine(), make_request(a, llm->tokenizer().get()), !a.prompt_ids.empty());
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate from one prompt, offline");
  a->model.add_to(cmd, /*batching=*/false);
  add_task_flags(cmd, a->model.args);
  cmd->add_option("prompt", a->prompt, "Prompt text (needs the model's tokenizer files)");
  cmd->add_option("--prompt-ids", a->prompt_ids,
                  "Prompt as comma-separated token ids (prints generated ids)");
  cmd->add_option("--max-tokens", a->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "Top-k sampling (0 = off)")->capture_default_str();
  cmd->add_option("--sampling-seed", a->sample_seed, "Seed of this request's sampling");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the model's EOS token");
  cmd->add_flag("--no-special-tokens", a->no_special_tokens,
                "Do not add the tokenizer's special tokens (BOS) to a text prompt");
  cmd->callback([a] { run(*a); });
}

}  // namespace inferd::cli
