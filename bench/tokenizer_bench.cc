// Encode throughput of inferd's tokenizer on a few MB of mixed text, one thread.
//
//   tokenizer_bench [--mb 4] [--write-docs docs.json] [--docs docs.json] [NAME_OR_DIR...]
//
// NAME is one of the tokenizers fetched by scripts/fetch-test-data.sh (llama3, qwen3, ...) or a
// directory holding tokenizer.json. The documents are made from the fixture corpus
// (tests/data/tokenizer_fixtures/corpus.json) with a fixed seed; --write-docs saves them so that
// tools/bench_tokenizers_ref.mjs encodes exactly the same documents with Hugging Face tokenizers.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/mmap_file.h"
#include "tokenizer/tokenizer.h"

namespace {

using inferd::read_text_file;  // throws inferd::Error naming the file

// Documents of 1-8 KB built from the corpus texts in a seeded order, about `mb` MB in all.
std::vector<std::string> make_docs(double mb) {
  const auto corpus = nlohmann::json::parse(read_text_file(
      std::string(INFERD_SOURCE_DIR) + "/tests/data/tokenizer_fixtures/corpus.json"));
  std::vector<std::string> texts;
  for (const auto& t : corpus["cases"]) {
    const std::string s = t.get<std::string>();
    if (!s.empty()) texts.push_back(s);
  }
  uint64_t state = 0x9E3779B97F4A7C15ULL;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  std::vector<std::string> docs;
  size_t total = 0;
  const auto target = static_cast<size_t>(mb * 1024 * 1024);
  while (total < target) {
    std::string doc;
    const size_t len = 1024 + next() % 7168;
    while (doc.size() < len) {
      doc += texts[next() % texts.size()];
      doc += (next() % 4 == 0) ? "\n" : " ";
    }
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  double mb = 4;
  std::string write_docs, docs_file;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mb" && i + 1 < argc) {
      mb = std::stod(argv[++i]);
    } else if (a == "--write-docs" && i + 1 < argc) {
      write_docs = argv[++i];
    } else if (a == "--docs" && i + 1 < argc) {
      docs_file = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: tokenizer_bench [--mb N] [--write-docs F] [--docs F] [NAME_OR_DIR...]\n");
      return 0;
    } else {
      names.push_back(a);
    }
  }
  if (names.empty()) names = {"llama3", "qwen3", "deepseek_v3", "llama2", "gemma3"};

  std::vector<std::string> docs;
  if (!docs_file.empty()) {
    for (const auto& d : nlohmann::json::parse(read_text_file(docs_file))) {
      docs.push_back(d.get<std::string>());
    }
  } else {
    docs = make_docs(mb);
  }
  if (!write_docs.empty()) {
    std::ofstream(write_docs, std::ios::binary) << nlohmann::json(docs).dump();
  }
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  std::printf("%zu documents, %.2f MB, 1 thread\n", docs.size(), bytes / 1e6);
  std::printf("%-14s %10s %12s %12s %10s\n", "tokenizer", "tokens", "MB/s", "tokens/s", "load s");

  for (const auto& name : names) {
    const std::string dir = std::filesystem::is_directory(name)
                                ? name
                                : std::string(INFERD_SOURCE_DIR) + "/tests/data/tokenizers/" + name;
    const auto t0 = std::chrono::steady_clock::now();
    const inferd::Tokenizer tok = inferd::Tokenizer::from_dir(dir);
    const double load_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double best = 1e30;
    size_t tokens = 0;
    for (int rep = 0; rep < 3; ++rep) {
      tokens = 0;
      const auto s = std::chrono::steady_clock::now();
      for (const auto& d : docs) tokens += tok.encode(d, false).size();
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count());
    }
    std::printf("%-14s %10zu %12.2f %12.0f %10.2f\n", name.c_str(), tokens, bytes / 1e6 / best,
                tokens / best, load_s);
    std::fflush(stdout);
  }
  return 0;
}
