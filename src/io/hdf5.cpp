#include "io/hdf5.h"

#include <sys/stat.h>

#include "util/error.h"

namespace performer::h5 {

namespace {

// Silences HDF5's automatic error-stack printing once per process: errors become exceptions instead.
struct Silencer {
  Silencer() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
void silence() { static Silencer s; }

[[noreturn]] void fail(hid_t obj, const std::string& what) {
  std::string file = obj >= 0 ? file_name(obj) : std::string();
  throw Error((file.empty() ? std::string("HDF5") : file) + ": " + what);
}

template <class R>
R check(R r, hid_t obj, const std::string& what) {
  if (r < 0) fail(obj, what);
  return r;
}

Handle string_type(bool variable) {
  Handle t(H5Tcopy(H5T_C_S1));
  if (variable) H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

Handle open_attr(hid_t obj, const std::string& name) {
  silence();
  if (H5Aexists(obj, name.c_str()) <= 0) fail(obj, "attribute '" + name + "' is missing");
  return Handle(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), obj, "cannot open attribute '" + name + "'"));
}

template <class T>
void write_attr_array(hid_t obj, const std::string& name, const T* data, hsize_t n, hid_t type, bool scalar) {
  silence();
  if (H5Aexists(obj, name.c_str()) > 0) {
    // An attribute of the same type and shape is overwritten in place (a progress record rewritten after
    // every commit is never absent, not even for a moment); another one is replaced.
    Handle attr(check(H5Aopen(obj, name.c_str(), H5P_DEFAULT), obj, "cannot open attribute '" + name + "'"));
    Handle old_type(H5Aget_type(attr)), old_space(H5Aget_space(attr));
    const bool same = H5Tequal(old_type, type) > 0 &&
                      H5Sget_simple_extent_type(old_space) == (scalar ? H5S_SCALAR : H5S_SIMPLE) &&
                      H5Sget_simple_extent_npoints(old_space) == static_cast<hssize_t>(scalar ? 1 : n);
    if (same) {
      check(H5Awrite(attr, type, data), obj, "cannot write attribute '" + name + "'");
      return;
    }
    attr.reset();
    check(H5Adelete(obj, name.c_str()), obj, "cannot replace attribute '" + name + "'");
  }
  Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
  Handle attr(check(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), obj,
                    "cannot create attribute '" + name + "'"));
  check(H5Awrite(attr, type, data), obj, "cannot write attribute '" + name + "'");
}

hsize_t attr_size(hid_t attr) {
  Handle space(H5Aget_space(attr));
  hssize_t n = H5Sget_simple_extent_npoints(space);
  return n < 0 ? 0 : static_cast<hsize_t>(n);
}

}  // namespace

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

template <> hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<int8_t>() { return H5T_NATIVE_INT8; }
template <> hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<uint32_t>() { return H5T_NATIVE_UINT32; }
template <> hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<uint64_t>() { return H5T_NATIVE_UINT64; }
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

std::string file_name(hid_t obj) {
  ssize_t n = H5Fget_name(obj, nullptr, 0);
  if (n <= 0) return {};
  std::string s(static_cast<size_t>(n), '\0');
  H5Fget_name(obj, s.data(), static_cast<size_t>(n) + 1);
  return s;
}

void flush_file(hid_t obj) {
  silence();
  check(H5Fflush(obj, H5F_SCOPE_GLOBAL), obj, "cannot flush the file (disk full?)");
}

bool is_hdf5(const std::string& path) {
  silence();
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && H5Fis_hdf5(path.c_str()) > 0;
}

Handle create_file(const std::string& path) {
  silence();
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw Error(path + ": cannot create HDF5 file (check the folder exists and is writable)");
  return Handle(f);
}

Handle open_file(const std::string& path, bool writable) {
  silence();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": no such file");
  if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, expected an HDF5 file");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw Error(path + ": not a readable HDF5 file (truncated or corrupt?)");
  hid_t f = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw Error(path + ": cannot open HDF5 file (truncated or corrupt?)");
  return Handle(f);
}

Handle create_group(hid_t loc, const std::string& name) {
  return Handle(check(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), loc,
                      "cannot create group '" + name + "'"));
}

