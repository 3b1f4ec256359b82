// Sequence clusters for held-out splits: the two-column TSV that `mmseqs createtsv` and
// `mmseqs easy-cluster` write, "representative<TAB>member" per line, each representative listed as a
// member of its own cluster. `prepare --clusters FILE` keys the train/valid/test split by the cluster's
// representative, so no cluster straddles two splits (a valid protein 95% identical to a training one
// would measure memorization, not generalization).
//
// Memory: the member accessions and one representative index each (about 40 bytes per member).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace performer {

class Clusters {
 public:
  // Reads FILE; Error "FILE:LINE: ..." for a line without exactly two tab-separated columns, a member
  // listed twice, or a representative never listed as a member of its own cluster.
  static Clusters load(const std::string& path);

  // The cluster of an accession: its representative's index, or -1 when the file does not list it.
  int64_t cluster_of(const std::string& accession) const;
  const std::string& representative(int64_t cluster) const { return representatives_[static_cast<size_t>(cluster)]; }
  int64_t clusters() const { return static_cast<int64_t>(representatives_.size()); }
  int64_t members() const { return static_cast<int64_t>(member_.size()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> representatives_;
  std::unordered_map<std::string, int64_t> member_;  // accession -> cluster
};

}  // namespace performer
