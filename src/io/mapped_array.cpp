#include "io/mapped_array.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "io/hdf5.h"
#include "util/error.h"

namespace performer::h5 {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error(path + ": cannot stat: " + why);
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw Error(path + ": cannot map into memory: " + why);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

template <class T>
std::optional<MappedArray<T>> MappedArray<T>::open(std::shared_ptr<const MappedFile> map, hid_t file,
                                                   const std::string& name, std::string& why) {
  const std::string where = map->path() + ": /" + name;
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  if (!dset.valid()) throw Error(where + ": missing");
  Handle type(H5Dget_type(dset));
  if (H5Tequal(type, native_type<T>()) <= 0) throw Error(where + ": unexpected element type");
  Handle space(H5Dget_space(dset));
  if (H5Sget_simple_extent_ndims(space) != 1) throw Error(where + ": not a 1-D dataset");
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space, &n, nullptr);
  Handle dcpl(H5Dget_create_plist(dset));
  hsize_t userblock = 0;
  {
    Handle fcpl(H5Fget_create_plist(file));
    H5Pget_userblock(fcpl, &userblock);  // HDF5 addresses count from the superblock, after any user block
  }
  MappedArray a;
  a.map_ = map;
  a.base_ = map->data();
  a.size_ = n;
  const H5D_layout_t layout = H5Pget_layout(dcpl);
  if (n == 0) {  // nothing to map (an empty dataset has no storage, whatever its layout)
    a.chunk_ = 1;
    return a;
  }
  if (layout == H5D_CONTIGUOUS) {
    const haddr_t addr = H5Dget_offset(dset);
    if (n > 0 && addr == HADDR_UNDEF) {
      why = "/" + name + " has no storage allocated";
      return std::nullopt;
    }
    a.chunk_ = std::max<uint64_t>(n, 1);
    a.extents_.push_back(userblock + addr);
  } else if (layout == H5D_CHUNKED) {
    if (H5Pget_nfilters(dcpl) > 0) {
      why = "/" + name + " is stored with filters (compression or checksums)";
      return std::nullopt;
    }
    hsize_t chunk = 0;
    H5Pget_chunk(dcpl, 1, &chunk);
    hsize_t count = 0;
    if (H5Dget_num_chunks(dset, space, &count) < 0) throw Error(where + ": cannot list its chunks");
    a.chunk_ = chunk;
    const uint64_t needed = (n + chunk - 1) / chunk;
    a.extents_.assign(needed, UINT64_MAX);
    for (hsize_t k = 0; k < count; ++k) {
      hsize_t offset = 0, size = 0;
      unsigned mask = 0;
      haddr_t addr = HADDR_UNDEF;
      if (H5Dget_chunk_info(dset, space, k, &offset, &mask, &addr, &size) < 0)
        throw Error(where + ": cannot read the address of chunk " + std::to_string(k));
      const uint64_t c = offset / chunk;
      if (c < needed) a.extents_[c] = userblock + addr;
    }
    for (uint64_t c = 0; c < needed; ++c)
      if (a.extents_[c] == UINT64_MAX) {
        why = "/" + name + " has unwritten chunks";
        return std::nullopt;
      }
  } else {
    why = "/" + name + " is stored compact";
    return std::nullopt;
  }
  for (uint64_t c = 0; c < a.extents_.size(); ++c) {
    const uint64_t elems = std::min<uint64_t>(a.chunk_, n - std::min<uint64_t>(n, c * a.chunk_));
    if (a.extents_[c] + elems * sizeof(T) > map->size())
      throw Error(where + ": chunk " + std::to_string(c) + " lies past the end of the file (truncated?)");
  }
  return a;
}

template <class T>
void MappedArray<T>::copy(uint64_t first, uint64_t n, T* out) const {
  while (n > 0) {
    const uint64_t c = first / chunk_, within = first - c * chunk_;
    const uint64_t take = std::min(n, chunk_ - within);
    std::memcpy(out, base_ + extents_[c] + within * sizeof(T), take * sizeof(T));
    out += take;
    first += take;
    n -= take;
  }
}

template <class T>
void MappedArray<T>::prefetch(uint64_t first, uint64_t n) const {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  while (n > 0) {
    const uint64_t c = first / chunk_, within = first - c * chunk_;
    const uint64_t take = std::min(n, chunk_ - within);
    const uint64_t begin = extents_[c] + within * sizeof(T), end = begin + take * sizeof(T);
    const uint64_t aligned = begin / page * page;
    ::madvise(const_cast<uint8_t*>(base_) + aligned, end - aligned, MADV_WILLNEED);
    first += take;
    n -= take;
  }
}

template class MappedArray<uint8_t>;
template class MappedArray<int32_t>;
template class MappedArray<int64_t>;

}  // namespace performer::h5
