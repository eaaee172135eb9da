// safetensors files (the format of huggingface/safetensors' README): the header, mmap'd tensors,
// shards of a directory (the index, or every file), files still arriving from a hub download.
#include "model/loader/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/arriving_files.h"
#include "core/error.h"

namespace inferd {

namespace {

using json = nlohmann::json;

bool parse_st_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::kF32;
  else if (s == "BF16")
    *out = DType::kBF16;
  else if (s == "F16")
    *out = DType::kF16;
  else if (s == "I32")
    *out = DType::kI32;
  else if (s == "I64")
    *out = DType::kI64;
  else if (s == "U8" || s == "BOOL")  // BOOL: one byte each (EAGLE-3 heads' t2d)
    *out = DType::kU8;
  else if (s == "I8")
    *out = DType::kI8;
  else if (s == "F8_E4M3")
    *out = DType::kF8E4M3;
  else
    return false;
  return true;
}

const char* st_dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
    case DType::kI32:
      return "I32";
    case DType::kI64:
      return "I64";
    case DType::kU8:
      return "U8";
    case DType::kI8:
      return "I8";
    case DType::kF8E4M3:
      return "F8_E4M3";
  }
  return "?";
}

std::string shape_to_string(std::span<const int64_t> s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

std::map<std::string, TensorInfo> parse_safetensors_header(const char* data, size_t size,
                                                           const std::string& path) {
  if (size < 8) fail("'{}' is not a safetensors file: {} bytes is too short", path, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > size - 8 || header_len > (100u << 20)) {
    fail("'{}' is not a valid safetensors file: header length {} exceeds the file size {}", path,
         header_len, size);
  }
  json h;
  try {
    h = json::parse(data + 8, data + 8 + header_len);
  } catch (const json::exception& e) {
    fail("'{}': invalid safetensors JSON header: {}", path, e.what());
  }
  if (!h.is_object()) fail("'{}': safetensors header is not a JSON object", path);
  const size_t base = 8 + header_len;
  std::map<std::string, TensorInfo> out;
  for (auto& [name, v] : h.items()) {
    if (name == "__metadata__") continue;
    TensorInfo ti;
    ti.file = path;
    if (!v.is_object())
      fail("'{}': tensor '{}' is a JSON {}, expected an object with dtype, shape and data_offsets",
           path, name, v.type_name());
    const auto dt_it = v.find("dtype");
    const std::string dt = dt_it != v.end() && dt_it->is_string() ? dt_it->get<std::string>() : "";
    if (!parse_st_dtype(dt, &ti.dtype)) {
      fail("'{}': tensor '{}' has unsupported dtype '{}' (expected BF16, F16 or F32)", path, name,
           dt);
    }
    if (!v.contains("shape") || !v["shape"].is_array() || !v.contains("data_offsets") ||
        !v["data_offsets"].is_array() || v["data_offsets"].size() != 2) {
      fail("'{}': tensor '{}' lacks a valid shape or data_offsets", path, name);
    }
    size_t n = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) {
        fail("'{}': tensor '{}' has an invalid shape {}", path, name, v["shape"].dump());
      }
      ti.shape.push_back(d.get<int64_t>());
      const size_t dim = size_t(d.get<int64_t>());
      if (dim != 0 && n > SIZE_MAX / dtype_size(ti.dtype) / dim)
        fail("'{}': tensor '{}' has a shape {} too large to address", path, name,
             v["shape"].dump());
      n *= dim;
    }
    const json& ob = v["data_offsets"][0];
    const json& oe = v["data_offsets"][1];
    if (!ob.is_number_unsigned() || !oe.is_number_unsigned())
      fail("'{}': tensor '{}' has data_offsets {}: expected two non-negative integers", path, name,
           v["data_offsets"].dump());
    const size_t b = ob.get<size_t>();
    const size_t e = oe.get<size_t>();
    ti.nbytes = n * dtype_size(ti.dtype);
    // base <= size (the header fits), so `size - base` cannot wrap, where `base + e` could.
    if (e < b || e - b != ti.nbytes || e > size - base) {
      fail(
          "'{}': tensor '{}' data_offsets [{}, {}] do not match its shape {} and dtype {} or run "
          "past the end of the file ({} bytes)",
          path, name, b, e, shape_to_string(ti.shape), dt, size);
    }
    ti.offset = base + b;
    out.emplace(name, std::move(ti));
  }
  return out;
}

