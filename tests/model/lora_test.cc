// LoRA adapters on the CPU reference (issue 29): PEFT's adapter_config.json (scales, rank and
// alpha patterns, the keys inferd refuses), the adapter loader's checks against the base model,
// the runner's slots (an adapter equals its weights merged into the base, a mixed batch equals
// each sequence alone, adapters swap through fewer slots than adapters), and, when
// tests/data/lora holds them (tools/make_lora_goldens.py), transformers + peft's logits and greedy
// tokens.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "model/golden_util.h"
#include "model/loader/safetensors.h"
#include "model/lora/peft_adapter.h"
#include "runner/lora_slots.h"
#include "runner/model_runner.h"
#include "runner/simple_generate.h"

namespace inferd {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_util::forward_all;
using testing_util::ints;
using testing_util::rel_err;

const std::string kBase = std::string(INFERD_TEST_DATA_DIR) + "/goldens/llama3";
const std::string kLoraGoldens = std::string(INFERD_TEST_DATA_DIR) + "/lora";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

struct TmpDir {
  fs::path path;
  TmpDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("inferd_lora_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TmpDir() { fs::remove_all(path); }
  std::string str(const std::string& sub = "") const { return (path / sub).string(); }
};

const ModelConfig& base_config() {
  static const ModelConfig c = load_model_config(kBase);
  return c;
}

Tensor random_tensor(std::mt19937& rng, int64_t rows, int64_t cols, float stddev) {
  Tensor t = Tensor::empty_host(DType::kF32, {rows, cols});
  std::normal_distribution<float> d(0.0f, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = d(rng);
  return t;
}

// Writes a PEFT adapter: `config` as adapter_config.json and, for every module of every layer
// that rank_of(module name) gives a rank > 0, seeded random lora_A / lora_B.
void write_adapter(const std::string& dir, const json& config,
                   const std::function<int32_t(const std::string&)>& rank_of, uint32_t seed,
                   const ModelConfig& cfg = base_config()) {
  fs::create_directories(dir);
  std::ofstream(dir + "/adapter_config.json") << config.dump(2);
  std::mt19937 rng(seed);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    for (int i = 0; i < kNumLoraModules; ++i) {
      const LoraModule m = LoraModule(i);
      const std::string module = "model.layers." + std::to_string(l) +
                                 (i <= int(LoraModule::kO) ? ".self_attn." : ".mlp.") +
                                 lora_module_name(m);
      const int32_t r = rank_of(module);
      if (r <= 0) continue;
      const auto [out_f, in_f] = lora_module_shape(cfg, m);
      const std::string p = "base_model.model." + module;
      tensors.emplace_back(p + ".lora_A.weight",
                           random_tensor(rng, r, in_f, 1.0f / std::sqrt(float(in_f))));
      tensors.emplace_back(p + ".lora_B.weight", random_tensor(rng, out_f, r, 0.1f));
    }
  }
  write_safetensors(dir + "/adapter_model.safetensors", tensors);
}

// r=8 on q and v (adapter_a of the goldens).
json config_a() {
  return {{"peft_type", "LORA"}, {"r", 8},
          {"lora_alpha", 16},    {"bias", "none"},
          {"use_dora", false},   {"target_modules", {"q_proj", "v_proj"}}};
}
int32_t rank_a(const std::string& m) {
  return m.ends_with("q_proj") || m.ends_with("v_proj") ? 8 : 0;
}
// r=16 on every linear, rslora, one rank_pattern and one alpha_pattern entry (adapter_b).
json config_b() {
  return {{"peft_type", "LORA"},
          {"r", 16},
          {"lora_alpha", 32},
          {"use_rslora", true},
          {"target_modules", "all-linear"},
          {"rank_pattern", {{"layers.1.mlp.down_proj", 4}}},
          {"alpha_pattern", {{"o_proj", 8}}},
          {"modules_to_save", nullptr},
          {"layers_to_transform", nullptr}};
}
int32_t rank_b(const std::string& m) {
  return m == "model.layers.1.mlp.down_proj" ? 4 : 16;
}

TEST(PeftAdapter, ScalesFollowRankAndAlphaPatternsAndRslora) {
  TmpDir d;
  write_adapter(d.str("a"), config_a(), rank_a, 1);
  write_adapter(d.str("b"), config_b(), rank_b, 2);
  const LoraAdapter a = load_peft_adapter(d.str("a"), base_config());
  EXPECT_EQ(a.max_rank, 8);
  EXPECT_FLOAT_EQ(a.module(0, LoraModule::kQ).scale, 2.0f);  // 16 / 8
  EXPECT_EQ(a.module(1, LoraModule::kV).rank, 8);
  EXPECT_EQ(a.module(0, LoraModule::kK).rank, 0);
  EXPECT_EQ(a.module(1, LoraModule::kDown).rank, 0);
  const LoraAdapter b = load_peft_adapter(d.str("b"), base_config());
  EXPECT_EQ(b.max_rank, 16);
  EXPECT_FLOAT_EQ(b.module(0, LoraModule::kQ).scale, 8.0f);      // 32 / sqrt(16)
  EXPECT_FLOAT_EQ(b.module(1, LoraModule::kO).scale, 2.0f);      // alpha_pattern: 8 / sqrt(16)
  EXPECT_EQ(b.module(1, LoraModule::kDown).rank, 4);             // rank_pattern
  EXPECT_FLOAT_EQ(b.module(1, LoraModule::kDown).scale, 16.0f);  // 32 / sqrt(4)
  EXPECT_EQ(b.module(0, LoraModule::kDown).rank, 16);
  EXPECT_EQ(b.module(0, LoraModule::kDown).a.size(), size_t(16 * 172));
}

TEST(PeftAdapter, RefusesWhatItDoesNotImplementNamingKeyAndFile) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"use_dora", true}}, "DoRA (use_dora) is not supported"},
      {{{"modules_to_save", {"lm_head"}}}, "modules_to_save"},
      {{{"bias", "all"}}, "bias \"all\" is not supported"},
      {{{"fan_in_fan_out", true}}, "fan_in_fan_out"},
      {{{"layers_to_transform", {0}}}, "layers_to_transform is not supported"},
      {{{"target_modules", {"q_proj", "embed_tokens"}}}, "\"embed_tokens\""},
      {{{"target_modules", {"lm_head"}}}, "lm_head"},
      {{{"peft_type", "IA3"}}, "not a LoRA adapter"},
      {{{"r", 0}}, "r must be a positive integer"},
      {{{"rank_pattern", {{"q_proj", -2}}}}, "rank_pattern[\"q_proj\"] must be a positive"},
      {{{"target_modules", 3}}, "target_modules must be"},
  };
  for (const auto& [patch, want] : cases) {
    json c = config_a();
    c.merge_patch(patch);
    const std::string e =
        error_of([&] { parse_peft_lora_config(c.dump(), "x/adapter_config.json"); });
    EXPECT_NE(e.find(want), std::string::npos) << patch.dump() << ": " << e;
    EXPECT_NE(e.find("x/adapter_config.json"), std::string::npos) << e;
  }
}

