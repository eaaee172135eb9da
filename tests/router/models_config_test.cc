// Multi-model serving's configuration (issue 31 item 3): keep_alive durations (Ollama's), memory
// sizes, --model values, the --models file (errors name the file, line and key), flag merging and
// the memory need estimates.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "router/model_manager.h"
#include "router/models_config.h"

namespace inferd::router {
namespace {

TEST(KeepAlive, OllamaDurations) {
  EXPECT_DOUBLE_EQ(parse_keep_alive("5m"), 300);
  EXPECT_DOUBLE_EQ(parse_keep_alive("30s"), 30);
  EXPECT_DOUBLE_EQ(parse_keep_alive("1h30m"), 5400);
  EXPECT_DOUBLE_EQ(parse_keep_alive("1.5h"), 5400);
  EXPECT_DOUBLE_EQ(parse_keep_alive("250ms"), 0.25);
  EXPECT_DOUBLE_EQ(parse_keep_alive("0"), 0);
  EXPECT_DOUBLE_EQ(parse_keep_alive("-1"), -1);
  EXPECT_DOUBLE_EQ(parse_keep_alive("-1m"), -60);
  EXPECT_DOUBLE_EQ(parse_keep_alive("120"), 120);  // seconds, as Ollama's JSON number
}

TEST(KeepAlive, BadValuesSayWhatIsExpected) {
  for (const char* bad : {"", "zz", "5x", "m", "5m3", "1..2s", "-"}) {
    try {
      parse_keep_alive(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("duration"), std::string::npos) << e.what();
    }
  }
}

TEST(MemorySize, UnitsAndErrors) {
  EXPECT_EQ(parse_memory_size("1024", "x"), 1024);
  EXPECT_EQ(parse_memory_size("2GiB", "x"), 2ll << 30);
  EXPECT_EQ(parse_memory_size("2G", "x"), 2ll << 30);
  EXPECT_EQ(parse_memory_size("2GB", "x"), 2'000'000'000);
  EXPECT_EQ(parse_memory_size("0.5GiB", "x"), 1ll << 29);
  EXPECT_EQ(parse_memory_size("512MiB", "x"), 512ll << 20);
  EXPECT_THROW(parse_memory_size("lots", "--memory-budget"), Error);
  EXPECT_THROW(parse_memory_size("-1G", "--memory-budget"), Error);
  EXPECT_THROW(parse_memory_size("3 parsecs", "--memory-budget"), Error);
  try {
    parse_memory_size("12Q", "--memory-budget");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--memory-budget: '12Q'"), std::string::npos);
  }
}

TEST(ModelFlag, NameFromPathOrGiven) {
  EXPECT_EQ(model_from_flag("/models/Qwen3-8B").name, "Qwen3-8B");
  EXPECT_EQ(model_from_flag("/models/Qwen3-8B/").name, "Qwen3-8B");
  EXPECT_EQ(model_from_flag("./m/tiny-Q4_K_M.gguf").name, "tiny-Q4_K_M");
  const ModelEntry e = model_from_flag("qwen=/models/Qwen3-8B");
  EXPECT_EQ(e.name, "qwen");
  EXPECT_EQ(e.path, "/models/Qwen3-8B");
  // A '=' after a '/' is part of the path.
  EXPECT_EQ(model_from_flag("/m/a=b").path, "/m/a=b");
  EXPECT_THROW(model_from_flag("x="), Error);
}

bool serve_flag(const std::string& f) {
  return f == "max-model-len" || f == "dtype" || f == "enforce-eager" || f == "device" ||
         f == "kv-cache-memory";
}

TEST(ModelsFile, ParsesModelsWithTheirFlags) {
  const std::string text = R"({"models": [
  {"name": "qwen", "model": "/m/qwen", "aliases": ["q", "qw"], "memory": "20GiB",
   "max_model_len": 8192, "dtype": "bfloat16", "enforce_eager": true},
  {"path": "/m/llama", "alias": "l", "enforce-eager": false}
]})";
  const auto ms = parse_models_file(text, "models.json", serve_flag);
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].name, "qwen");
  EXPECT_EQ(ms[0].aliases, (std::vector<std::string>{"q", "qw"}));
  EXPECT_EQ(ms[0].memory_bytes, 20ll << 30);
  EXPECT_EQ(to_args(ms[0].flags), (std::vector<std::string>{"--dtype=bfloat16", "--enforce-eager",
                                                            "--max-model-len=8192"}));
  EXPECT_EQ(ms[1].name, "llama");
  EXPECT_EQ(ms[1].aliases, std::vector<std::string>{"l"});
  EXPECT_EQ(to_args(ms[1].flags), std::vector<std::string>{"--enforce-eager=false"});
  EXPECT_EQ(ms[1].line, 4);
  // A bare list is taken too.
  EXPECT_EQ(parse_models_file(R"([{"model": "/m/a"}])", "f", serve_flag).size(), 1u);
}

