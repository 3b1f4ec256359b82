// safetensors files, read and written: the format HuggingFace checkpoints use.
//
//   [8 bytes]  N, the header's length, unsigned 64-bit little-endian
//   [N bytes]  a JSON object: "<tensor name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}
//              for each tensor, and optionally "__metadata__": {string: string}
//   [rest]     the tensors' bytes, little-endian, row-major; offsets count from the end of the header
//
// No library for it is packaged by Debian and the format is three lines of specification, so this module
// (nlohmann-json for the header) reads and writes it. Reading checks what a damaged or crafted file could
// get wrong before anything is allocated: the header's length against the file's, every dtype and shape,
// that each tensor's byte range matches its shape and lies inside the file, and that the ranges do not
// overlap. Errors are one line naming the file and the tensor.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace performer {

struct SafetensorsEntry {
  std::string dtype;            // "F32", "BF16", "I64", ... as in the file
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range, from the end of the header
};

struct SafetensorsIndex {
  std::map<std::string, SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;  // "__metadata__"
  uint64_t data_start = 0;                      // 8 + header length
};

// The header of `path`, checked (see above). Throws Error naming the file.
SafetensorsIndex read_safetensors_index(const std::string& path);

// Every tensor of `path` as a CPU tensor of its own dtype (F64, F32, F16, BF16, I64, I32, I16, I8, U8,
// BOOL). Throws Error naming the file (and the tensor) for anything else.
std::map<std::string, at::Tensor> read_safetensors(const std::string& path);

// Writes the tensors (contiguous CPU copies, each in its own dtype) and the metadata, whole or not at all
// (util/files.h AtomicFile). Names must be unique and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace performer
