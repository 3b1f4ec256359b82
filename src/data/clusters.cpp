#include "data/clusters.h"

#include <fstream>

#include "util/error.h"

namespace performer {

Clusters Clusters::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the cluster file");
  Clusters c;
  c.path_ = path;
  std::unordered_map<std::string, int64_t> cluster_of_rep;
  std::unordered_map<std::string, int64_t> first_line;  // of each member
  std::vector<int64_t> rep_line;                        // first line naming each representative
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos || tab == 0 || tab + 1 == line.size())
      throw Error(path + ":" + std::to_string(line_no) +
                  ": expected two tab-separated columns (cluster representative, member accession)");
    const std::string rep = line.substr(0, tab), member = line.substr(tab + 1);
    auto [it, fresh] = cluster_of_rep.emplace(rep, static_cast<int64_t>(c.representatives_.size()));
    if (fresh) {
      c.representatives_.push_back(rep);
      rep_line.push_back(line_no);
    }
    auto [m, new_member] = c.member_.emplace(member, it->second);
    if (!new_member)
      throw Error(path + ":" + std::to_string(line_no) + ": member '" + member + "' is listed twice (first at line " +
                  std::to_string(first_line[member]) + ", in the cluster of '" + c.representatives_[static_cast<size_t>(m->second)] +
                  "')");
    first_line.emplace(member, line_no);
  }
  if (in.bad()) throw Error(path + ": read error");
  if (c.member_.empty()) throw Error(path + ": no clusters in the file");
  for (size_t k = 0; k < c.representatives_.size(); ++k) {
    const auto m = c.member_.find(c.representatives_[k]);
    if (m == c.member_.end() || m->second != static_cast<int64_t>(k))
      throw Error(path + ":" + std::to_string(rep_line[k]) + ": representative '" + c.representatives_[k] +
                  "' is not listed as a member of its own cluster (mmseqs2 lists each representative with itself); "
                  "is this a cluster TSV of these proteins?");
  }
  return c;
}

int64_t Clusters::cluster_of(const std::string& accession) const {
  const auto it = member_.find(accession);
  return it == member_.end() ? -1 : it->second;
}

}  // namespace performer