std::string error_of(const std::string& text) {
  try {
    parse_models_file(text, "models.json", serve_flag);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(ModelsFile, ErrorsNameTheFileLineAndKey) {
  const std::string unknown = error_of(R"({"models": [
  {"model": "/m/a"},
  {"model": "/m/b",
   "max_model_len": 512,
   "temprature": 0.5}
]})");
  EXPECT_NE(unknown.find("models.json:5:"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("unknown key 'temprature'"), std::string::npos) << unknown;
  // The line is the model's own, not an earlier model's key of the same name.
  const std::string second = error_of(R"({"models": [
  {"model": "/m/a", "aliases": "x"},
  {"model": "/m/b",
   "aliases": [1]}
]})");
  EXPECT_NE(second.find("models.json:4: model '/m/b'"), std::string::npos) << second;
  EXPECT_NE(error_of(R"({"modles": []})").find("unknown key 'modles'"), std::string::npos);
  EXPECT_NE(error_of("{not json").find("not JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"models": [{"name": "x"}]})").find("\"model\""), std::string::npos);
  EXPECT_NE(error_of(R"({"models": []})").find("non-empty"), std::string::npos);
  EXPECT_NE(error_of(R"([{"model": "/a", "memory": "big"}])").find("not a memory size"),
            std::string::npos);
  EXPECT_NE(error_of(R"([{"model": "/a", "aliases": [1]}])").find("aliases"), std::string::npos);
}

TEST(ModelsFile, DuplicateNamesAreRefused) {
  std::vector<ModelEntry> ms{model_from_flag("/m/x"), model_from_flag("/n/x")};
  EXPECT_THROW(check_models(ms), Error);
  ms[1] = model_from_flag("y=/n/x");
  EXPECT_NO_THROW(check_models(ms));
  ms[1].aliases = {"x"};
  EXPECT_THROW(check_models(ms), Error);
}

// The same file in YAML (models_yaml.h): the same entries, typed by YAML 1.2's core schema.
TEST(ModelsYaml, ParsesModelsWithTheirFlags) {
  const std::string text = R"(# two models
models:
  - name: qwen
    model: /m/qwen
    aliases: [q, qw]
    memory: 20GiB
    max_model_len: 8192
    dtype: bfloat16
    enforce_eager: true
  - path: /m/llama
    alias: l
    enforce-eager: false
    device: "123"
)";
  const auto ms = parse_models_file(text, "models.yaml", serve_flag);
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].name, "qwen");
  EXPECT_EQ(ms[0].aliases, (std::vector<std::string>{"q", "qw"}));
  EXPECT_EQ(ms[0].memory_bytes, 20ll << 30);
  EXPECT_EQ(to_args(ms[0].flags), (std::vector<std::string>{"--dtype=bfloat16", "--enforce-eager",
                                                            "--max-model-len=8192"}));
  EXPECT_EQ(ms[0].line, 4);
  EXPECT_EQ(ms[1].name, "llama");
  EXPECT_EQ(ms[1].aliases, std::vector<std::string>{"l"});
  EXPECT_EQ(to_args(ms[1].flags),
            (std::vector<std::string>{"--device=123", "--enforce-eager=false"}));
  EXPECT_EQ(ms[1].line, 10);
  // A bare list, and a .yml name; JSON text in a file with no extension is still JSON, YAML
  // text in one is YAML.
  EXPECT_EQ(parse_models_file("- model: /m/a\n", "m.yml", serve_flag).size(), 1u);
  EXPECT_EQ(parse_models_file("- model: /m/a\n- model: /m/b\n", "models", serve_flag).size(), 2u);
  EXPECT_EQ(parse_models_file(R"({"models": [{"model": "/m/a"}]})", "models", serve_flag)[0].path,
            "/m/a");
  // JSON is YAML: a .yaml file may hold it.
  EXPECT_EQ(parse_models_file(R"({"models": [{"model": "/m/a", "dtype": "float32"}]})", "m.yaml",
                              serve_flag)[0]
                .flags.size(),
            1u);
}

