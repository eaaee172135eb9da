// The multi-model configuration: --model values, the --models file (JSON or YAML), memory sizes,
// and the memory need estimate of each model.
#include "router/models_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "router/models_yaml.h"

namespace inferd::router {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The line of the first `"key"` in `text` at or after `from` (1-based).
int line_of(const std::string& text, const std::string& key, size_t from) {
  size_t pos = text.find('"' + key + '"', from);
  if (pos == std::string::npos) pos = from;
  return 1 + int(std::count(text.begin(), text.begin() + std::min(pos, text.size()), '\n'));
}

// Offsets of the '{' that open the models list's objects: those at `depth` (brackets and braces
// counted, strings skipped).
std::vector<size_t> element_starts(const std::string& text, int depth) {
  std::vector<size_t> out;
  int d = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[') {
      if (c == '{' && d == depth) out.push_back(i);
      ++d;
    } else if (c == '}' || c == ']') {
      --d;
    }
  }
  return out;
}

std::string kebab(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

// A flag's value as the command line would carry it.
std::vector<std::string> flag_values(const json& v) {
  if (v.is_string()) return {v.get<std::string>()};
  if (v.is_boolean()) return {v.get<bool>() ? "" : "false"};
  if (v.is_number()) return {v.dump()};
  if (v.is_array()) {
    std::vector<std::string> out;
    for (const json& x : v) {
      if (x.is_array() || x.is_object() || x.is_null()) return {};
      auto one = flag_values(x);
      out.insert(out.end(), one.begin(), one.end());
    }
    return out;
  }
  if (v.is_object()) return {v.dump()};  // a JSON-valued flag (--pooler-config, ...)
  return {};
}

std::optional<std::string> flag(const std::vector<FlagValue>& flags, const std::string& name) {
  std::optional<std::string> out;
  for (const auto& [k, v] : flags)
    if (k == name) out = v;
  return out;
}

double number_flag(const std::vector<FlagValue>& flags, const std::string& name, double dflt) {
  const auto v = flag(flags, name);
  if (!v) return dflt;
  try {
    size_t used = 0;
    const double d = std::stod(*v, &used);
    if (used == v->size()) return d;
  } catch (const std::exception&) {
  }
  fail("--{}: expected a number, got '{}'", name, *v);
}

// Bytes of the weight files of a model directory or file.
int64_t weight_file_bytes(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return int64_t(fs::file_size(path, ec));
  int64_t n = 0;
  if (!fs::is_directory(path, ec)) return 0;
  for (const auto& f : fs::directory_iterator(path, ec)) {
    const std::string ext = f.path().extension().string();
    if (f.is_regular_file(ec) && (ext == ".safetensors" || ext == ".gguf" || ext == ".bin"))
      n += int64_t(f.file_size(ec));
  }
  return n;
}

json read_config(const std::string& path) {
  std::ifstream in(fs::path(path) / "config.json");
  if (!in) return json::object();
  try {
    json c = json::parse(in);
    if (c.contains("text_config") && c["text_config"].is_object()) c.update(c["text_config"]);
    return c;
  } catch (const json::exception&) {
    return json::object();
  }
}

int64_t cfg(const json& c, const char* key, int64_t dflt) {
  const auto it = c.find(key);
  return it != c.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}

// Parameters of a decoder from config.json's shape (dense; MoE counts every expert).
int64_t estimate_params(const json& c) {
  const int64_t hidden = cfg(c, "hidden_size", 0), layers = cfg(c, "num_hidden_layers", 0);
  const int64_t heads = cfg(c, "num_attention_heads", 1);
  const int64_t kv_heads = cfg(c, "num_key_value_heads", heads);
  const int64_t head_dim = cfg(c, "head_dim", heads > 0 ? hidden / heads : 0);
  const int64_t inter = cfg(c, "moe_intermediate_size", cfg(c, "intermediate_size", 4 * hidden));
  const int64_t experts =
      std::max<int64_t>(1, cfg(c, "num_experts", cfg(c, "num_local_experts", 1)));
  const int64_t vocab = cfg(c, "vocab_size", 0);
  const bool tied = c.value("tie_word_embeddings", false);
  const int64_t attn = hidden * head_dim * (2 * heads + 2 * kv_heads);
  const int64_t mlp = 3 * hidden * inter * experts;
  return layers * (attn + mlp + 2 * hidden) + vocab * hidden * (tied ? 1 : 2);
}

int64_t kv_bytes_per_block(const json& c, int64_t block_size, int64_t dtype_bytes) {
  const int64_t heads = cfg(c, "num_attention_heads", 1);
  const int64_t kv_heads = cfg(c, "num_key_value_heads", heads);
  const int64_t head_dim = cfg(c, "head_dim", heads > 0 ? cfg(c, "hidden_size", 0) / heads : 0);
  return cfg(c, "num_hidden_layers", 0) * 2 * block_size * kv_heads * head_dim * dtype_bytes;
}

}  // namespace

