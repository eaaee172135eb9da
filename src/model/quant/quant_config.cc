// config.json's quantization_config (quant_config.h).
#include "model/quant/quant_config.h"

#include <cctype>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

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

int64_t group_size_of(const json& v, const std::string& src, const std::string& field,
                      bool channel_ok) {
  if (!v.is_number_integer()) fail("{}: {} must be an integer, got {}", src, field, v.dump());
  const int64_t g = v.get<int64_t>();
  if (g == 32 || g == 64 || g == 128 || (channel_ok && g == -1)) return g;
  fail("{}: {} {} is not supported: expected 32, 64 or 128{}", src, field, g,
       channel_ok ? " (or -1: one group per output channel)" : "");
}

// compressed-tensors' kv_cache_scheme (llm-compressor): an FP8 KV cache with one static scale a
// layer for keys and one for values (self_attn.k_scale / v_scale, read by kv_cache_scales.h and
// used under --kv-cache-dtype fp8). Anything else is refused by field.
void check_kv_cache_scheme(const json& q, const std::string& src) {
  if (!is_set(q, "kv_cache_scheme")) return;
  const json& s = q["kv_cache_scheme"];
  const char* where = "quantization_config.kv_cache_scheme";
  if (!s.is_object()) fail("{}: {} must be an object", src, where);
  const int64_t bits = s.contains("num_bits") && s["num_bits"].is_number_integer()
                           ? s["num_bits"].get<int64_t>()
                           : -1;
  const std::string type =
      s.contains("type") && s["type"].is_string() ? s["type"].get<std::string>() : std::string();
  if (bits != 8 || type != "float")
    fail("{}: {}: only an 8-bit float (FP8 e4m3) KV cache is supported, got num_bits {} type '{}'",
         src, where, bits, type);
  if (is_set(s, "strategy") && s["strategy"] != "tensor")
    fail("{}: {}.strategy {} is not supported: expected \"tensor\" (one scale a layer)", src, where,
         s["strategy"].dump());
  if (is_set(s, "dynamic") && s["dynamic"] != false)
    fail("{}: {}.dynamic {} is not supported: expected false (the checkpoint's static scales)", src,
         where, s["dynamic"].dump());
  if (is_set(s, "symmetric") && s["symmetric"] != true)
    fail("{}: {}.symmetric {} is not supported: expected true", src, where, s["symmetric"].dump());
}

void read_ignore(const json& q, const char* key, QuantConfig& qc) {
  if (auto it = q.find(key); it != q.end() && it->is_array())
    for (const auto& e : *it)
      if (e.is_string()) qc.ignore.push_back(e.get<std::string>());
}

// AutoAWQ's quantization_config (also its older quant_config.json key names w_bit,
// q_group_size): GEMM version, 4 bits, zero points.
void parse_awq(const json& q, const std::string& src, QuantConfig& qc) {
  qc.method = QuantMethod::kAwq;
  const json bits = q.contains("bits") ? q["bits"] : q.value("w_bit", json());
  if (bits != json(4))
    fail("{}: quantization_config.bits {} is not supported for awq: expected 4", src, bits.dump());
  qc.bits = 4;
  const std::string gk = q.contains("group_size") ? "group_size" : "q_group_size";
  if (!q.contains(gk)) fail("{}: quantization_config.group_size is missing", src);
  qc.group_size = group_size_of(q[gk], src, "quantization_config." + gk, false);
  if (q.value("zero_point", true) != true)
    fail("{}: quantization_config.zero_point = false is not supported for awq", src);
  std::string version = q.value("version", "gemm");
  for (char& c : version) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (version != "gemm")
    fail("{}: quantization_config.version '{}' is not supported for awq: expected gemm", src,
         q.value("version", ""));
  read_ignore(q, "modules_to_not_convert", qc);
}

// AutoGPTQ / GPTQModel's quantization_config: 4 or 8 bits, group size or -1, desc_act, sym, and
// the checkpoint format (v1 "gptq": zero points stored minus one; "gptq_v2": as they are).
void parse_gptq(const json& q, const std::string& src, QuantConfig& qc) {
  qc.method = QuantMethod::kGptq;
  const json bits = q.value("bits", json());
  if (bits != json(4) && bits != json(8))
    fail("{}: quantization_config.bits {} is not supported for gptq: expected 4 or 8", src,
         bits.dump());
  qc.bits = bits.get<int>();
  if (!q.contains("group_size")) fail("{}: quantization_config.group_size is missing", src);
  qc.group_size = group_size_of(q["group_size"], src, "quantization_config.group_size", true);
  qc.act_order = q.value("desc_act", false);
  qc.symmetric = q.value("sym", true);
  const std::string fk = q.contains("checkpoint_format") ? "checkpoint_format" : "format";
  const std::string format = q.value(fk, "gptq");
  if (format != "gptq" && format != "gptq_v2")
    fail("{}: quantization_config.{} '{}' is not supported for gptq: expected gptq or gptq_v2", src,
         fk, format);
  qc.gptq_v1_zeros = format == "gptq";
  if (q.value("lm_head", false))
    fail("{}: quantization_config.lm_head = true (a quantized lm_head) is not supported", src);
  if (is_set(q, "dynamic") && !q["dynamic"].empty())
    fail("{}: quantization_config.dynamic (per-module overrides) is not supported", src);
  read_ignore(q, "modules_to_not_convert", qc);
}