Handle open_group(hid_t loc, const std::string& name) {
  if (!exists(loc, name)) fail(loc, "group '" + name + "' is missing");
  return Handle(check(H5Gopen2(loc, name.c_str(), H5P_DEFAULT), loc, "cannot open group '" + name + "'"));
}

bool exists(hid_t loc, const std::string& path) {
  silence();
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    pos = slash + 1;
  }
  return true;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle t = string_type(false);
  H5Tset_size(t, std::max<size_t>(1, value.size()));
  std::string v = value.empty() ? std::string(1, '\0') : value;
  write_attr_array(obj, name, v.data(), 1, t, true);
}
void write_attr(hid_t obj, const std::string& name, const char* value) {
  write_attr(obj, name, std::string(value));
}
void write_attr(hid_t obj, const std::string& name, int64_t value) {
  write_attr_array(obj, name, &value, 1, H5T_NATIVE_INT64, true);
}
void write_attr(hid_t obj, const std::string& name, double value) {
  write_attr_array(obj, name, &value, 1, H5T_NATIVE_DOUBLE, true);
}
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values) {
  Handle t = string_type(true);
  std::vector<const char*> ptrs;
  for (auto& s : values) ptrs.push_back(s.c_str());
  write_attr_array(obj, name, ptrs.data(), ptrs.size(), t, false);
}
void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values) {
  write_attr_array(obj, name, values.data(), values.size(), H5T_NATIVE_DOUBLE, false);
}
void write_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values) {
  write_attr_array(obj, name, values.data(), values.size(), H5T_NATIVE_INT64, false);
}

bool has_attr(hid_t obj, const std::string& name) {
  silence();
  return H5Aexists(obj, name.c_str()) > 0;
}

std::string read_attr_string(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  Handle type(H5Aget_type(attr));
  if (H5Tget_class(type) != H5T_STRING) fail(obj, "attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type) > 0) {
    auto v = read_attr_strings(obj, name);
    return v.empty() ? std::string() : v[0];
  }
  size_t size = H5Tget_size(type);
  std::string s(size, '\0');
  Handle mem = string_type(false);
  H5Tset_size(mem, size);
  check(H5Aread(attr, mem, s.data()), obj, "cannot read attribute '" + name + "'");
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

int64_t read_attr_int(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  if (attr_size(attr) != 1) fail(obj, "attribute '" + name + "' is not a scalar");
  int64_t v = 0;
  check(H5Aread(attr, H5T_NATIVE_INT64, &v), obj, "cannot read attribute '" + name + "' as an integer");
  return v;
}

double read_attr_double(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  if (attr_size(attr) != 1) fail(obj, "attribute '" + name + "' is not a scalar");
  double v = 0;
  check(H5Aread(attr, H5T_NATIVE_DOUBLE, &v), obj, "cannot read attribute '" + name + "' as a number");
  return v;
}

std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  Handle type(H5Aget_type(attr));
  if (H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0)
    return {read_attr_string(obj, name)};
  hsize_t n = attr_size(attr);
  std::vector<char*> ptrs(n, nullptr);
  Handle mem = string_type(true);
  check(H5Aread(attr, mem, ptrs.data()), obj, "cannot read attribute '" + name + "'");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  Handle space(H5Aget_space(attr));
  H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
  return out;
}

std::vector<double> read_attr_doubles(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  std::vector<double> v(attr_size(attr));
  check(H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()), obj, "cannot read attribute '" + name + "'");
  return v;
}

std::vector<int64_t> read_attr_ints(hid_t obj, const std::string& name) {
  Handle attr = open_attr(obj, name);
  std::vector<int64_t> v(attr_size(attr));
  check(H5Aread(attr, H5T_NATIVE_INT64, v.data()), obj, "cannot read attribute '" + name + "'");
  return v;
}

template <class T>
void write_array(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data, bool checksum) {
  silence();
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  Handle props(H5Pcreate(H5P_DATASET_CREATE));
  if (checksum && n > 0) {
    // Chunks of at most ~16 MB along the first dimension (HDF5 chunks must stay below 4 GB).
    std::vector<hsize_t> chunk = dims;
    const hsize_t row = n / dims[0] * sizeof(T);
    chunk[0] = std::max<hsize_t>(1, std::min<hsize_t>(dims[0], (hsize_t{16} << 20) / std::max<hsize_t>(row, 1)));
    check(H5Pset_chunk(props, static_cast<int>(chunk.size()), chunk.data()), loc, "cannot chunk dataset '" + name + "'");
    check(H5Pset_fletcher32(props), loc, "cannot add a checksum to dataset '" + name + "'");
  }
  Handle dset(check(H5Dcreate2(loc, name.c_str(), native_type<T>(), space, H5P_DEFAULT, props, H5P_DEFAULT), loc,
                    "cannot create dataset '" + name + "'"));
  check(H5Dwrite(dset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), loc,
        "cannot write dataset '" + name + "'");
}

