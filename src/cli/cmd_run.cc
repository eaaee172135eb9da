// `inferd run MODEL --prompt-ids 1,2,3 --max-tokens N`: one-shot greedy generation.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "model/simple_generate.h"

namespace inferd::cli {

namespace {

std::vector<int32_t> parse_ids(const std::string& s) {
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
      fail("--prompt-ids: '{}' is not a token id (expected comma-separated non-negative integers)",
           tok);
    }
    i = j + 1;
  }
  return ids;
}

struct RunArgs {
  ModelFlags model;
  std::string prompt_ids;
  int32_t max_tokens = 16;
  bool ignore_eos = false;
};

}  // namespace

void register_run(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Generate from one prompt, offline (greedy)");
  args->model.add_to(cmd);
  cmd->add_option("--prompt-ids", args->prompt_ids, "Prompt as comma-separated token ids")
      ->required();
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the model's EOS token");
  cmd->callback([args] {
    const std::vector<int32_t> prompt = parse_ids(args->prompt_ids);
    if (args->max_tokens < 0) fail("--max-tokens must be >= 0, got {}", args->max_tokens);
    auto model = args->model.load();
    if (int64_t(prompt.size()) + args->max_tokens > model->max_model_len()) {
      fail(
          "prompt ({} tokens) + --max-tokens ({}) exceeds the context length {} "
          "(see --max-model-len)",
          prompt.size(), args->max_tokens, model->max_model_len());
    }
    for (int32_t id : prompt)
      if (id >= model->vocab_size())
        fail("--prompt-ids: token id {} is outside the vocabulary (size {})", id,
             model->vocab_size());
    std::vector<int32_t> stop;
    if (!args->ignore_eos)
      for (int64_t e : model->config().eos_token_ids) stop.push_back(int32_t(e));
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto t_first = t0;
    int n = 0;
    const auto out = greedy_generate(*model, prompt, args->max_tokens,
                                     args->model.max_num_batched_tokens, stop, [&](int32_t) {
                                       if (n++ == 0) t_first = clock::now();
                                     });
    const auto t1 = clock::now();
    std::string line;
    for (size_t i = 0; i < out.size(); ++i) line += (i ? "," : "") + std::to_string(out[i]);
    std::printf("%s\n", line.c_str());
    const double prefill_s = std::chrono::duration<double>(t_first - t0).count();
    const double decode_s = std::chrono::duration<double>(t1 - t_first).count();
    std::fprintf(stderr,
                 "prompt %zu tokens in %.3f s (%.1f tok/s); generated %zu tokens, decode %.2f "
                 "tok/s\n",
                 prompt.size(), prefill_s, double(prompt.size()) / std::max(prefill_s, 1e-9),
                 out.size(), out.size() > 1 ? double(out.size() - 1) / decode_s : 0.0);
  });
}

}  // namespace inferd::cli