TEST(PeftAdapter, RefusesTensorsThatDoNotFitTheBase) {
  TmpDir d;
  // An adapter made for a wider model.
  ModelConfig wide = base_config();
  wide.hidden_size = 128;
  write_adapter(d.str("wide"), config_a(), rank_a, 1, wide);
  std::string e = error_of([&] { load_peft_adapter(d.str("wide"), base_config()); });
  EXPECT_NE(e.find("expected [8, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("adapter_model.safetensors"), std::string::npos) << e;
  // A rank the config does not give.
  json c = config_a();
  c["r"] = 4;
  write_adapter(d.str("rank"), c, rank_a, 1);
  e = error_of([&] { load_peft_adapter(d.str("rank"), base_config()); });
  EXPECT_NE(e.find("rank 4 from adapter_config.json"), std::string::npos) << e;
  // A module the config does not target.
  write_adapter(d.str("untargeted"), config_a(), rank_b, 1);
  e = error_of([&] { load_peft_adapter(d.str("untargeted"), base_config()); });
  EXPECT_NE(e.find("is not in adapter_config.json's target_modules"), std::string::npos) << e;
  // --max-lora-rank.
  write_adapter(d.str("b"), config_b(), rank_b, 2);
  e = error_of([&] { load_peft_adapter(d.str("b"), base_config(), 8); });
  EXPECT_NE(e.find("rank 16, more than --max-lora-rank 8"), std::string::npos) << e;
  // lm_head weights, an lora_A without its lora_B, no files.
  fs::create_directories(d.str("head"));
  std::ofstream(d.str("head/adapter_config.json")) << config_a().dump();
  std::mt19937 rng(3);
  write_safetensors(d.str("head/adapter_model.safetensors"),
                    {{"base_model.model.lm_head.lora_A.weight", random_tensor(rng, 8, 64, 1)}});
  e = error_of([&] { load_peft_adapter(d.str("head"), base_config()); });
  EXPECT_NE(e.find("lm_head.lora_A.weight: LoRA on embeddings or lm_head"), std::string::npos) << e;
  write_safetensors(d.str("head/adapter_model.safetensors"),
                    {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                      random_tensor(rng, 8, 64, 1)}});
  e = error_of([&] { load_peft_adapter(d.str("head"), base_config()); });
  EXPECT_NE(e.find("has lora_A but no lora_B"), std::string::npos) << e;
  e = error_of([&] { load_peft_adapter(d.str("nothing"), base_config()); });
  EXPECT_NE(e.find("not a directory"), std::string::npos) << e;
}

TEST(LoraSlotTable, ReusesResidentSlotsThenFreeOnesThenTheLeastRecentlyUsedIdleOne) {
  LoraSlotTable t(2);
  bool load = false;
  EXPECT_EQ(t.acquire(7, {}, 1, &load), 0);
  EXPECT_TRUE(load);
  EXPECT_EQ(t.acquire(7, {}, 2, &load), 0);
  EXPECT_FALSE(load);
  EXPECT_EQ(t.acquire(9, {}, 3, &load), 1);
  EXPECT_TRUE(load);
  // Both full: 11 evicts the least recently used (7, used at 2) unless that slot is busy.
  const std::vector<int32_t> busy0 = {0};
  EXPECT_EQ(t.acquire(11, busy0, 4, &load), 1);
  EXPECT_EQ(t.find(9), -1);
  EXPECT_EQ(t.acquire(12, std::vector<int32_t>{0, 1}, 5, &load), -1);
  t.release(7);
  EXPECT_EQ(t.acquire(12, std::vector<int32_t>{1}, 6, &load), 0);
  EXPECT_EQ(t.id_in(0), 12);
}

std::unique_ptr<ModelRunner> runner(const std::string& dir, int32_t max_loras,
                                    int32_t max_rank = 16) {
  RunnerOptions o;
  o.num_kv_blocks = 64;
  o.block_size = 16;
  o.max_num_batched_tokens = 256;
  o.max_loras = max_loras;
  o.max_lora_rank = max_rank;
  return std::make_unique<ModelRunner>(dir, o, make_cpu_backend(2));
}

// The base model directory with every module of `ad` merged in: W + scale B A (fp64 sums).
void write_merged(const std::string& dir, const LoraAdapter& ad) {
  fs::create_directories(dir);
  fs::copy_file(kBase + "/config.json", dir + "/config.json");
  const SafetensorsIndex base = SafetensorsIndex::open_dir(kBase);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, info] : base.tensors()) {
    const Tensor src = base.get_float(name);
    Tensor t = Tensor::empty_host(DType::kF32, src.shape());
    ASSERT_EQ(src.dtype(), DType::kF32);
    std::copy(src.data_as<float>(), src.data_as<float>() + src.numel(), t.data_as<float>());
    for (int64_t l = 0; l < int64_t(ad.layers.size()); ++l) {
      for (int i = 0; i < kNumLoraModules; ++i) {
        const LoraModule m = LoraModule(i);
        const std::string want = "model.layers." + std::to_string(l) +
                                 (i <= int(LoraModule::kO) ? ".self_attn." : ".mlp.") +
                                 lora_module_name(m) + ".weight";
        const LoraModuleWeights& w = ad.module(l, m);
        if (name != want || w.rank == 0) continue;
        const int64_t N = t.size(0), K = t.size(1);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < K; ++k) {
            double s = 0;
            for (int64_t r = 0; r < w.rank; ++r)
              s += double(w.b[size_t(n * w.rank + r)]) * w.a[size_t(r * K + k)];
            t.data_as<float>()[n * K + k] += float(w.scale * s);
          }
      }
    }
    out.emplace_back(name, t);
  }
  write_safetensors(dir + "/model.safetensors", out);
}