void SafetensorsIndex::add_file(const std::string& path) {
  auto f = MappedFile::open(path);
  add_mapped(path, std::move(f));
}

void SafetensorsIndex::add_mapped(const std::string& path, std::shared_ptr<MappedFile> f) {
  auto infos = parse_safetensors_header(f->data(), f->size(), path);
  for (auto& [name, ti] : infos) {
    if (tensors_.count(name))
      fail("tensor '{}' appears in two files ('{}' and '{}')", name, tensors_[name].file, path);
    tensors_.emplace(name, std::move(ti));
  }
  files_.emplace(path, std::move(f));
}

void SafetensorsIndex::add_arriving_file(const std::string& path, const std::string& name,
                                         const std::shared_ptr<ArrivingFiles>& arriving) {
  arriving->note_load(name);
  arriving->wait_bytes(name, 8);
  std::shared_ptr<MappedFile> f;
  try {
    f = MappedFile::open_growing(arriving->part_path(name), arriving->size(name));
  } catch (const Error&) {  // finished and renamed meanwhile: it is in the directory now
    arriving->wait_finished(name);
    f = MappedFile::open(path);
  }
  uint64_t header_len = 0;
  if (f->size() >= 8) std::memcpy(&header_len, f->data(), 8);
  // A header length past the end fails in parse_safetensors_header without waiting.
  if (header_len <= f->size() - std::min<size_t>(f->size(), 8))
    arriving->wait_bytes(name, 8 + header_len);
  try {
    add_mapped(path, std::move(f));
  } catch (const Error&) {
    arriving->wait_finished(name);  // a corrupt download: its checksum error names the cause
    throw;
  }
  arriving_.emplace(path, std::make_pair(arriving, name));
}

const char* SafetensorsIndex::data_of(const TensorInfo& ti) const {
  if (const auto it = arriving_.find(ti.file); it != arriving_.end())
    it->second.first->wait_bytes(it->second.second, ti.offset + ti.nbytes);
  return files_.at(ti.file)->data() + ti.offset;
}

SafetensorsIndex SafetensorsIndex::open_file(const std::string& path) {
  SafetensorsIndex idx;
  idx.add_file(path);
  return idx;
}

SafetensorsIndex SafetensorsIndex::open_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsIndex idx;
  const std::shared_ptr<ArrivingFiles> arriving = arriving_files(dir);
  // A shard on disk, or one still arriving (read as its bytes land).
  const auto add = [&](const fs::path& p) {
    const std::string name = p.filename().string();
    if (arriving && arriving->expects(name))
      idx.add_arriving_file(p.string(), name, arriving);
    else
      idx.add_file(p.string());
  };
  const auto present = [&](const fs::path& p) {
    return fs::exists(p) || (arriving && arriving->expects(p.filename().string()));
  };
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(index_path)) {
    json j;
    try {
      std::ifstream in(index_path);
      j = json::parse(in);
    } catch (const json::exception& e) {
      fail("'{}': invalid JSON: {}", index_path.string(), e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
      fail("'{}': missing 'weight_map' object", index_path.string());
    }
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) shards.insert(file.get<std::string>());
    for (const auto& s : shards) {
      const fs::path p = fs::path(dir) / s;
      if (!present(p)) {
        fail("shard '{}' listed in '{}' is missing", p.string(), index_path.string());
      }
      add(p);
    }
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!idx.contains(name)) {
        fail("tensor '{}' is listed in '{}' but not found in '{}'", name, index_path.string(),
             file.get<std::string>());
      }
    }
  } else if (present(single)) {
    add(single);
  } else if (arriving) {  // no index: every *.safetensors file, those arriving too
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors") files.insert(e.path().string());
    for (const auto& name : arriving->names())
      if (fs::path(name).extension() == ".safetensors")
        files.insert((fs::path(dir) / name).string());
    for (const auto& f : files) add(f);
  } else {
    std::vector<std::string> files;
    if (fs::is_directory(dir)) {
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    if (files.empty()) {
      fail(
          "no weights in '{}': expected model.safetensors, model.safetensors.index.json or "
          "*.safetensors (or use --load-format dummy)",
          dir);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) idx.add_file(f);
  }
  return idx;
}

const TensorInfo& SafetensorsIndex::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("tensor '{}' is missing from the model's weights", name);
  return it->second;
}