int64_t parse_memory_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  unit.erase(0, unit.find_first_not_of(' '));
  static const std::map<std::string, double> kUnits = {
      {"", 1},       {"B", 1},        {"K", 0x1p10},   {"KiB", 0x1p10}, {"KB", 1e3},
      {"M", 0x1p20}, {"MiB", 0x1p20}, {"MB", 1e6},     {"G", 0x1p30},   {"GiB", 0x1p30},
      {"GB", 1e9},   {"T", 0x1p40},   {"TiB", 0x1p40}, {"TB", 1e12}};
  const auto it = kUnits.find(unit);
  if (used == 0 || it == kUnits.end() || !std::isfinite(v) || v <= 0)
    fail(
        "{}: '{}' is not a memory size: expected a positive number of bytes or a size such as "
        "24GiB, 24G, 512MiB, 24GB",
        what, text);
  return int64_t(v * it->second);
}

namespace {

// A model's default name: its directory's or file's name, without .gguf.
std::string name_of_path(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  return p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
}

}  // namespace

ModelEntry model_from_flag(const std::string& value) {
  ModelEntry m;
  const size_t eq = value.find('=');
  if (eq != std::string::npos && value.substr(0, eq).find('/') == std::string::npos) {
    m.name = value.substr(0, eq);
    m.path = value.substr(eq + 1);
  } else {
    m.path = value;
  }
  if (m.path.empty()) fail("--model '{}': no path (expected PATH or NAME=PATH)", value);
  if (m.name.empty()) m.name = name_of_path(m.path);
  return m;
}