std::string yaml_error_of(const std::string& text) {
  try {
    parse_models_file(text, "models.yaml", serve_flag);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(ModelsYaml, ErrorsNameTheFileLineAndKey) {
  const std::string unknown = yaml_error_of(R"(models:
  - model: /m/a
  - model: /m/b
    max_model_len: 512
    temprature: 0.5
)");
  EXPECT_NE(unknown.find("models.yaml:5: model '/m/b': unknown key 'temprature'"),
            std::string::npos)
      << unknown;
  // Wrong types: a list where a string goes, a number where a name goes, a mapping in a list.
  const std::string name = yaml_error_of("models:\n  - model: /m/a\n    name: [x, y]\n");
  EXPECT_NE(name.find("models.yaml:3: model '/m/a': \"name\" must be a non-empty string"),
            std::string::npos)
      << name;
  EXPECT_NE(yaml_error_of("models:\n  - model: /m/a\n    name: 5\n").find("\"name\" must be"),
            std::string::npos);
  const std::string aliases = yaml_error_of("models:\n  - model: /m/a\n    aliases: [{x: 1}]\n");
  EXPECT_NE(aliases.find("models.yaml:3:"), std::string::npos) << aliases;
  EXPECT_NE(aliases.find("\"aliases\" must be a string or a list of strings"), std::string::npos)
      << aliases;
  EXPECT_NE(yaml_error_of("models:\n  - model: /m/a\n    dtype:\n").find("'dtype' must be"),
            std::string::npos);
  EXPECT_NE(yaml_error_of("models:\n  - model: 12\n").find("\"model\" (its path)"),
            std::string::npos);
  EXPECT_NE(yaml_error_of("models:\n  - model: /a\n    memory: big\n").find("not a memory size"),
            std::string::npos);
  // Not YAML, an unknown top-level key, an empty list, a key given twice.
  const std::string syntax = yaml_error_of("models:\n  - model: [/m/a\n");
  EXPECT_NE(syntax.find("models.yaml:"), std::string::npos) << syntax;
  EXPECT_NE(syntax.find("not YAML"), std::string::npos) << syntax;
  EXPECT_NE(yaml_error_of("\nmodles: []\n").find("models.yaml:2: unknown key 'modles'"),
            std::string::npos);
  EXPECT_NE(yaml_error_of("models: []\n").find("non-empty"), std::string::npos);
  const std::string twice = yaml_error_of(
      "models:\n  - model: /m/a\n    dtype: float32\n"
      "    dtype: bfloat16\n");
  EXPECT_NE(twice.find("models.yaml:4: duplicate key 'dtype' (given on line 3 already)"),
            std::string::npos)
      << twice;
}

TEST(ModelsYaml, DuplicateModelsAreRefused) {
  const auto ms =
      parse_models_file("models:\n  - model: /m/x\n  - model: /n/x\n", "models.yaml", serve_flag);
  try {
    check_models(ms);
    ADD_FAILURE() << "two models named x accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("two models are named 'x'"), std::string::npos);
  }
  const auto alias = parse_models_file(
      "models:\n  - {model: /m/x, name: a}\n  - {model: /m/y, name: b, aliases: [a]}\n",
      "models.yaml", serve_flag);
  EXPECT_THROW(check_models(alias), Error);
}

TEST(Flags, AModelsOwnFlagReplacesTheSharedOne) {
  const std::vector<FlagValue> shared{{"device", "cpu"}, {"max-model-len", "1024"}};
  const std::vector<FlagValue> own{{"max-model-len", "256"}};
  EXPECT_EQ(to_args(merge_flags(shared, own)),
            (std::vector<std::string>{"--device=cpu", "--max-model-len=256"}));
}

TEST(Estimate, CpuModelIsItsFilesPlusTheKvCache) {
  const std::string demo = std::string(INFERD_SOURCE_DIR) + "/models/demo";
  const int64_t files =
      int64_t(std::filesystem::file_size(std::filesystem::path(demo) / "model.safetensors"));
  MachineMemory mm;
  mm.host_total_bytes = 64ll << 30;
  ModelEntry e = model_from_flag(demo);
  const int64_t need = estimate_need_bytes(e, {{"device", "cpu"}, {"kv-cache-memory", "0.25"}}, mm);
  EXPECT_GE(need, files + (1ll << 28));
  EXPECT_LE(need, files + (1ll << 28) + (128ll << 20));
  e.memory_bytes = 12345;
  EXPECT_EQ(estimate_need_bytes(e, {}, mm), 12345);
  EXPECT_EQ(default_memory_budget(false, mm), (64ll << 30) * 9 / 10);
}

TEST(Estimate, Dummy8BOnAGpu) {
  // Llama-3.1-8B's shape in bf16: 16.06 GB of weights.
  const ModelEntry e =
      model_from_flag(std::string(INFERD_SOURCE_DIR) + "/models/configs/llama-3.1-8b");
  MachineMemory mm;
  mm.gpu_total_bytes = 80ll << 30;
  std::string how;
  // 8192 KV blocks of 16 tokens: 32 layers x 2 x 16 x 8 heads x 128 x 2 bytes = 2 MiB a block.
  const int64_t blocks = estimate_need_bytes(
      e, {{"load-format", "dummy"}, {"num-kv-blocks", "8192"}, {"device", "cuda"}}, mm, &how);
  EXPECT_GT(blocks, int64_t(16.0e9) + (16ll << 30));
  EXPECT_LT(blocks, int64_t(16.1e9) + (16ll << 30) + (2ll << 30));
  EXPECT_NE(how.find("weights 14.9"), std::string::npos) << how;
  // An FP8 KV cache: half the bytes a block.
  const int64_t fp8_blocks = estimate_need_bytes(e,
                                                 {{"load-format", "dummy"},
                                                  {"num-kv-blocks", "8192"},
                                                  {"device", "cuda"},
                                                  {"kv-cache-dtype", "fp8"}},
                                                 mm);
  EXPECT_GT(fp8_blocks, int64_t(16.0e9) + (8ll << 30));
  EXPECT_LT(fp8_blocks, int64_t(16.1e9) + (8ll << 30) + (2ll << 30));
  // Without blocks: its --gpu-memory-utilization share of the GPU.
  const int64_t share = estimate_need_bytes(
      e, {{"load-format", "dummy"}, {"gpu-memory-utilization", "0.45"}}, mm, &how);
  EXPECT_EQ(share, int64_t(0.45 * double(80ll << 30)));
  EXPECT_TRUE(runs_on_gpu({}, mm));
  EXPECT_FALSE(runs_on_gpu({{"device", "cpu"}}, mm));
  EXPECT_EQ(default_memory_budget(true, mm), 80ll << 30);
}

TEST(Manager, RefusesBadConfigurations) {
  ModelManagerConfig c;
  c.memory_budget_bytes = 1 << 30;
  EXPECT_THROW(ModelManager{c}, Error);  // no models
  c.models.push_back(ModelSpec{"a", {"b"}, "/m/a", {}, 1});
  c.models.push_back(ModelSpec{"b", {}, "/m/b", {}, 1});
  EXPECT_THROW(ModelManager{c}, Error);  // 'b' twice
  c.models.pop_back();
  c.memory_budget_bytes = 0;
  EXPECT_THROW(ModelManager{c}, Error);
  c.memory_budget_bytes = 1 << 30;
  ModelManager m(c);
  EXPECT_EQ(m.resolve("b"), "a");
  EXPECT_EQ(m.resolve("c"), std::nullopt);
}

}  // namespace
}  // namespace inferd::router
