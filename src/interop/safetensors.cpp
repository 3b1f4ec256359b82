#include "interop/safetensors.h"

#include <ATen/Functions.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "util/error.h"
#include "util/files.h"

namespace performer {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian, as this host must be");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit on the JSON header

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4},  {"F16", at::kHalf, 2}, {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},    {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo& dtype_by_type(at::ScalarType t, const std::string& what) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d;
  throw Error(what + ": dtype " + std::string(c10::toString(t)) + " has no safetensors equivalent");
}

uint64_t read_u64_le(std::istream& in) {
  unsigned char b[8];
  in.read(reinterpret_cast<char*>(b), 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

}  // namespace

SafetensorsIndex read_safetensors_index(const std::string& path) {
  std::error_code ec;
  const uint64_t file_bytes = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  if (file_bytes < 8) throw Error(path + ": not a safetensors file (" + std::to_string(file_bytes) + " bytes)");
  const uint64_t header_bytes = read_u64_le(in);
  if (header_bytes > kMaxHeaderBytes || header_bytes > file_bytes - 8)
    throw Error(path + ": not a safetensors file (header length " + std::to_string(header_bytes) + " for a file of " +
                std::to_string(file_bytes) + " bytes)");
  std::string text(header_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_bytes));
  if (!in) throw Error(path + ": cannot read the safetensors header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": the safetensors header is not JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(path + ": the safetensors header is not a JSON object");
  SafetensorsIndex index;
  index.data_start = 8 + header_bytes;
  const uint64_t data_bytes = file_bytes - index.data_start;
  for (const auto& [name, v] : header.items()) {
    const std::string at = path + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(path + ": __metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) throw Error(path + ": __metadata__ '" + k + "' is not a string");
        index.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw Error(at + ": expected {dtype, shape, data_offsets}");
    SafetensorsEntry e;
    if (!v["dtype"].is_string()) throw Error(at + ": dtype is not a string");
    e.dtype = v["dtype"].get<std::string>();
    const DtypeInfo* d = dtype_by_name(e.dtype);
    if (!d) throw Error(at + ": dtype " + e.dtype + " is not supported (F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    if (!v["shape"].is_array()) throw Error(at + ": shape is not a list");
    // Bytes = element size x every dimension. A product that overflows stays overflowed (a later 0 must not
    // reset it): such a shape is refused like any other that does not match its byte range.
    uint64_t bytes = d->bytes;
    bool overflow = false;
    for (const auto& n : v["shape"]) {
      if (!n.is_number_unsigned()) throw Error(at + ": shape holds something other than a non-negative integer");
      const uint64_t dim = n.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) throw Error(at + ": shape holds a dimension of " + std::to_string(dim));
      e.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(bytes, dim, &bytes);
    }
    if (overflow) throw Error(at + ": its shape holds more bytes than any file (a damaged or crafted header)");
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw Error(at + ": data_offsets is not [begin, end]");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_bytes)
      throw Error(at + ": bytes [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") lie outside the " +
                  std::to_string(data_bytes) + " bytes of data (a truncated or damaged file)");
    if (e.end - e.begin != bytes)
      throw Error(at + ": " + std::to_string(e.end - e.begin) + " bytes do not hold its shape and dtype (" +
                  std::to_string(bytes) + " bytes)");
    index.tensors.emplace(name, std::move(e));
  }
  std::vector<const SafetensorsEntry*> by_start;
  for (const auto& [name, e] : index.tensors) by_start.push_back(&e);
  std::sort(by_start.begin(), by_start.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_start.size(); ++i)
    if (by_start[i]->begin < by_start[i - 1]->end) throw Error(path + ": tensors' byte ranges overlap (a damaged file)");
  return index;
}

std::map<std::string, at::Tensor> read_safetensors(const std::string& path) {
  const SafetensorsIndex index = read_safetensors_index(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, e] : index.tensors) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(dtype_by_name(e.dtype)->type));
    in.seekg(static_cast<std::streamoff>(index.data_start + e.begin));
    in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw Error(path + ": tensor '" + name + "': cannot read its bytes");
    out.emplace(name, std::move(t));
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__" || !seen.insert(name).second)
      throw Error(path + ": tensor name '" + name + "' is reserved or repeated");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const DtypeInfo d = dtype_by_type(t.scalar_type(), path + ": tensor '" + name + "'");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * d.bytes;
    header[name] = {{"dtype", d.name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned, as the format recommends
  AtomicFile file(path);
  {
    std::ofstream out(file.temporary(), std::ios::binary | std::ios::trunc);
    if (!out) throw Error(file.temporary() + ": cannot create");
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((text.size() >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& t : data)
      out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
    out.flush();
    if (!out) throw Error(path + ": cannot write (disk full?)");
  }
  file.commit();
}

}  // namespace performer