namespace {

// The line of key `key` of model `index` (-1: a top-level key) in the file.
using KeyLine = std::function<int(int index, const std::string& key)>;

std::vector<ModelEntry> parse_models_doc(
    const json& doc, const std::string& source, const KeyLine& key_line,
    const std::function<bool(const std::string&)>& known_flag) {
  const json* list = &doc;
  if (doc.is_object()) {
    for (const auto& [k, v] : doc.items())
      if (k != "models")
        fail("{}:{}: unknown key '{}' at the top: expected \"models\"", source, key_line(-1, k), k);
    if (!doc.contains("models")) fail("{}: no \"models\" list", source);
    list = &doc["models"];
  }
  if (!list->is_array() || list->empty())
    fail("{}: \"models\" must be a non-empty list of model objects", source);
  std::vector<ModelEntry> out;
  for (size_t i = 0; i < list->size(); ++i) {
    const json& o = (*list)[i];
    const std::string where = fmt::format("{}: model {}", source, i + 1);
    if (!o.is_object()) fail("{}: expected an object, got {}", where, o.dump());
    ModelEntry m;
    const auto path_key = o.contains("model") ? "model" : "path";
    if (!o.contains(path_key) || !o[path_key].is_string() || o[path_key].get<std::string>().empty())
      fail("{}: \"model\" (its path) must be a non-empty string", where);
    m.line = key_line(int(i), path_key);
    if (o.contains("model") && o.contains("path"))
      fail("{}:{}: give \"model\" or \"path\", not both", source, m.line);
    m.path = o[path_key].get<std::string>();
    m.name = name_of_path(m.path);
    for (const auto& [k, v] : o.items()) {
      const std::string at = fmt::format("{}:{}: model '{}'", source, key_line(int(i), k), m.path);
      if (k == "model" || k == "path") continue;
      if (k == "name") {
        if (!v.is_string() || v.get<std::string>().empty())
          fail("{}: \"name\" must be a non-empty string", at);
        m.name = v.get<std::string>();
      } else if (k == "aliases" || k == "alias") {
        for (const json& a : v.is_array() ? v : json::array({v})) {
          if (!a.is_string() || a.get<std::string>().empty())
            fail("{}: \"{}\" must be a string or a list of strings", at, k);
          m.aliases.push_back(a.get<std::string>());
        }
      } else if (k == "memory") {
        m.memory_bytes = v.is_number()
                             ? parse_memory_size(v.dump(), at + " \"memory\"")
                             : parse_memory_size(v.is_string() ? v.get<std::string>() : v.dump(),
                                                 at + " \"memory\"");
      } else {
        const std::string f = kebab(k);
        if (!known_flag(f))
          fail(
              "{}: unknown key '{}': expected name, model, aliases, memory, or a flag of "
              "`inferd serve` that applies to one model (max_model_len, dtype, "
              "gpu_memory_utilization, kv_cache_memory, quantization, device, ...)",
              at, k);
        const std::vector<std::string> vals = flag_values(v);
        if (vals.empty()) fail("{}: '{}' must be a string, number, boolean or list", at, k);
        for (const auto& x : vals) m.flags.emplace_back(f, x);
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

std::vector<ModelEntry> parse_models_file(
    const std::string& text, const std::string& source,
    const std::function<bool(const std::string&)>& known_flag) {
  if (is_yaml_models_file(source, text)) {
    const YamlAsJson y = yaml_to_json(text, source);
    const bool top = y.doc.is_object();
    return parse_models_doc(
        y.doc, source,
        [&](int index, const std::string& key) {
          json::json_pointer p;
          if (index >= 0) p = (top ? p / "models" : p) / size_t(index);
          const auto it = y.key_lines.find((p / key).to_string());
          return it == y.key_lines.end() ? 0 : it->second;
        },
        known_flag);
  }
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: not JSON: {}", source, e.what());
  }
  const std::vector<size_t> starts = element_starts(text, doc.is_object() ? 2 : 1);
  return parse_models_doc(
      doc, source,
      [&](int index, const std::string& key) {
        // A model's keys are looked for from where its object opens.
        const size_t from = index >= 0 && size_t(index) < starts.size() ? starts[index] : 0;
        return line_of(text, key, from);
      },
      known_flag);
}

void check_models(const std::vector<ModelEntry>& models) {
  std::set<std::string> names;
  for (const ModelEntry& m : models) {
    std::vector<std::string> all{m.name};
    all.insert(all.end(), m.aliases.begin(), m.aliases.end());
    for (const auto& n : all)
      if (!names.insert(n).second)
        fail(
            "two models are named '{}': give each its own name (--model NAME=PATH, or \"name\" "
            "in the --models file)",
            n);
  }
}

std::vector<FlagValue> merge_flags(const std::vector<FlagValue>& shared,
                                   const std::vector<FlagValue>& own) {
  std::set<std::string> mine;
  for (const auto& f : own) mine.insert(f.first);
  std::vector<FlagValue> out;
  for (const auto& f : shared)
    if (!mine.count(f.first)) out.push_back(f);
  out.insert(out.end(), own.begin(), own.end());
  return out;
}

std::vector<std::string> to_args(const std::vector<FlagValue>& flags) {
  std::vector<std::string> out;
  for (const auto& [k, v] : flags) out.push_back(v.empty() ? "--" + k : "--" + k + "=" + v);
  return out;
}

MachineMemory probe_machine_memory() {
  MachineMemory m;
  if (FILE* p = ::popen(
          "nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0 2>/dev/null",
          "r")) {
    char buf[64] = {};
    if (std::fgets(buf, sizeof buf, p) != nullptr) {
      const double mib = std::atof(buf);
      if (mib > 0) m.gpu_total_bytes = int64_t(mib * double(1 << 20));
    }
    ::pclose(p);
  }
  std::ifstream mi("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (mi >> key >> kib) {
    if (key == "MemTotal:") m.host_total_bytes = kib * 1024;
    mi.ignore(64, '\n');
  }
  return m;
}

bool runs_on_gpu(const std::vector<FlagValue>& flags, const MachineMemory& m) {
  const std::string dev = flag(flags, "device").value_or("auto");
  return dev == "cuda" || (dev == "auto" && m.gpu_total_bytes > 0);
}

int64_t estimate_need_bytes(const ModelEntry& m, const std::vector<FlagValue>& flags,
                            const MachineMemory& machine, std::string* how) {
  if (m.memory_bytes) {
    if (how) *how = "\"memory\"";
    return *m.memory_bytes;
  }
  const bool gpu = runs_on_gpu(flags, machine);
  const json c = read_config(m.path);
  int64_t weights = 0;
  if (flag(flags, "load-format").value_or("auto") == "dummy") {
    const std::string dt = flag(flags, "dtype").value_or("auto");
    weights = estimate_params(c) * (dt == "float32" ? 4 : 2);
  } else {
    weights = weight_file_bytes(m.path);
  }
  const int64_t block = int64_t(number_flag(flags, "block-size", 16));
  const double blocks = number_flag(flags, "num-kv-blocks", 0);
  int64_t kv = 0;
  int64_t need = 0;
  if (blocks > 0) {
    const bool fp8 = flag(flags, "kv-cache-dtype").value_or("auto").rfind("fp8", 0) == 0;
    kv = int64_t(blocks) * kv_bytes_per_block(c, block, fp8 ? 1 : gpu ? 2 : 4);
    need = weights + kv;
  } else if (gpu) {
    // The process takes this share of the whole GPU (weights, workspace, KV cache).
    need = int64_t(number_flag(flags, "gpu-memory-utilization", 0.9) *
                   double(machine.gpu_total_bytes));
    need = std::max(need, weights);
  } else {
    kv = int64_t(number_flag(flags, "kv-cache-memory", 1.0) * double(1ll << 30));
    need = weights + kv;
  }
  // Activations, workspace, the runtime: 5 % of the weights and 64 MiB (a GPU's CUDA context is
  // about 500 MiB more).
  if (blocks > 0 || !gpu) need += weights / 20 + (64ll << 20) + (gpu ? (512ll << 20) : 0);
  if (how)
    *how = fmt::format("weights {:.2f} GiB{}, {}", double(weights) / double(1ll << 30),
                       weights == 0 ? " (no weight files found)" : "",
                       blocks > 0 ? "--num-kv-blocks"
                       : gpu      ? "--gpu-memory-utilization of the GPU"
                                  : "--kv-cache-memory");
  return need;
}

int64_t default_memory_budget(bool gpu, const MachineMemory& m) {
  if (gpu && m.gpu_total_bytes > 0) return m.gpu_total_bytes;
  return m.host_total_bytes * 9 / 10;
}

}  // namespace inferd::router
