// `inferd tokenize MODEL "text"` and `inferd detokenize MODEL 1,2,3`: the model's tokenizer on
// its own (MODEL is a directory holding tokenizer.json, maybe nothing else).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "hub/hub.h"
#include "llm/gguf_tokenizer.h"
#include "model/loader/model_source.h"
#include "tokenizer/tokenizer.h"

namespace inferd::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  bool add_special_tokens = false;
};

struct DetokenizeArgs {
  std::string model;
  std::string ids;
  bool skip_special_tokens = false;
};

std::vector<int32_t> parse_id_list(const std::string& s, const Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (s.find_first_not_of(" \t") == std::string::npos) return ids;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    const size_t a = item.find_first_not_of(" \t");
    const size_t b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? std::string() : item.substr(a, b - a + 1);
    if (item.empty() && j == s.size() && !ids.empty() && i == s.size()) break;  // trailing comma
    long long v = -1;
    size_t used = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX) {
      fail("'{}' is not a token id (expected comma-separated non-negative integers, e.g. 1,2,3)",
           item);
    }
    if (!tok.is_valid_id(static_cast<int32_t>(v))) {
      fail("token id {} is not in the tokenizer's vocabulary (ids go up to {})", v,
           tok.id_limit() - 1);
    }
    ids.push_back(static_cast<int32_t>(v));
    i = j + 1;
  }
  return ids;
}

}  // namespace

void register_tokenizer_commands(CLI::App& app) {
  auto targs = std::make_shared<TokenizeArgs>();
  CLI::App* tokenize = app.add_subcommand(
      "tokenize", "Print the token ids of a text (comma-separated), as Hugging Face encodes it");
  tokenize
      ->add_option("model", targs->model,
                   "Model directory (holding tokenizer.json), GGUF file or ollama:NAME[:TAG]")
      ->required();
  tokenize->add_option("text", targs->text, "Text to tokenize")->required();
  tokenize->add_flag("--add-special-tokens", targs->add_special_tokens,
                     "Add the special tokens of the post-processor (for example BOS)");
  tokenize->callback([targs] {
    const Tokenizer tok =
        ModelVocabSource::open(resolve_model_source(hub::resolve_if_hub_name(targs->model)))
            .tokenizer();
    const std::vector<int32_t> ids = tok.encode(targs->text, targs->add_special_tokens);
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(ids[i]);
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  });

  auto dargs = std::make_shared<DetokenizeArgs>();
  CLI::App* detokenize = app.add_subcommand(
      "detokenize", "Print the text of comma-separated token ids (exactly, no newline added)");
  detokenize
      ->add_option("model", dargs->model,
                   "Model directory (holding tokenizer.json), GGUF file or ollama:NAME[:TAG]")
      ->required();
  detokenize->add_option("ids", dargs->ids, "Token ids, e.g. 1,2,3")->required();
  detokenize->add_flag("--skip-special-tokens", dargs->skip_special_tokens,
                       "Leave special tokens out of the text");
  detokenize->callback([dargs] {
    const Tokenizer tok =
        ModelVocabSource::open(resolve_model_source(hub::resolve_if_hub_name(dargs->model)))
            .tokenizer();
    const std::vector<int32_t> ids = parse_id_list(dargs->ids, tok);
    const std::string text = tok.decode(ids, dargs->skip_special_tokens);
    std::fwrite(text.data(), 1, text.size(), stdout);
  });
}

}  // namespace inferd::cli