std::vector<std::vector<int32_t>> test_prompts() {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> ps;
  for (int n : {1, 7, 21, 40}) {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(int32_t(3 + rng() % 317));
    ps.push_back(p);
  }
  return ps;
}

class LoraRunner : public ::testing::Test {
 protected:
  void SetUp() override {
    write_adapter(dir_.str("a"), config_a(), rank_a, 11);
    write_adapter(dir_.str("b"), config_b(), rank_b, 12);
    a_ = std::make_shared<LoraAdapter>(load_peft_adapter(dir_.str("a"), base_config()));
    b_ = std::make_shared<LoraAdapter>(load_peft_adapter(dir_.str("b"), base_config()));
  }
  TmpDir dir_;
  std::shared_ptr<const LoraAdapter> a_, b_;
};

TEST_F(LoraRunner, AnAdapterEqualsItsWeightsMergedIntoTheBase) {
  auto m = runner(kBase, 2);
  m->add_lora_adapter(0, a_);
  m->add_lora_adapter(1, b_);
  auto base = runner(kBase, 0);
  const auto prompts = test_prompts();
  int id = 0;
  for (const auto& ad : {a_, b_}) {
    const std::string merged = dir_.str("merged" + std::to_string(id));
    write_merged(merged, *ad);
    auto ref = runner(merged, 0);
    for (size_t p = 0; p < prompts.size(); ++p) {
      const auto want = forward_all(*ref, {prompts[p]}, 64)[0];
      const auto got = forward_all(*m, {prompts[p]}, 64, {id})[0];
      EXPECT_LT(rel_err(got.data(), want.data(), want.size()), 1e-5) << "adapter " << id;
      // and the adapter changes the model
      const auto plain = forward_all(*base, {prompts[p]}, 64)[0];
      EXPECT_GT(rel_err(got.data(), plain.data(), plain.size()), 1e-3) << "adapter " << id;
    }
    ++id;
  }
}

