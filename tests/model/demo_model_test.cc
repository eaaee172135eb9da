// The project's demo model (models/demo, trained by tools/train_demo_model.py on the H200): inferd
// must reproduce what the training script measured with transformers: the greedy continuation of
// "And God said", the tokenizer's ids, and the held-out perplexity line by line; random weights
// of the same shape must be far worse.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/loader/safetensors.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"
#include "tokenizer/tokenizer.h"

namespace inferd {
namespace {

const std::string kDemo = std::string(INFERD_SOURCE_DIR) + "/models/demo";

nlohmann::json summary() {
  return nlohmann::json::parse(std::ifstream(kDemo + "/training_summary.json"));
}

std::unique_ptr<ModelRunner> load(bool random_weights, const std::string& quantization = "",
                                  bool kv_fp8 = false, const std::string& dir = kDemo) {
  RunnerOptions o;
  o.load.quantization = quantization;
  o.kv_cache_fp8 = kv_fp8;
  o.num_kv_blocks = 80;  // 1280 tokens: a held-out line (cut to 1024) fits
  o.block_size = 16;
  o.max_num_batched_tokens = 1024;
  if (random_weights) {
    o.load.format = LoadFormat::kDummy;
    o.load.dummy_dtype = DType::kF32;
    o.load.dummy_seed = 1235;
  }
  return std::make_unique<ModelRunner>(dir, o, make_cpu_backend(2));
}

// Total -log p of ids[1..] given the prefix, one forward over the whole line.
double line_nll(ModelRunner& m, const std::vector<int32_t>& ids) {
  const int32_t V = m.vocab_size();
  const int32_t n = int32_t(ids.size());
  ForwardBatch b;
  SeqBatchInfo s;
  s.q_start = 0;
  s.q_len = n;
  s.kv_len = n;
  s.block_table_offset = 0;
  s.num_blocks = (n + m.block_size() - 1) / m.block_size();
  for (int32_t k = 0; k < s.num_blocks; ++k) b.block_tables.push_back(k);
  for (int32_t i = 0; i < n; ++i) {
    b.token_ids.push_back(ids[size_t(i)]);
    b.positions.push_back(i);
    if (i + 1 < n) b.logit_rows.push_back(i);
  }
  b.seqs.push_back(s);
  std::vector<float> logits(b.logit_rows.size() * size_t(V));
  m.forward(b, logits.data());
  double nll = 0;
  for (int32_t i = 0; i + 1 < n; ++i) {
    const float* row = logits.data() + size_t(i) * size_t(V);
    double mx = row[0];
    for (int32_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double sum = 0;
    for (int32_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    nll += mx + std::log(sum) - double(row[ids[size_t(i) + 1]]);
  }
  return nll;
}

// The first n held-out lines as the training script tokenised them: <|begin_of_text|>, then the
// line without specials, cut at 1024 ids.
std::vector<std::vector<int32_t>> heldout_lines(size_t n) {
  const Tokenizer tok = Tokenizer::from_dir(kDemo);
  std::ifstream in(kDemo + "/heldout.txt");
  std::vector<std::vector<int32_t>> lines;
  for (std::string line; lines.size() < n && std::getline(in, line);) {
    std::vector<int32_t> ids = {0};
    for (int32_t id : tok.encode(line, /*add_special_tokens=*/false)) ids.push_back(id);
    if (ids.size() > 1024) ids.resize(1024);
    lines.push_back(ids);
  }
  return lines;
}

double perplexity(ModelRunner& m, const std::vector<std::vector<int32_t>>& lines) {
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& l : lines) {
    nll += line_nll(m, l);
    tokens += int64_t(l.size()) - 1;
  }
  return std::exp(nll / double(tokens));
}

TEST(DemoModel, GreedyContinuationMatchesTransformers) {
  const auto s = summary();
  const auto& g = s["greedy"];
  const Tokenizer tok = Tokenizer::from_dir(kDemo);
  const auto prompt = g["prompt_ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(tok.encode(g["prompt"].get<std::string>(), /*add_special_tokens=*/true), prompt);
  const auto want = g["ids"].get<std::vector<int32_t>>();
  auto m = load(false);
  const auto got = greedy_generate(*m, prompt, int32_t(g["max_new_tokens"].get<int>()), 64,
                                   g["stop_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(got, want);
  const std::string text = tok.decode(got, /*skip_special_tokens=*/true);
  EXPECT_EQ(text, g["text"].get<std::string>());
  std::printf("[demo] \"%s\" ->%s\n", g["prompt"].get<std::string>().c_str(), text.c_str());
}

TEST(DemoModel, HeldOutPerplexityMatchesTheTrainingScript) {
  const auto s = summary();
  const auto& f = s["eval"]["first64"];
  const auto want_lines = f["per_line_nll"].get<std::vector<double>>();
  const auto lines = heldout_lines(want_lines.size());
  ASSERT_EQ(lines.size(), want_lines.size());
  auto trained = load(false);
  auto random = load(true);
  double total = 0, total_random = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const double nll = line_nll(*trained, lines[i]);
    EXPECT_NEAR(nll, want_lines[i], 1e-3 * want_lines[i]) << "held-out line " << i;
    total += nll;
    total_random += line_nll(*random, lines[i]);
    tokens += int64_t(lines[i].size()) - 1;
  }
  EXPECT_EQ(tokens, f["tokens"].get<int64_t>());
  const double ppl = std::exp(total / double(tokens));
  const double ppl_random = std::exp(total_random / double(tokens));
  EXPECT_NEAR(ppl, f["ppl_trained"].get<double>(), 1e-3 * ppl);
  EXPECT_LT(ppl * 20, ppl_random);  // trained ~26, random weights in the thousands
  std::printf(
      "[demo] held-out perplexity, first %zu lines: %.3f (training script %.3f), random "
      "weights %.1f\n",
      lines.size(), ppl, f["ppl_trained"].get<double>(), ppl_random);
}

// --quantization fp8 (weights rounded to FP8 per output channel; the CPU computes the rest in
// fp32) costs at most 3% of perplexity on the held-out text (issue 13's bound).
TEST(DemoModel, Fp8WeightsKeepPerplexityWithinThreePercent) {
  const auto lines = heldout_lines(64);
  auto bf16 = load(false);
  auto fp8 = load(false, "fp8");
  const double ppl = perplexity(*bf16, lines), ppl8 = perplexity(*fp8, lines);
  std::printf(
      "[demo] held-out perplexity, first %zu lines: bf16 weights %.3f, fp8 weights %.3f "
      "(ratio %.4f)\n",
      lines.size(), ppl, ppl8, ppl8 / ppl);
  EXPECT_NE(ppl8, ppl);
  EXPECT_LE(ppl8 / ppl, 1.03);
}

// --kv-cache-dtype fp8 (keys and values rounded to e4m3 as they are written; every attention
// read, prefill included, sees the rounded cache) costs at most 2% of perplexity (issue 24's
// bound, fp8 weights + KV), and the same memory holds four times the blocks of the CPU's fp32
// cache.
TEST(DemoModel, Fp8KvCacheKeepsPerplexityWithinTwoPercent) {
  const auto lines = heldout_lines(32);
  auto full = load(false);
  auto kv8 = load(false, "", true);
  auto both = load(false, "fp8", true);
  const double ppl = perplexity(*full, lines), ppl_kv = perplexity(*kv8, lines),
               ppl_both = perplexity(*both, lines);
  std::printf(
      "[demo] held-out perplexity, first %zu lines: fp32 KV %.3f, fp8 KV %.3f (ratio %.4f), fp8 "
      "weights + fp8 KV %.3f (ratio %.4f)\n",
      lines.size(), ppl, ppl_kv, ppl_kv / ppl, ppl_both, ppl_both / ppl);
  EXPECT_NE(ppl_kv, ppl);
  EXPECT_LE(ppl_kv / ppl, 1.02);
  EXPECT_LE(ppl_both / ppl, 1.03);  // the weights alone are allowed 3% (the test above)

  RunnerOptions o;
  o.kv_cache_bytes = 8 << 20;
  const ModelRunner f32(kDemo, o, make_cpu_backend(1));
  o.kv_cache_fp8 = true;
  const ModelRunner f8(kDemo, o, make_cpu_backend(1));
  EXPECT_GE(f8.num_kv_blocks(), 4 * f32.num_kv_blocks());  // the same bytes, a quarter a block
  EXPECT_LT(f8.num_kv_blocks(), 4 * (f32.num_kv_blocks() + 1));
  EXPECT_EQ(f8.kv_cache_bytes() / f8.num_kv_blocks() * 4,
            f32.kv_cache_bytes() / f32.num_kv_blocks());
  std::printf("[demo] KV blocks in 8 MiB: fp32 %d, fp8 %d (%.2fx)\n", f32.num_kv_blocks(),
              f8.num_kv_blocks(), double(f8.num_kv_blocks()) / f32.num_kv_blocks());
}

// The checkpoint's per-tensor scales (self_attn.k_scale / v_scale, as llm-compressor writes
// them) divide what the FP8 cache stores: tiny scales saturate it (perplexity far worse), while
// a cache in the activation dtype ignores them; scales on only some layers are refused.
TEST(DemoModel, Fp8KvCacheUsesTheCheckpointScales) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("inferd_kvscales_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // No model.safetensors and no index: every *.safetensors file of the directory is read.
  for (const char* f :
       {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    fs::create_symlink(fs::path(kDemo) / f, dir / f);
  fs::create_symlink(fs::path(kDemo) / "model.safetensors", dir / "weights.safetensors");
  const int64_t layers = 6;
  auto write_scales = [&](float k, float v, int64_t n) {
    std::vector<std::pair<std::string, Tensor>> t;
    for (int64_t i = 0; i < n; ++i) {
      for (auto [name, value] : {std::pair{"k_scale", k}, std::pair{"v_scale", v}}) {
        Tensor x = Tensor::empty_host(DType::kF32, {1});
        x.data_as<float>()[0] = value;
        t.emplace_back("model.layers." + std::to_string(i) + ".self_attn." + name, x);
      }
    }
    write_safetensors((dir / "kv_scales.safetensors").string(), t);
  };
  const auto lines = heldout_lines(8);
  auto ref = load(false);
  const double ppl = perplexity(*ref, lines);
  write_scales(1.0f, 1.0f, layers);
  auto ones = load(false, "", true, dir.string());
  auto ones_auto = load(false, "", false, dir.string());
  write_scales(1e-3f, 1e-3f, layers);
  auto tiny = load(false, "", true, dir.string());
  const double p1 = perplexity(*ones, lines), pa = perplexity(*ones_auto, lines),
               pt = perplexity(*tiny, lines);
  std::printf("[demo] fp8 KV perplexity with scales 1: %.3f, 1e-3: %.3f (fp32 KV %.3f)\n", p1, pt,
              ppl);
  auto plain = load(false, "", true);  // no scale tensors: 1
  EXPECT_EQ(p1, perplexity(*plain, lines));
  EXPECT_EQ(pa, ppl);
  EXPECT_GT(pt, 1.5 * p1);
  write_scales(1.0f, 1.0f, layers - 1);
  std::string err;
  try {
    load(false, "", true, dir.string());
  } catch (const Error& e) {
    err = e.what();
  }
  EXPECT_NE(err.find("5 of the checkpoint's 6 layers have KV cache scales"), std::string::npos)
      << err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace inferd