std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name) {
  if (!exists(loc, name)) fail(loc, "dataset '" + name + "' is missing");
  Handle dset(check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), loc, "cannot open dataset '" + name + "'"));
  Handle space(H5Dget_space(dset));
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

template <class T>
std::vector<T> read_array(hid_t loc, const std::string& name) {
  auto dims = dataset_dims(loc, name);
  hsize_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<T> out(n);
  Handle dset(check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), loc, "cannot open dataset '" + name + "'"));
  if (n > 0)
    check(H5Dread(dset, native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), loc,
          "cannot read dataset '" + name + "' (truncated or corrupt?)");
  return out;
}

std::vector<std::string> read_strings(hid_t loc, const std::string& name) {
  auto dims = dataset_dims(loc, name);
  hsize_t n = dims.empty() ? 1 : dims[0];
  Handle dset(check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), loc, "cannot open dataset '" + name + "'"));
  Handle mem = string_type(true);
  std::vector<char*> ptrs(n, nullptr);
  std::vector<std::string> out;
  out.reserve(n);
  if (n == 0) return out;
  check(H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), loc,
        "cannot read strings '" + name + "' (truncated or corrupt?)");
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  Handle space(H5Dget_space(dset));
  H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
  return out;
}

namespace {
Handle create_extendible(hid_t loc, const std::string& name, hid_t type, hsize_t chunk) {
  silence();
  hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  Handle space(H5Screate_simple(1, &zero, &unlimited));
  Handle props(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(props, 1, &chunk);
  return Handle(check(H5Dcreate2(loc, name.c_str(), type, space, H5P_DEFAULT, props, H5P_DEFAULT), loc,
                      "cannot create dataset '" + name + "'"));
}

// Opens an appendable dataset of `rank` (1, or 2 with rows of `width`) and cuts it to `keep` elements/rows.
Handle open_to_continue(hid_t loc, const std::string& name, int rank, hsize_t width, hsize_t keep) {
  silence();
  Handle dset(check(H5Dopen2(loc, name.c_str(), H5P_DEFAULT), loc, "cannot open dataset '" + name + "'"));
  Handle space(H5Dget_space(dset));
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space) != rank || H5Sget_simple_extent_dims(space, dims, nullptr) != rank ||
      (rank == 2 && dims[1] != width))
    fail(dset, "dataset '" + name + "' does not have the shape this writer continues");
  if (dims[0] < keep)
    fail(dset, "dataset '" + name + "' holds " + std::to_string(dims[0]) + " entries, fewer than the " +
                   std::to_string(keep) + " to continue from");
  dims[0] = keep;
  check(H5Dset_extent(dset, dims), dset, "cannot cut dataset '" + name + "'");
  return dset;
}

// Extends a 1-D dataset by n elements and writes them at the end.
void append_raw(hid_t dset, hid_t mem_type, hsize_t offset, hsize_t n, const void* data, const std::string& name) {
  hsize_t new_size = offset + n;
  check(H5Dset_extent(dset, &new_size), dset, "cannot extend dataset '" + name + "'");
  Handle file_space(H5Dget_space(dset));
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, &offset, nullptr, &n, nullptr);
  Handle mem_space(H5Screate_simple(1, &n, nullptr));
  check(H5Dwrite(dset, mem_type, mem_space, file_space, H5P_DEFAULT, data), dset,
        "cannot write dataset '" + name + "' (disk full?)");
}
}  // namespace

template <class T>
Appender<T>::Appender(hid_t loc, const std::string& name, hsize_t chunk)
    : dset_(create_extendible(loc, name, native_type<T>(), chunk)), name_(name), chunk_(chunk) {
  buffer_.reserve(chunk);
}

