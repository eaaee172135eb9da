// config.json's quantization_config (quant_config.h).
#include "model/quant/quant_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/logging.h"
#include "model/config_parsing.h"

namespace inferd {

using json = nlohmann::json;
using config::is_set;

namespace {

// One compressed-tensors quantization args object ("weights" or "input_activations") must be
// 8-bit symmetric float; returns its strategy.
std::string float8_args(const json& a, const std::string& src, const std::string& where) {
  if (!a.is_object()) fail("{}: {} must be an object", src, where);
  if (a.value("num_bits", 0) != 8 || a.value("type", "") != "float")
    fail("{}: {}: only num_bits 8 with type \"float\" (FP8) is supported, got {}", src, where,
         a.dump());
  if (!a.value("symmetric", true)) fail("{}: {}.symmetric = false is not supported", src, where);
  for (const char* k : {"group_size", "block_structure", "actorder"}) {
    if (is_set(a, k))
      fail("{}: {}.{} is not supported (FP8 per tensor / channel / token)", src, where, k);
  }
  return a.value("strategy", "");
}

}  // namespace

QuantConfig parse_quantization(const json& q, const std::string& src) {
  QuantConfig qc;
  if (!q.is_object()) fail("{}: quantization_config must be an object", src);
  const std::string method = q.value("quant_method", "");
  if (method == "compressed-tensors") {
    qc.method = QuantMethod::kCompressedTensorsFp8;
    const std::string format = q.value("format", "");
    if (format != "float-quantized" && format != "naive-quantized")
      fail("{}: quantization_config.format '{}' is not supported: expected float-quantized", src,
           format);
    if (is_set(q, "kv_cache_scheme"))
      fail("{}: quantization_config.kv_cache_scheme is not supported yet (FP8 KV cache scales)",
           src);
    const json groups = q.contains("config_groups") ? q["config_groups"] : json();
    if (!groups.is_object() || groups.size() != 1)
      fail("{}: quantization_config.config_groups must hold exactly one group", src);
    const json g = groups.begin().value();  // a copy: g++ 13 warns of a dangling reference
    const std::string where = "quantization_config.config_groups." + groups.begin().key();
    if (!g.contains("targets") || g["targets"] != json::array({"Linear"}))
      fail("{}: {}.targets must be [\"Linear\"]", src, where);
    if (is_set(g, "output_activations"))
      fail("{}: {}.output_activations is not supported", src, where);
    if (!g.contains("weights")) fail("{}: {}.weights is missing", src, where);
    const std::string ws = float8_args(g["weights"], src, where + ".weights");
    if (ws != "tensor" && ws != "channel")
      fail("{}: {}.weights.strategy '{}' is not supported: expected tensor or channel", src, where,
           ws);
    if (g["weights"].value("dynamic", false))
      fail("{}: {}.weights.dynamic = true is not supported", src, where);
    qc.weight_per_tensor = ws == "tensor";
    if (is_set(g, "input_activations")) {
      const json& a = g["input_activations"];
      const std::string as = float8_args(a, src, where + ".input_activations");
      const bool dynamic = a.value("dynamic", false);
      if (dynamic && as != "token" && as != "tensor")
        fail("{}: {}.input_activations.strategy '{}' is not supported", src, where, as);
      if (!dynamic && as != "tensor")
        fail("{}: {}.input_activations: static scales must be per tensor, got '{}'", src, where,
             as);
      qc.static_activations = !dynamic;
    }
    if (auto it = q.find("ignore"); it != q.end() && it->is_array())
      for (const auto& e : *it)
        if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
  } else if (method == "fp8") {
    qc.method = QuantMethod::kFp8Block;
    if (q.value("activation_scheme", "dynamic") != "dynamic")
      fail("{}: quantization_config.activation_scheme '{}' is not supported: expected dynamic", src,
           q.value("activation_scheme", ""));
    if (is_set(q, "fmt") && q["fmt"] != "e4m3")
      fail("{}: quantization_config.fmt {} is not supported: expected \"e4m3\"", src,
           q["fmt"].dump());
    const json b = q.contains("weight_block_size") ? q["weight_block_size"] : json();
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
      fail(
          "{}: quantization_config.weight_block_size must be two positive integers (per-tensor "
          "transformers fp8 is not supported)",
          src);
    qc.block_n = b[0].get<int64_t>();
    qc.block_k = b[1].get<int64_t>();
    for (const char* k : {"modules_to_not_convert", "ignored_layers"}) {
      if (auto it = q.find(k); it != q.end() && it->is_array())
        for (const auto& e : *it)
          if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
    }
  } else if (method == "mxfp4") {
    // gpt-oss: only the experts are MXFP4 (modules_to_not_convert lists the others); the MXFP4
    // layout is fixed (groups of 32, e8m0 scales), so the config has nothing else to read.
    qc.method = QuantMethod::kMxfp4;
    if (q.value("dequantize", false))
      LOG_INFO("{}: quantization_config.dequantize has no effect on inferd's MXFP4 experts", src);
    if (auto it = q.find("modules_to_not_convert"); it != q.end() && it->is_array())
      for (const auto& e : *it)
        if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
  } else {
    fail(
        "{}: quantization_config.quant_method '{}' is not supported: expected "
        "compressed-tensors (FP8), fp8 or mxfp4",
        src, method);
  }
  return qc;
}

const char* quant_method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::kNone:
      return "none";
    case QuantMethod::kCompressedTensorsFp8:
      return "compressed-tensors fp8";
    case QuantMethod::kFp8Block:
      return "fp8 (128x128 blocks)";
    case QuantMethod::kGguf:
      return "gguf";
    case QuantMethod::kMxfp4:
      return "mxfp4";
  }
  return "?";
}

}  // namespace inferd