TEST_F(LoraRunner, AMixedBatchEqualsEachSequenceAlone) {
  auto m = runner(kBase, 2);
  m->add_lora_adapter(0, a_);
  m->add_lora_adapter(1, b_);
  const auto prompts = test_prompts();
  // Every prompt with the base, adapter 0 and adapter 1, all in one batch.
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> ids;
  for (int32_t id : {1, -1, 0})
    for (const auto& p : prompts) {
      seqs.push_back(p);
      ids.push_back(id);
    }
  for (int32_t chunk : {5, 64}) {
    const auto mixed = forward_all(*m, seqs, chunk, ids);
    for (size_t s = 0; s < seqs.size(); ++s) {
      const auto alone = forward_all(*m, {seqs[s]}, 64, {ids[s]})[0];
      EXPECT_LT(rel_err(mixed[s].data(), alone.data(), alone.size()), 1e-5)
          << "seq " << s << " adapter " << ids[s] << " chunk " << chunk;
    }
  }
}

TEST_F(LoraRunner, AdaptersSwapThroughFewerSlots) {
  auto two = runner(kBase, 2);
  auto one = runner(kBase, 1);
  for (auto* m : {two.get(), one.get()}) {
    m->add_lora_adapter(0, a_);
    m->add_lora_adapter(1, b_);
  }
  const auto p = test_prompts()[2];
  for (int32_t id : {0, 1, 0, -1, 1}) {
    const auto want = forward_all(*two, {p}, 64, {id})[0];
    const auto got = forward_all(*one, {p}, 64, {id})[0];
    EXPECT_LT(rel_err(got.data(), want.data(), want.size()), 1e-6) << "adapter " << id;
    if (id >= 0) {
      EXPECT_EQ(one->lora_slot_of(id), 0);
      EXPECT_EQ(one->lora_slot_of(1 - id), -1);  // waits in host memory
    }
  }
  const std::string e = error_of([&] { forward_all(*one, {p, p}, 64, {0, 1}); });
  EXPECT_NE(e.find("more LoRA adapters than --max-loras 1"), std::string::npos) << e;
  // Unloaded: its rows are refused; loaded again under the same id: used again.
  one->remove_lora_adapter(1);
  EXPECT_NE(error_of([&] { forward_all(*one, {p}, 64, {1}); }).find("which is not loaded"),
            std::string::npos);
  one->add_lora_adapter(1, b_);
  const auto again = forward_all(*one, {p}, 64, {1})[0];
  const auto want = forward_all(*two, {p}, 64, {1})[0];
  EXPECT_LT(rel_err(again.data(), want.data(), want.size()), 1e-6);
}