template <class T>
Appender<T>::Appender(hid_t loc, const std::string& name, hsize_t chunk, Continue from)
    : dset_(open_to_continue(loc, name, 1, 0, from.keep)), name_(name), chunk_(chunk), written_(from.keep) {
  buffer_.reserve(chunk);
}

template <class T>
void Appender<T>::append(const T* values, size_t n) {
  while (n > 0) {
    size_t take = std::min(n, static_cast<size_t>(chunk_ - buffer_.size()));
    buffer_.insert(buffer_.end(), values, values + take);
    values += take;
    n -= take;
    if (buffer_.size() == chunk_) flush();
  }
}

template <class T>
void Appender<T>::flush() {
  if (buffer_.empty()) return;
  append_raw(dset_, native_type<T>(), written_, buffer_.size(), buffer_.data(), name_);
  written_ += buffer_.size();
  buffer_.clear();
}

RowAppender::RowAppender(hid_t loc, const std::string& name, hsize_t width, hsize_t chunk_rows)
    : name_(name), width_(width) {
  silence();
  if (width == 0 || chunk_rows == 0) fail(loc, "dataset '" + name + "': rows of zero width or chunks of zero rows");
  const hsize_t zero[2] = {0, width}, unlimited[2] = {H5S_UNLIMITED, width}, chunk[2] = {chunk_rows, width};
  Handle space(H5Screate_simple(2, zero, unlimited));
  Handle props(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(props, 2, chunk);
  dset_ = Handle(check(H5Dcreate2(loc, name.c_str(), H5T_NATIVE_FLOAT, space, H5P_DEFAULT, props, H5P_DEFAULT), loc,
                       "cannot create dataset '" + name + "'"));
}

RowAppender::RowAppender(hid_t loc, const std::string& name, hsize_t width, Continue from)
    : dset_(open_to_continue(loc, name, 2, width, from.keep)), name_(name), width_(width), rows_(from.keep) {}

void RowAppender::append(const float* rows, hsize_t n) {
  if (n == 0) return;
  const hsize_t size[2] = {rows_ + n, width_}, offset[2] = {rows_, 0}, count[2] = {n, width_};
  check(H5Dset_extent(dset_, size), dset_, "cannot extend dataset '" + name_ + "'");
  Handle file_space(H5Dget_space(dset_));
  H5Sselect_hyperslab(file_space, H5S_SELECT_SET, offset, nullptr, count, nullptr);
  Handle mem_space(H5Screate_simple(2, count, nullptr));
  check(H5Dwrite(dset_, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, rows), dset_,
        "cannot write dataset '" + name_ + "' (disk full?)");
  rows_ += n;
}

StringAppender::StringAppender(hid_t loc, const std::string& name, hsize_t chunk)
    : type_(string_type(true)), name_(name), chunk_(chunk) {
  dset_ = create_extendible(loc, name, type_, chunk);
}

StringAppender::StringAppender(hid_t loc, const std::string& name, hsize_t chunk, Continue from)
    : dset_(open_to_continue(loc, name, 1, 0, from.keep)),
      type_(string_type(true)),
      name_(name),
      chunk_(chunk),
      written_(from.keep) {}

void StringAppender::append(const std::string& s) {
  buffer_.push_back(s);
  if (buffer_.size() == chunk_) flush();
}

void StringAppender::flush() {
  if (buffer_.empty()) return;
  std::vector<const char*> ptrs;
  ptrs.reserve(buffer_.size());
  for (auto& s : buffer_) ptrs.push_back(s.c_str());
  append_raw(dset_, type_, written_, ptrs.size(), ptrs.data(), name_);
  written_ += buffer_.size();
  buffer_.clear();
}

#define PERFORMER_H5_INSTANTIATE(T)                                                                     \
  template void write_array<T>(hid_t, const std::string&, const std::vector<hsize_t>&, const T*, bool); \
  template std::vector<T> read_array<T>(hid_t, const std::string&);                                   \
  template class Appender<T>;
PERFORMER_H5_INSTANTIATE(uint8_t)
PERFORMER_H5_INSTANTIATE(int32_t)
PERFORMER_H5_INSTANTIATE(int64_t)
PERFORMER_H5_INSTANTIATE(uint64_t)
PERFORMER_H5_INSTANTIATE(float)
PERFORMER_H5_INSTANTIATE(double)
#undef PERFORMER_H5_INSTANTIATE

}  // namespace performer::h5
