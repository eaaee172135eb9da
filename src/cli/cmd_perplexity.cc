// `inferd bench perplexity`: the perplexity of a model on a text file, measured the way
// llama.cpp's llama-perplexity measures it (issue 35: quantized files against their bf16 source):
// the text's tokens cut into chunks of --ctx tokens, the first replaced by BOS where the
// tokenizer adds one, and the second half of each chunk scored (each token with at least ctx/2
// tokens of context). In-process, through prompt logprobs.
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench/report.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "inferd/engine.h"
#include "inferd/llm.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

namespace {

struct PerplexityArgs {
  ModelFlags model;
  std::string file;
  int32_t ctx = 512;
  int32_t chunks = -1;  // all
  std::string json_path;
};

void run_perplexity(const PerplexityArgs& a) {
  if (a.ctx < 8) fail("--ctx must be at least 8, got {}", a.ctx);
  const std::string text = read_text_file(a.file);
  std::unique_ptr<LLM> llm = LLM::load(a.model.args);
  const Tokenizer& tok = *llm->tokenizer();
  Engine& engine = *llm->engine();
  if (a.ctx > engine.config().max_model_len)
    fail("--ctx {} exceeds the model's context length {}", a.ctx, engine.config().max_model_len);
  const std::vector<int32_t> ids = tok.encode(text, false, false);
  int64_t n_chunks = int64_t(ids.size()) / a.ctx;
  if (a.chunks >= 0) n_chunks = std::min<int64_t>(n_chunks, a.chunks);
  if (n_chunks <= 0)
    fail("{} has {} tokens: fewer than one chunk of --ctx {}", a.file, ids.size(), a.ctx);
  const std::optional<int32_t> bos = tok.add_bos_token() ? tok.bos_id() : std::nullopt;
  std::vector<GenerateRequest> reqs;
  for (int64_t c = 0; c < n_chunks; ++c) {
    GenerateRequest r;
    r.prompt_token_ids.assign(ids.begin() + c * a.ctx, ids.begin() + (c + 1) * a.ctx);
    if (bos) r.prompt_token_ids[0] = *bos;
    r.params.max_tokens = 0;
    r.params.prompt_logprobs = 0;
    reqs.push_back(std::move(r));
  }
  const std::vector<GenerateResult> res = engine.generate(std::move(reqs));
  double nll = 0;
  int64_t count = 0;
  const size_t first = size_t(a.ctx / 2);
  for (const GenerateResult& r : res) {
    if (!r.error.empty()) fail("chunk {}: {}", r.request_id, r.error);
    // Entry i is prompt token i + 1.
    for (size_t i = first - 1; i < r.prompt_logprobs.size(); ++i) {
      nll -= r.prompt_logprobs[i].logprob;
      ++count;
    }
  }
  const double ppl = std::exp(nll / double(count));
  std::printf("model %s\nfile %s: %zu tokens, %lld chunks of %d, %lld tokens scored\nPPL = %.4f\n",
              a.model.model().c_str(), a.file.c_str(), ids.size(), (long long)n_chunks, a.ctx,
              (long long)count, ppl);
  if (!a.json_path.empty()) {
    nlohmann::json j = {{"model", a.model.model()}, {"file", a.file},  {"ctx", a.ctx},
                        {"chunks", n_chunks},       {"scored", count}, {"ppl", ppl}};
    bench::write_text_file(a.json_path, j.dump(1) + "\n");
  }
}

}  // namespace

void register_perplexity(CLI::App& bench) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "perplexity",
      "Perplexity of a text file, llama-perplexity's way (chunks of --ctx tokens, the second "
      "half of each scored)");
  a->model.add_to(cmd, true, true);
  cmd->add_option("-f,--file", a->file, "Text file")->required();
  cmd->add_option("-c,--ctx", a->ctx, "Tokens a chunk")->capture_default_str();
  cmd->add_option("--chunks", a->chunks, "Chunks to score (-1: all)")->capture_default_str();
  cmd->add_option("--json", a->json_path, "Write the result to this JSON file");
  cmd->callback([a] { run_perplexity(*a); });
}

}  // namespace inferd::cli