// compressed-tensors pack-quantized (llm-compressor's W4A16 / W8A16): one config group of int
// weights by group or channel, no activation quantization.
void parse_compressed_tensors_int(const json& q, const std::string& src, QuantConfig& qc) {
  qc.method = QuantMethod::kCompressedTensorsInt;
  check_kv_cache_scheme(q, src);
  const json groups = q.contains("config_groups") ? q["config_groups"] : json();
  if (!groups.is_object() || groups.size() != 1)
    fail("{}: quantization_config.config_groups must hold exactly one group", src);
  const json g = groups.begin().value();
  const std::string where = "quantization_config.config_groups." + groups.begin().key();
  if (!g.contains("targets") || g["targets"] != json::array({"Linear"}))
    fail("{}: {}.targets must be [\"Linear\"]", src, where);
  for (const char* k : {"input_activations", "output_activations"})
    if (is_set(g, k))
      fail("{}: {}.{} is not supported with pack-quantized weights (W4A16 / W8A16 only)", src,
           where, k);
  const json w = g.value("weights", json());
  if (!w.is_object()) fail("{}: {}.weights is missing", src, where);
  if (w.value("type", "") != "int" || (w.value("num_bits", 0) != 4 && w.value("num_bits", 0) != 8))
    fail("{}: {}.weights: only type \"int\" with num_bits 4 or 8 is supported, got {}", src, where,
         w.dump());
  qc.bits = w.value("num_bits", 0);
  if (w.value("dynamic", false)) fail("{}: {}.weights.dynamic = true is not supported", src, where);
  if (is_set(w, "block_structure"))
    fail("{}: {}.weights.block_structure is not supported", src, where);
  const std::string strategy = w.value("strategy", "");
  if (strategy == "group") {
    qc.group_size =
        group_size_of(w.value("group_size", json()), src, where + ".weights.group_size", false);
  } else if (strategy == "channel") {
    qc.group_size = -1;
  } else {
    fail("{}: {}.weights.strategy '{}' is not supported: expected group or channel", src, where,
         strategy);
  }
  qc.symmetric = w.value("symmetric", true);
  const json ao = w.value("actorder", json());
  if (!ao.is_null() && ao != "group" && ao != "weight" && ao != "static" && ao != false)
    fail("{}: {}.weights.actorder {} is not supported: expected null, group or weight", src, where,
         ao.dump());
  qc.act_order = ao == "group";
  read_ignore(q, "ignore", qc);
}

void parse_int_quantization(const json& q, const std::string& src, QuantConfig& qc) {
  const std::string method = q.value("quant_method", "");
  if (method == "awq") {
    parse_awq(q, src, qc);
  } else if (method == "gptq") {
    parse_gptq(q, src, qc);
  } else {
    parse_compressed_tensors_int(q, src, qc);
  }
}

}  // namespace

QuantConfig parse_quantization(const json& q, const std::string& src) {
  QuantConfig qc;
  if (!q.is_object()) fail("{}: quantization_config must be an object", src);
  const std::string method = q.value("quant_method", "");
  if (method == "awq" || method == "gptq" ||
      (method == "compressed-tensors" && q.value("format", "") == "pack-quantized")) {
    parse_int_quantization(q, src, qc);
  } else if (method == "compressed-tensors") {
    qc.method = QuantMethod::kCompressedTensorsFp8;
    const std::string format = q.value("format", "");
    if (format != "float-quantized" && format != "naive-quantized")
      fail("{}: quantization_config.format '{}' is not supported: expected float-quantized", src,
           format);
    check_kv_cache_scheme(q, src);
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
        "{}: quantization_config.quant_method '{}' is not supported: expected awq, gptq, "
        "compressed-tensors (FP8 or pack-quantized W4A16), fp8 or mxfp4",
        src, method);
  }
  return qc;
}

std::string describe_quantization(const QuantConfig& q, const std::string& flag) {
  switch (q.method) {
    case QuantMethod::kNone:
      return flag.empty() ? "none" : flag;
    case QuantMethod::kAwq:
    case QuantMethod::kGptq:
    case QuantMethod::kCompressedTensorsInt:
      return fmt::format("{} ({}-bit, {}{}{})", quant_method_name(q.method), q.bits,
                         q.group_size > 0 ? fmt::format("group {}", q.group_size) : "per channel",
                         q.act_order ? ", act-order" : "",
                         q.method != QuantMethod::kAwq && !q.symmetric ? ", asymmetric" : "");
    default:
      return quant_method_name(q.method);
  }
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
    case QuantMethod::kAwq:
      return "awq";
    case QuantMethod::kGptq:
      return "gptq";
    case QuantMethod::kCompressedTensorsInt:
      return "compressed-tensors (pack-quantized)";
  }
  return "?";
}

}  // namespace inferd