TEST_F(LoraRunner, RefusesAdaptersItCannotRun) {
  auto off = runner(kBase, 0);
  const auto p = test_prompts()[1];
  EXPECT_NE(error_of([&] { forward_all(*off, {p}, 64, {0}); }).find("LoRA is off (--enable-lora)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { off->add_lora_adapter(0, a_); }).find("--enable-lora"),
            std::string::npos);
  auto small = runner(kBase, 1, 8);
  small->add_lora_adapter(0, a_);
  EXPECT_NE(error_of([&] {
              small->add_lora_adapter(1, b_);
            }).find("has rank 16, more than --max-lora-rank 8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { forward_all(*small, {p}, 64, {3}); }).find("adapter 3, which is not"),
            std::string::npos);
  const std::string phi3 = std::string(INFERD_TEST_DATA_DIR) + "/goldens/phi3";
  EXPECT_NE(error_of([&] { runner(phi3, 1); }).find("not supported for Phi3ForCausalLM"),
            std::string::npos);
  const std::string gemma = std::string(INFERD_TEST_DATA_DIR) + "/goldens/gemma3";
  EXPECT_NE(error_of([&] { runner(gemma, 1); }).find("not supported for Gemma3ForCausalLM"),
            std::string::npos);
}

// transformers + peft: tests/data/lora, committed (made by tools/make_lora_goldens.py on the GPU
// machine).
TEST(LoraGoldens, LogitsAndGreedyTokensMatchPeft) {
  ASSERT_TRUE(fs::exists(kLoraGoldens + "/golden.safetensors"))
      << kLoraGoldens << " is missing (tools/make_lora_goldens.py writes it)";
  const auto gold = SafetensorsIndex::open_file(kLoraGoldens + "/golden.safetensors");
  auto m = runner(kBase, 2);
  m->add_lora_adapter(0, std::make_shared<LoraAdapter>(
                             load_peft_adapter(kLoraGoldens + "/adapter_a", base_config())));
  m->add_lora_adapter(1, std::make_shared<LoraAdapter>(
                             load_peft_adapter(kLoraGoldens + "/adapter_b", base_config())));
  const std::vector<std::pair<std::string, int32_t>> models = {
      {"base", -1}, {"adapter_a", 0}, {"adapter_b", 1}};
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; gold.contains("prompt" + std::to_string(i) + ".ids"); ++i)
    prompts.push_back(ints(gold.get("prompt" + std::to_string(i) + ".ids")));
  ASSERT_GE(prompts.size(), 3u);
  // Every prompt with every model in one mixed batch, in chunks of 7.
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int32_t> ids;
  for (const auto& [name, id] : models)
    for (const auto& p : prompts) {
      seqs.push_back(p);
      ids.push_back(id);
    }
  const auto got = forward_all(*m, seqs, 7, ids);
  size_t s = 0;
  for (const auto& [name, id] : models) {
    double worst = 0;
    for (size_t i = 0; i < prompts.size(); ++i, ++s) {
      const Tensor ref = gold.get(name + ".prompt" + std::to_string(i) + ".logits");
      ASSERT_EQ(size_t(ref.numel()), got[s].size());
      const double err = rel_err(got[s].data(), ref.data_as<float>(), got[s].size());
      worst = std::max(worst, err);
      EXPECT_LT(err, 1e-4) << name << " prompt " << i;
    }
    std::printf("[lora-golden] %s: max rel err %.2e vs peft (mixed batch, chunks of 7)\n",
                name.c_str(), worst);
    const int pi = ints(gold.get("greedy.prompt_index"))[0];
    const auto want = ints(gold.get(name + ".greedy.tokens"));
    EXPECT_EQ(greedy_generate(*m, prompts[size_t(pi)], int32_t(want.size()), 64, {}, nullptr, id),
              want)
        << name;
  }
}

}  // namespace
}  // namespace inferd