Tensor SafetensorsIndex::get_float(const std::string& name,
                                   std::span<const int64_t> expected_shape) const {
  const TensorInfo& ti = info(name);
  if (ti.dtype != DType::kF32 && ti.dtype != DType::kBF16 && ti.dtype != DType::kF16) {
    fail("tensor '{}' in '{}' has dtype {}, expected BF16, F16 or F32", name, ti.file,
         st_dtype_name(ti.dtype));
  }
  return get(name, expected_shape);
}

Tensor SafetensorsIndex::get_float_2d(const std::string& name,
                                      std::span<const int64_t> expected) const {
  const TensorInfo& ti = info(name);
  if (ti.dtype != DType::kF32 && ti.dtype != DType::kBF16 && ti.dtype != DType::kF16)
    fail("tensor '{}' in '{}' has dtype {}, expected BF16, F16 or F32", name, ti.file,
         st_dtype_name(ti.dtype));
  if (expected.size() != ti.shape.size() ||
      !std::equal(expected.begin(), expected.end(), ti.shape.begin()))
    fail("tensor '{}' in '{}' has shape {}, expected {}", name, ti.file, shape_to_string(ti.shape),
         shape_to_string(expected));
  if (ti.shape.empty()) fail("tensor '{}' in '{}' is a scalar, expected a matrix", name, ti.file);
  int64_t rest = 1;
  for (size_t i = 1; i < ti.shape.size(); ++i) rest *= ti.shape[i];
  const std::array<int64_t, 2> shape{ti.shape[0], rest};
  const auto& f = files_.at(ti.file);
  void* p = const_cast<char*>(data_of(ti));
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti.dtype) != 0) {
    Tensor t = Tensor::empty_host(ti.dtype, shape);
    std::memcpy(t.data(), p, ti.nbytes);
    return t;
  }
  return Tensor(p, ti.dtype, shape, Device::kCPU, f);
}

Tensor SafetensorsIndex::get(const std::string& name, std::span<const int64_t> expected) const {
  const TensorInfo& ti = info(name);
  if (!expected.empty()) {
    if (expected.size() != ti.shape.size() ||
        !std::equal(expected.begin(), expected.end(), ti.shape.begin())) {
      fail("tensor '{}' in '{}' has shape {}, expected {}", name, ti.file,
           shape_to_string(ti.shape), shape_to_string(expected));
    }
  }
  const auto& f = files_.at(ti.file);
  void* p = const_cast<char*>(data_of(ti));
  std::shared_ptr<void> holder = f;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti.dtype) != 0) {
    // Misaligned data (allowed by the format): copy it so typed access is valid.
    Tensor t = Tensor::empty_host(ti.dtype, ti.shape);
    std::memcpy(t.data(), p, ti.nbytes);
    return t;
  }
  return Tensor(p, ti.dtype, ti.shape, Device::kCPU, std::move(holder));
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors) {
  json h = json::object();
  size_t off = 0;
  for (const auto& [name, t] : tensors) {
    INFERD_CHECK(t.is_contiguous() && t.device() == Device::kCPU, "tensor {} not host-contiguous",
                 name);
    json e;
    e["dtype"] = st_dtype_name(t.dtype());
    e["shape"] = std::vector<int64_t>(t.shape().begin(), t.shape().end());
    e["data_offsets"] = {off, off + t.nbytes()};
    off += t.nbytes();
    h[name] = e;
  }
  std::string hs = h.dump();
  while ((hs.size() + 8) % 8 != 0) hs.push_back(' ');
  std::ofstream out(path, std::ios::binary);
  if (!out) fail("cannot write '{}'", path);
  uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(hs.data(), std::streamsize(hs.size()));
  for (const auto& [name, t] : tensors)
    out.write(static_cast<const char*>(t.data()), std::streamsize(t.nbytes()));
  if (!out) fail("error writing '{}'", path);
}

void SafetensorsIndex::replace_prefix(const std::string& from, const std::string& to) {
  std::map<std::string, TensorInfo> renamed;
  for (auto& [name, info] : tensors_)
    renamed.emplace(name.starts_with(from) ? to + name.substr(from.size()) : name, std::move(info));
  tensors_ = std::move(renamed);
}

void SafetensorsIndex::add_prefix(const std::string& prefix) {
  std::map<std::string, TensorInfo> renamed;
  for (auto& [name, info] : tensors_) renamed.emplace(prefix + name, std::move(info));
  tensors_ = std::move(renamed);
}

}  // namespace inferd
