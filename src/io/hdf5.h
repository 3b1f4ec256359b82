// A thin RAII layer over the HDF5 C API: files, groups, attributes, whole datasets, and datasets that
// grow by appending (for streaming writes whose final size is unknown). Every failure is a
// performer::Error naming the file and the object; HDF5's own error printing is silenced.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace performer::h5 {

// Owns one hid_t and closes it with the right H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Native HDF5 type of a C++ scalar type.
template <class T> hid_t native_type();

// Creates (truncating) or opens a file. open() checks that the file exists and is HDF5, with a clear error.
Handle create_file(const std::string& path);
Handle open_file(const std::string& path, bool writable = false);
std::string file_name(hid_t obj);
bool is_hdf5(const std::string& path);  // an existing regular file with the HDF5 signature
// Writes HDF5's buffers of the file holding `obj` to the operating system (H5Fflush), so that what was
// written so far is in the file if this process dies.
void flush_file(hid_t obj);

Handle create_group(hid_t loc, const std::string& name);
Handle open_group(hid_t loc, const std::string& name);
bool exists(hid_t loc, const std::string& path);  // every component of a '/'-separated path

// Attributes on a file, group or dataset.
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const char* value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
void write_attr(hid_t obj, const std::string& name, const std::vector<std::string>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<double>& values);
void write_attr(hid_t obj, const std::string& name, const std::vector<int64_t>& values);
bool has_attr(hid_t obj, const std::string& name);
std::string read_attr_string(hid_t obj, const std::string& name);
int64_t read_attr_int(hid_t obj, const std::string& name);
double read_attr_double(hid_t obj, const std::string& name);
std::vector<std::string> read_attr_strings(hid_t obj, const std::string& name);
std::vector<double> read_attr_doubles(hid_t obj, const std::string& name);
std::vector<int64_t> read_attr_ints(hid_t obj, const std::string& name);

// Whole datasets of any rank (row-major data). checksum: chunked storage with HDF5's Fletcher-32 filter,
// so a read of a chunk whose bytes changed fails instead of returning them (checkpoints use it).
template <class T>
void write_array(hid_t loc, const std::string& name, const std::vector<hsize_t>& dims, const T* data,
                 bool checksum = false);
std::vector<hsize_t> dataset_dims(hid_t loc, const std::string& name);
template <class T>
std::vector<T> read_array(hid_t loc, const std::string& name);  // flattened, any rank
std::vector<std::string> read_strings(hid_t loc, const std::string& name);

// Continuing an appendable dataset of an earlier, interrupted writer: its first `keep` elements (rows)
// are kept and whatever was written after them is cut off. Opening one that holds fewer is an Error.
struct Continue {
  hsize_t keep = 0;
};

// A 1-D dataset that grows as values are appended, buffered into chunks of `chunk` elements.
template <class T>
class Appender {
 public:
  Appender(hid_t loc, const std::string& name, hsize_t chunk);
  Appender(hid_t loc, const std::string& name, hsize_t chunk, Continue from);
  void append(const T* values, size_t n);
  void append(const T& v) { append(&v, 1); }
  void flush();
  hsize_t size() const { return written_ + buffer_.size(); }

 private:
  Handle dset_;
  std::string name_;
  std::vector<T> buffer_;
  hsize_t chunk_;
  hsize_t written_ = 0;
};

// A 2-D float32 dataset [rows, width] that grows by whole rows (embeddings), written directly (HDF5
// chunks of `chunk_rows` rows).
class RowAppender {
 public:
  RowAppender(hid_t loc, const std::string& name, hsize_t width, hsize_t chunk_rows);
  RowAppender(hid_t loc, const std::string& name, hsize_t width, Continue from);
  void append(const float* rows, hsize_t n);  // n rows of width floats
  hsize_t rows() const { return rows_; }

 private:
  Handle dset_;
  std::string name_;
  hsize_t width_, rows_ = 0;
};

// The same for variable-length UTF-8 strings (readable as str/bytes from h5py).
class StringAppender {
 public:
  StringAppender(hid_t loc, const std::string& name, hsize_t chunk);
  StringAppender(hid_t loc, const std::string& name, hsize_t chunk, Continue from);
  void append(const std::string& s);
  void flush();
  hsize_t size() const { return written_ + buffer_.size(); }

 private:
  Handle dset_;
  Handle type_;
  std::string name_;
  std::vector<std::string> buffer_;
  hsize_t chunk_;
  hsize_t written_ = 0;
};

}  // namespace performer::h5
