// Files that survive a crash or a power loss: a finished temporary is fsync'ed, renamed over its final
// name, and the folder is fsync'ed, so the final name never points at an empty or partial file; and
// temporaries left by killed processes ("<name>.tmp-<pid>" of a pid no longer running) are removed.
#pragma once
#include <string>
#include <vector>

namespace performer {

// fsync of a file or a folder; throws Error naming the path.
void fsync_path(const std::string& path);
// fsync(from), rename(from, to), fsync(folder of to); throws Error naming both.
void rename_durably(const std::string& from, const std::string& to);
// The temporary name for `path` in this process: "<path>.tmp-<pid>".
std::string temporary_for(const std::string& path);

// A file written whole or not at all: the writer writes temporary() ("<path>.tmp-<pid>"); commit() moves
// it durably over `path`. Destroyed uncommitted (an error on the way), it removes the temporary, so
// `path` keeps its previous content or stays absent.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  const std::string& path() const { return path_; }
  const std::string& temporary() const { return temporary_; }
  void commit();  // rename_durably(temporary(), path()); throws Error

 private:
  std::string path_, temporary_;
  bool committed_ = false;
};

// Writes `text` to `path` whole or not at all (AtomicFile); throws Error naming the path.
void write_text_file(const std::string& path, const std::string& text);

// A file a command reads, by the option (or config key) that names it, for messages.
struct InputFile {
  std::string option;  // "--input", "--checkpoint", "data.train", ...
  std::string path;
};

// Whether two paths name the same existing file or folder (also through links, ".." or another spelling).
bool same_file(const std::string& a, const std::string& b);

// Refuses to write over an input: throws Error when one of `outputs` (the files and folders a command
// writes, `option` being the option that names them) is one of `inputs`. "-" (standard input) and empty
// paths are no files. Checked before anything is written, with or without --force.
void refuse_overwriting_inputs(const std::string& option, const std::vector<std::string>& outputs,
                               const std::vector<InputFile>& inputs);

// Removes the "*.tmp-<pid>" files in `dir` whose process is gone; returns how many.
int remove_stale_temporaries(const std::string& dir);

}  // namespace performer
