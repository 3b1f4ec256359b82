// Read-only 1-D datasets of an HDF5 file, read through a memory map of the file instead of into memory:
// the kernel's page cache holds what was touched, and this process's own (anonymous) memory does not
// grow with the dataset. Works for the two layouts whose bytes lie in the file as they are: contiguous
// (one extent, H5Dget_offset) and chunked without filters (one extent per chunk, H5Dget_chunk_info; what
// `performer prepare` writes). A compressed or checksummed dataset cannot be mapped: open() says so and
// the caller reads it into memory instead.
//
// Memory that grows with the dataset: one 8-byte file offset per chunk (the corpus's token chunks hold
// 1 Mi residues, so 85 G residues of TrEMBL need 81 Ki entries, 650 KB).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <hdf5.h>

namespace performer::h5 {

// The whole file, mapped read-only (shared by the arrays of one file).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

template <class T>
class MappedArray {
 public:
  MappedArray() = default;
  // The dataset `name` of the open file `file` (the same file as `map`), or nullopt with `why` set when
  // its layout cannot be mapped. Throws Error when it exists but is not a 1-D array of T.
  static std::optional<MappedArray> open(std::shared_ptr<const MappedFile> map, hid_t file, const std::string& name,
                                         std::string& why);

  uint64_t size() const { return size_; }
  T operator[](uint64_t i) const {
    const uint64_t c = i / chunk_;
    T v;
    std::memcpy(&v, base_ + extents_[c] + (i - c * chunk_) * sizeof(T), sizeof(T));
    return v;
  }
  // Elements [first, first + n) into out (n may cross chunk boundaries).
  void copy(uint64_t first, uint64_t n, T* out) const;
  // Asks the kernel to start reading elements [first, first + n) from disk now, without waiting
  // (madvise WILLNEED): many scattered reads then proceed in parallel instead of one page fault at a time.
  void prefetch(uint64_t first, uint64_t n) const;

 private:
  std::shared_ptr<const MappedFile> map_;
  const uint8_t* base_ = nullptr;
  std::vector<uint64_t> extents_;  // file offset of each chunk (one for contiguous data)
  uint64_t chunk_ = 1;             // elements per chunk
  uint64_t size_ = 0;
};

}  // namespace performer::h5
