// The PDB / mmCIF reader (io/structure.h): real excerpts in both formats (the mmCIF written by gemmi, an
// independent writer) give the same residues and points; the synthetic cases (modified residues, alternate
// locations, insertion codes, missing residues, models, chains, ligands) behave as documented; malformed files
// are Errors naming the file and the line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/structure.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

std::string structure_data(const std::string& name) { return data_path("structures/" + name); }

// Writes `text` to the file `name` in `dir`; its path.
std::string put(const TempDir& dir, const std::string& name, const std::string& text) {
  write_file(dir.file(name), text);
  return dir.file(name);
}

// One ATOM/HETATM line in the PDB format's fixed columns (atom names of one-letter elements start in column 14).
std::string atom_line(const char* record, const char* atom, char alt, const char* residue, char chain, int number,
                      char insertion, double x, double y, double z) {
  const std::string name = std::string(atom).size() < 4 ? " " + std::string(atom) : std::string(atom);
  char buf[128];
  std::snprintf(buf, sizeof buf, "%-6s%5d %-4s%c%3s %c%4d%c   %8.3f%8.3f%8.3f%6.2f%6.2f", record, 1, name.c_str(),
                alt, residue, chain, number, insertion, x, y, z, 1.0, 20.0);
  return std::string(buf) + "\n";
}
std::string atom(const char* atom, const char* residue, char chain, int number, double x, double y, double z,
                 char alt = ' ') {
  return atom_line("ATOM", atom, alt, residue, chain, number, ' ', x, y, z);
}
std::string hetatm(const char* atom, const char* residue, char chain, int number, double x, double y, double z) {
  return atom_line("HETATM", atom, ' ', residue, chain, number, ' ', x, y, z);
}

// The message of the Error `f` throws ("" when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The message names the place, "path:line: ...", on one line.
void expect_error_at(const std::string& message, const std::string& place, const std::string& what) {
  EXPECT_EQ(message.rfind(place + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// The ideal C-beta placed from the backbone, computed here from the formula (b = CA - N, c = C - CA, a = b x c).
std::array<double, 3> virtual_cb(const std::array<double, 3>& n, const std::array<double, 3>& ca,
                                 const std::array<double, 3>& c) {
  const double b[3] = {ca[0] - n[0], ca[1] - n[1], ca[2] - n[2]};
  const double cc[3] = {c[0] - ca[0], c[1] - ca[1], c[2] - ca[2]};
  const double a[3] = {b[1] * cc[2] - b[2] * cc[1], b[2] * cc[0] - b[0] * cc[2], b[0] * cc[1] - b[1] * cc[0]};
  std::array<double, 3> out{};
  for (int k = 0; k < 3; ++k) out[k] = -0.58273431 * a[k] + 0.56802827 * b[k] - 0.54067466 * cc[k] + ca[k];
  return out;
}

void expect_point(const StructureResidue& r, const std::array<double, 3>& p) {
  ASSERT_TRUE(r.has_point) << r.name << " " << r.number;
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(r.point[k], p[k], 1e-6) << r.name << " " << r.number << " axis " << k;
}

// The same residues (names, codes, numbers, insertion codes, HETATM, points to 1e-3) in both chains.
void expect_same_residues(const StructureChain& a, const StructureChain& b) {
  ASSERT_EQ(a.residues.size(), b.residues.size());
  for (size_t i = 0; i < a.residues.size(); ++i) {
    const StructureResidue &x = a.residues[i], &y = b.residues[i];
    EXPECT_EQ(x.name, y.name) << i;
    EXPECT_EQ(x.code, y.code) << i;
    EXPECT_EQ(x.number, y.number) << i;
    EXPECT_EQ(x.insertion, y.insertion) << i;
    EXPECT_EQ(x.hetatm, y.hetatm) << i;
    ASSERT_EQ(x.has_point, y.has_point) << i;
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(x.point[k], y.point[k], 1e-3) << i;
  }
}

const StructureResidue& residue(const StructureChain& chain, int64_t number, char insertion = ' ') {
  for (const StructureResidue& r : chain.residues)
    if (r.number == number && r.insertion == insertion) return r;
  throw std::runtime_error("no residue " + std::to_string(number) + insertion);
}

// 1i8nA (MDAnalysisTests' DSSP set), residues 37-66 of chain A, as the file gives them.
constexpr const char* kExcerptSequence = "ETITAGNEDCWSKRPGWKLPDNLLTKTEFT";

}  // namespace

TEST(Structure, AminoAcidCodes) {
  EXPECT_EQ(amino_acid_code("ALA"), 'A');
  EXPECT_EQ(amino_acid_code("TRP"), 'W');
  EXPECT_EQ(amino_acid_code("MSE"), 'M');
  EXPECT_EQ(amino_acid_code("SEP"), 'S');
  EXPECT_EQ(amino_acid_code("PTR"), 'Y');
  EXPECT_EQ(amino_acid_code("SEC"), 'C');
  EXPECT_EQ(amino_acid_code("PYL"), 'K');
  EXPECT_EQ(amino_acid_code("DAL"), 'A');
  EXPECT_EQ(amino_acid_code("UNK"), 'X');
  EXPECT_EQ(amino_acid_code("HOH"), '\0');
  EXPECT_EQ(amino_acid_code("SO4"), '\0');
  EXPECT_EQ(amino_acid_code("DA"), '\0');
  EXPECT_EQ(amino_acid_code("ala"), '\0') << "residue names are upper case in both formats";
}

TEST(Structure, RealPdbExcerpt) {
  const std::string path = structure_data("1i8nA_excerpt.pdb");
  EXPECT_EQ(structure_chains(path), std::vector<std::string>{"A"});
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.path, path);
  EXPECT_EQ(c.chain, "A");
  EXPECT_EQ(c.observed(), kExcerptSequence);
  EXPECT_EQ(c.seqres, "") << "the file has no SEQRES";
  ASSERT_EQ(c.residues.size(), 30u);
  for (size_t i = 0; i < c.residues.size(); ++i) {
    EXPECT_EQ(c.residues[i].number, 37 + static_cast<int64_t>(i));
    EXPECT_EQ(c.residues[i].insertion, ' ');
    EXPECT_FALSE(c.residues[i].hetatm);
    EXPECT_TRUE(c.residues[i].has_point);
  }
  EXPECT_EQ(read_structure(path, "A").residues.size(), 30u);
  // Lines 5, 38 and 49-51 of the file: GLU 37 CB, GLY 42 CA; GLU 44 has no side chain at all (N CA C O only).
  expect_point(residue(c, 37), {41.943, 16.769, 134.491});
  expect_point(residue(c, 42), {49.407, 20.753, 121.212});
  expect_point(residue(c, 44), virtual_cb({52.548, 17.492, 121.295}, {52.862, 16.079, 121.395},
                                          {53.026, 15.601, 122.835}));
}

TEST(Structure, VirtualCbetaNearTheRealOne) {
  // The excerpt with every CB line removed: each non-glycine residue gets the virtual C-beta from its backbone,
  // which lies within 0.35 A of the real one (0.04 to 0.30 A on these 27 residues).
  const std::string path = structure_data("1i8nA_excerpt.pdb");
  std::ifstream in(path);
  std::string text, line;
  while (std::getline(in, line))
    if (line.compare(12, 4, " CB ") != 0) text += line + "\n";
  TempDir dir;
  const StructureChain real = read_structure(path), virtual_only = read_structure(put(dir, "no_cb.pdb", text));
  ASSERT_EQ(real.observed(), virtual_only.observed());
  int compared = 0;
  for (size_t i = 0; i < real.residues.size(); ++i) {
    if (real.residues[i].code == 'G' || real.residues[i].number == 44) continue;  // no CB in the file
    EXPECT_LT(residue_distance(real.residues[i], virtual_only.residues[i]), 0.35) << real.residues[i].number;
    ++compared;
  }
  EXPECT_EQ(compared, 27);
}

TEST(Structure, CbetaDistanceByHand) {
  const StructureChain c = read_structure(structure_data("1i8nA_excerpt.pdb"));
  // GLU 37 CB (41.943, 16.769, 134.491) and ALA 41 CB (51.143, 22.994, 125.133), copied from the file:
  // differences 9.200, 6.225, -9.358, so sqrt(84.64 + 38.750625 + 87.572164) = sqrt(210.962789).
  const double by_hand = std::sqrt(9.2 * 9.2 + 6.225 * 6.225 + 9.358 * 9.358);
  EXPECT_NEAR(by_hand, 14.524558, 1e-6);
  EXPECT_NEAR(residue_distance(residue(c, 37), residue(c, 41)), by_hand, 1e-9);
  EXPECT_NEAR(residue_distance(residue(c, 41), residue(c, 37)), by_hand, 1e-9);
  EXPECT_EQ(residue_distance(residue(c, 50), residue(c, 50)), 0.0);
  // Neighbours in the chain are in contact, residues 37 and 41 are not.
  EXPECT_LT(residue_distance(residue(c, 37), residue(c, 38)), kContactCutoff);
  EXPECT_GT(residue_distance(residue(c, 37), residue(c, 41)), kContactCutoff);
}

TEST(Structure, MmcifFromGemmiAndGzipMatchPdb) {
  const StructureChain pdb = read_structure(structure_data("1i8nA_excerpt.pdb"));
  const StructureChain cif = read_structure(structure_data("1i8nA_excerpt.cif"));
  const StructureChain gz = read_structure(structure_data("1i8nA_excerpt.pdb.gz"));
  EXPECT_EQ(structure_chains(structure_data("1i8nA_excerpt.cif")), std::vector<std::string>{"A"});
  EXPECT_EQ(cif.chain, "A");
  EXPECT_EQ(cif.observed(), kExcerptSequence);
  EXPECT_EQ(cif.seqres, "") << "gemmi writes no _entity_poly_seq without SEQRES";
  expect_same_residues(pdb, cif);
  expect_same_residues(pdb, gz);
}

// features.pdb: synthetic chain A, SEQRES MET LYS MSE THR ALA SER GLY VAL LEU; residue 50 (LYS) has no
// coordinates; MSE 51 as HETATM; THR 52 and ALA 52A; SER 53 with alternate locations A and B; GLY 54; LEU 56
// without side chain; hydrogens on THR 52; a water and a sulfate after TER.
TEST(Structure, FeaturesResidues) {
  const StructureChain c = read_structure(structure_data("features.pdb"));
  EXPECT_EQ(c.observed(), "MMTASGVL") << "water HOH 101 and sulfate SO4 102 are skipped";
  EXPECT_EQ(c.seqres, "MKMTASGVL");
  ASSERT_EQ(c.residues.size(), 8u);
  const std::vector<int64_t> numbers = {49, 51, 52, 52, 53, 54, 55, 56};
  for (size_t i = 0; i < numbers.size(); ++i) EXPECT_EQ(c.residues[i].number, numbers[i]);
  // MSE as HETATM inside the chain: its parent's code, and marked.
  const StructureResidue& mse = residue(c, 51);
  EXPECT_EQ(mse.name, "MSE");
  EXPECT_EQ(mse.code, 'M');
  EXPECT_TRUE(mse.hetatm);
  expect_point(mse, {43.726, 14.657, 129.578});
  EXPECT_FALSE(residue(c, 49).hetatm);
  // Insertion codes: 52 and 52A are two residues.
  EXPECT_EQ(residue(c, 52).name, "THR");
  EXPECT_EQ(residue(c, 52, 'A').name, "ALA");
  expect_point(residue(c, 52), {45.835, 19.872, 129.919});
  expect_point(residue(c, 52, 'A'), {48.002, 18.561, 125.075});
  // Alternate locations: CB A kept (51.143, 22.994, 125.133), CB B (52.043, 22.594, 125.433) ignored.
  expect_point(residue(c, 53), {51.143, 22.994, 125.133});
  // Glycine: C-alpha.
  expect_point(residue(c, 54), {49.407, 20.753, 121.212});
  // No CB: the virtual C-beta from N, CA, C of LEU 56.
  expect_point(residue(c, 56), virtual_cb({52.548, 17.492, 121.295}, {52.862, 16.079, 121.395},
                                          {53.026, 15.601, 122.835}));
}

TEST(Structure, FeaturesMmcifFromGemmiMatchesPdb) {
  // gemmi 0.5.7 writes no group_PDB column: MSE is still known as modified (not a standard name) and kept.
  const StructureChain pdb = read_structure(structure_data("features.pdb"));
  const StructureChain cif = read_structure(structure_data("features.cif"));
  EXPECT_EQ(cif.chain, "A");
  EXPECT_EQ(cif.seqres, "MKMTASGVL") << "from _entity_poly_seq, entity A through label_entity_id";
  expect_same_residues(pdb, cif);
}

TEST(Structure, MissingResidueAlignsToMinusOne) {
  const StructureChain c = read_structure(structure_data("features.pdb"));
  EXPECT_EQ(align_to_sequence(c, c.seqres), (std::vector<int64_t>{0, -1, 1, 2, 3, 4, 5, 6, 7}));
  // End gaps are free: extra positions before and after map to -1, the rest shifts.
  EXPECT_EQ(align_to_sequence(c, "GGGG" + c.seqres + "WWW"),
            (std::vector<int64_t>{-1, -1, -1, -1, 0, -1, 1, 2, 3, 4, 5, 6, 7, -1, -1, -1}));
  // Observed residues past the end of the sequence (VAL 55, LEU 56) stay unpaired, for free.
  EXPECT_EQ(align_to_sequence(c, "MKMTASG"), (std::vector<int64_t>{0, -1, 1, 2, 3, 4, 5}));
  // A mismatch (S -> W at position 5) still aligns; lower case is compared as upper case.
  EXPECT_EQ(align_to_sequence(c, "mkmtawgvl"), (std::vector<int64_t>{0, -1, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(Structure, AlignmentPrefersOneGap) {
  // R D S K S V L M N P Q observed against R D S K S S D K S V L M N P Q: four residues are missing in one
  // stretch (after S, K or the second S, the sequence does not say which), which scores the same as splitting
  // the gap around chance matches (R D S K - S - - K S V ...); among equal scores the alignment opening one gap
  // wins.
  TempDir dir;
  std::string text;
  const char* names[] = {"ARG", "ASP", "SER", "LYS", "SER", "VAL", "LEU", "MET", "ASN", "PRO", "GLN"};
  for (int i = 0; i < 11; ++i) text += atom("CB", names[i], 'A', i + 1, i, 0, 0);
  const StructureChain c = read_structure(put(dir, "gap.pdb", text));
  const std::string sequence = "RDSKSSDKSVLMNPQ";
  const std::vector<int64_t> at = align_to_sequence(c, sequence);
  int gaps = 0, paired = 0;
  for (size_t j = 0; j < at.size(); ++j) {
    gaps += at[j] < 0 && (j == 0 || at[j - 1] >= 0);
    if (at[j] < 0) continue;
    EXPECT_EQ(c.residues[at[j]].code, sequence[j]) << j;
    ++paired;
  }
  EXPECT_EQ(gaps, 1);
  EXPECT_EQ(paired, 11);
}

TEST(Structure, AlignmentRejectsAnUnrelatedSequence) {
  const StructureChain c = read_structure(structure_data("features.pdb"));
  const std::string message = error_of([&] { align_to_sequence(c, "WWWWWWWWWPPPPPP"); });
  expect_error_at(message, c.path, "does not match the sequence given");
}

TEST(Structure, OnlyTheFirstModel) {
  TempDir dir;
  const std::string path = put(dir, "models.pdb", "MODEL        1\n" + atom("CA", "ALA", 'A', 1, 0, 0, 0) +
                                                       atom("CB", "ALA", 'A', 1, 1, 2, 3) +
                                                       atom("CA", "GLY", 'A', 2, 4, 5, 6) + "ENDMDL\n" +
                                                       "MODEL        2\n" + atom("CA", "ALA", 'A', 1, 0, 0, 0) +
                                                       atom("CB", "ALA", 'A', 1, 7, 8, 9) +
                                                       atom("CA", "GLY", 'A', 2, 4, 5, 6) +
                                                       atom("CA", "GLY", 'A', 3, 9, 9, 9) + "ENDMDL\nEND\n");
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.observed(), "AG");
  expect_point(c.residues[0], {1, 2, 3});
  expect_point(c.residues[1], {4, 5, 6});
}

TEST(Structure, TwoChains) {
  TempDir dir;
  const std::string path =
      put(dir, "chains.pdb", atom("CB", "ALA", 'A', 1, 1, 1, 1) + atom("CA", "GLY", 'A', 2, 2, 2, 2) + "TER\n" +
                                  atom("CB", "SER", 'B', 1, 3, 3, 3) + atom("CB", "VAL", 'B', 2, 4, 4, 4) +
                                  atom("CB", "LYS", 'B', 3, 5, 5, 5) + "TER\n" + hetatm("O", "HOH", 'C', 1, 0, 0, 0));
  EXPECT_EQ(structure_chains(path), (std::vector<std::string>{"A", "B"})) << "chain C holds only water";
  expect_error_at(error_of([&] { read_structure(path); }), path, "'A', 'B'");
  const StructureChain b = read_structure(path, "B");
  EXPECT_EQ(b.chain, "B");
  EXPECT_EQ(b.observed(), "SVK");
  expect_point(b.residues[2], {5, 5, 5});
  expect_error_at(error_of([&] { read_structure(path, "C"); }), path,
                  "no protein chain 'C'; chains with amino acids: 'A', 'B'");
}

TEST(Structure, AlternateNamesAndLocationsKeepTheFirstSeen) {
  TempDir dir;
  // Residue 10: SER (altloc A) and THR (altloc B) at the same number. Residue 12: the first altloc seen is B
  // (on CA), so CB of A, listed before CB of B, is ignored. Residue 13: a hydrogen of altloc B comes first,
  // but hydrogens are ignored, so the first altloc is A. Residue 14: a second name without altlocs.
  const std::string path = put(dir, 
      "alt.pdb", atom("CA", "SER", 'A', 10, 0, 0, 0, 'A') + atom("CB", "SER", 'A', 10, 1, 1, 1, 'A') +
                     atom("CA", "THR", 'A', 10, 0, 0, 0, 'B') + atom("CB", "THR", 'A', 10, 2, 2, 2, 'B') +
                     atom("CA", "GLY", 'A', 11, 5, 5, 5) + atom("CA", "ALA", 'A', 12, 6, 6, 6, 'B') +
                     atom("CB", "ALA", 'A', 12, 4, 4, 4, 'A') + atom("CB", "ALA", 'A', 12, 3, 3, 3, 'B') +
                     atom("CA", "CYS", 'A', 13, 7, 7, 7) + atom("HB2", "CYS", 'A', 13, 9, 9, 9, 'B') +
                     atom("CB", "CYS", 'A', 13, 8, 8, 8, 'A') + atom("CB", "CYS", 'A', 13, 9, 9, 9, 'B') +
                     atom("CA", "GLU", 'A', 14, 1, 2, 3) + atom("CB", "ASP", 'A', 14, 3, 2, 1));
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.observed(), "SGACE");
  EXPECT_EQ(c.residues[0].name, "SER");
  expect_point(c.residues[0], {1, 1, 1});
  expect_point(c.residues[2], {3, 3, 3});
  expect_point(c.residues[3], {8, 8, 8});
  EXPECT_FALSE(c.residues[4].has_point) << "GLU 14 has a CA only; the CB of ASP 14 is not its";
}

TEST(Structure, UnknownResiduesLigandsAndNucleotides) {
  TempDir dir;
  const std::string path = put(dir, 
      "mixed.pdb",
      atom("N", "ALA", 'A', 1, 0, 0, 0) + atom("CA", "ALA", 'A', 1, 1, 0, 0) + atom("CB", "ALA", 'A', 1, 1, 1, 0) +
          atom("CA", "UNK", 'A', 2, 4, 0, 0) +                                          // CA only: no point
          atom("N", "XYZ", 'A', 3, 6, 0, 0) + atom("CA", "XYZ", 'A', 3, 7, 0, 0) +     // unknown name with CA
          atom("C", "XYZ", 'A', 3, 8, 1, 0) + atom("CA", "SER", 'A', 4, 9, 0, 0) +     // SER without CB, N, C
          hetatm("CA", "GLU", 'A', 100, 0, 5, 0) + hetatm("CA", "CA", 'A', 101, 0, 6, 0) +  // free GLU, calcium
          atom("P", "DA", 'B', 1, 0, 0, 9) + atom("C1'", "DA", 'B', 1, 0, 1, 9));      // DNA: no CA
  EXPECT_EQ(structure_chains(path), std::vector<std::string>{"A"});
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.observed(), "AXXS");
  EXPECT_EQ(c.residues[1].name, "UNK");
  EXPECT_FALSE(c.residues[1].has_point);
  expect_point(c.residues[2], virtual_cb({6, 0, 0}, {7, 0, 0}, {8, 1, 0}));
  EXPECT_FALSE(c.residues[3].has_point);
  // Residues without a point align but map to -1; 'X' is no identical partner (2 of 4 are, enough).
  EXPECT_EQ(align_to_sequence(c, "AXXS"), (std::vector<int64_t>{0, -1, 2, -1}));
  const std::string no_point = error_of([&] { residue_distance(c.residues[0], c.residues[1]); });
  EXPECT_NE(no_point.find("residue UNK 2 has no point"), std::string::npos) << no_point;
}

TEST(Structure, MmcifSyntax) {
  TempDir dir;
  const std::string path = put(dir, "syntax.cif", R"(# a hand-written mmCIF file
data_test
_struct.title
;A title in a text field,
over two lines
;
loop_
_entity_poly.entity_id
_entity_poly.type
_entity_poly.pdbx_seq_one_letter_code_can
_entity_poly.pdbx_strand_id
1 'polypeptide(L)'
;MKMV
AGU
;
B
#
_pdbx_database_status.note 'it's quoted'   # the quote inside is no closing quote: no blank after it
loop_
_atom_site.group_PDB
_atom_site.label_atom_id
_atom_site.label_alt_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.auth_asym_id
_atom_site.auth_seq_id
_atom_site.pdbx_PDB_ins_code
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
_atom_site.pdbx_PDB_model_num
ATOM "CA" . MET A B 1 ? 1.0 2.0 3.0 1
ATOM CB . MET A B 1 ? 1.5 2.5 3.5 1
ATOM 'CA' . LYS A B 2 ?
  4.0 5.0 6.0 1
HETATM CB . MSE A B 3 . 7 8 9 1
HETATM CB B MSE A B 3 . 1 1 1 1
ATOM CB . ALA A B 3 A 2 4 6 1
HETATM O . HOH C B 100 ? 0 0 0 1
ATOM CB . MET A B 1 ? 9.5 9.5 9.5 2
ATOM CB . VAL A B 4 ? 9.5 9.5 9.5 2
)");
  EXPECT_EQ(structure_chains(path), std::vector<std::string>{"B"}) << "auth_asym_id, not label_asym_id";
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.chain, "B");
  EXPECT_EQ(c.seqres, "MKMVAGC") << "the text field's line break dropped, U (selenocysteine) read as C";
  EXPECT_EQ(c.observed(), "MKMA") << "water skipped, model 2 ignored";
  expect_point(c.residues[0], {1.5, 2.5, 3.5});
  EXPECT_FALSE(c.residues[1].has_point) << "LYS with a CA only";
  EXPECT_TRUE(c.residues[2].hetatm);
  expect_point(c.residues[2], {7, 8, 9});
  EXPECT_EQ(c.residues[3].number, 3);
  EXPECT_EQ(c.residues[3].insertion, 'A');
  EXPECT_EQ(align_to_sequence(c, c.seqres), (std::vector<int64_t>{0, -1, 2, -1, 3, -1, -1}));
}

TEST(Structure, MmcifSequenceThroughStructAsymOrScheme) {
  // No label_entity_id in _atom_site: the chain's label_asym_id finds its entity in _struct_asym; the
  // second monomer listed for position 2 (microheterogeneity) is not part of the sequence.
  TempDir dir;
  const std::string path = put(dir, "asym.cif", R"(data_asym
loop_
_entity_poly_seq.entity_id
_entity_poly_seq.num
_entity_poly_seq.mon_id
_entity_poly_seq.hetero
1 1 GLY n
1 2 SER y
1 2 THR y
1 3 MSE n
2 1 ALA n
loop_
_struct_asym.id
_struct_asym.entity_id
A 2
B 1
loop_
_atom_site.group_PDB
_atom_site.label_atom_id
_atom_site.label_comp_id
_atom_site.label_asym_id
_atom_site.label_seq_id
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
ATOM CA GLY B 1 0 0 0
ATOM CB SER B 2 1 0 0
)");
  const StructureChain c = read_structure(path);
  EXPECT_EQ(c.chain, "B") << "label_asym_id when there is no auth_asym_id";
  EXPECT_EQ(c.seqres, "GSM");
  EXPECT_EQ(c.observed(), "GS");
  EXPECT_EQ(c.residues[1].number, 2) << "label_seq_id when there is no auth_seq_id";

  // Nor _struct_asym: _pdbx_poly_seq_scheme names the entity of author chain Z.
  const std::string scheme = put(dir, "scheme.cif", R"(data_scheme
loop_
_entity_poly_seq.entity_id
_entity_poly_seq.num
_entity_poly_seq.mon_id
1 1 GLY
2 1 TRP
2 2 TYR
loop_
_pdbx_poly_seq_scheme.asym_id
_pdbx_poly_seq_scheme.entity_id
_pdbx_poly_seq_scheme.seq_id
_pdbx_poly_seq_scheme.mon_id
_pdbx_poly_seq_scheme.pdb_strand_id
Q 2 1 TRP Z
Q 2 2 TYR Z
loop_
_atom_site.group_PDB
_atom_site.label_atom_id
_atom_site.label_comp_id
_atom_site.auth_asym_id
_atom_site.auth_seq_id
_atom_site.Cartn_x
_atom_site.Cartn_y
_atom_site.Cartn_z
ATOM CB TYR Z 2 0 0 0
)");
  EXPECT_EQ(read_structure(scheme).seqres, "WY");
}

TEST(Structure, MalformedPdbNamesTheLine) {
  TempDir dir;
  const std::string good = atom("CA", "ALA", 'A', 1, 1, 2, 3);
  const std::string header = "HEADER    TEST\n";

  const std::string short_line = put(dir, "short.pdb", header + good + good.substr(0, 40) + "\n");
  expect_error_at(error_of([&] { read_structure(short_line); }), short_line + ":3",
                  "ATOM record has 40 columns, expected at least 54");

  std::string bad_x = good;
  bad_x.replace(30, 8, "     abc");
  const std::string coordinate = put(dir, "coordinate.pdb", header + bad_x);
  expect_error_at(error_of([&] { read_structure(coordinate); }), coordinate + ":2",
                  "ATOM record: x coordinate 'abc' (columns 31-38) is not a number");

  std::string bad_z = hetatm("O", "HOH", 'A', 5, 1, 2, 3);  // checked in water too: a malformed file is one
  bad_z.replace(46, 8, "1.2.3   ");
  const std::string z = put(dir, "z.pdb", header + good + good + bad_z);
  expect_error_at(error_of([&] { read_structure(z); }), z + ":4",
                  "HETATM record: z coordinate '1.2.3' (columns 47-54) is not a number");

  std::string bad_number = good;
  bad_number.replace(22, 4, "  1x");
  const std::string number = put(dir, "number.pdb", header + good + bad_number);
  expect_error_at(error_of([&] { read_structure(number); }), number + ":3",
                  "ATOM record: residue number '1x' (columns 23-26) is not an integer");
}

TEST(Structure, MalformedMmcifNamesTheLine) {
  TempDir dir;
  const std::string loop = "data_x\nloop_\n_atom_site.group_PDB\n_atom_site.label_atom_id\n_atom_site.label_comp_id\n"
                           "_atom_site.auth_asym_id\n_atom_site.auth_seq_id\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n"
                           "_atom_site.Cartn_z\n";  // loop_ on line 2, values from line 11
  const std::string row = "ATOM CA ALA A 1 1.0 2.0 3.0\n";

  const std::string count = put(dir, "count.cif", loop + row + row + "ATOM CA ALA A 2 1.0 2.0\n");
  expect_error_at(error_of([&] { read_structure(count); }), count + ":13",
                  "loop of _atom_site (8 columns, loop_ at line 2) has 23 values, not a multiple of 8");

  const std::string quote = put(dir, "quote.cif", loop + row + "ATOM 'CA ALA A 2 1.0 2.0 3.0\n");
  expect_error_at(error_of([&] { read_structure(quote); }), quote + ":12",
                  "is not closed: expected a closing ' followed by a space or the end of the line");

  const std::string text = put(dir, "text.cif", "data_x\n_struct.title\n;never closed\nmore text\n");
  expect_error_at(error_of([&] { read_structure(text); }), text + ":3",
                  "text field (opened by ';' at the start of this line) is not closed");

  std::string no_x = loop;
  no_x.replace(no_x.find("_atom_site.Cartn_x\n"), 19, "");
  const std::string missing = put(dir, "missing.cif", no_x + "ATOM CA ALA A 1 2.0 3.0\n");
  expect_error_at(error_of([&] { read_structure(missing); }), missing + ":2",
                  "_atom_site has no Cartn_x column: expected _atom_site.Cartn_x (coordinates)");

  const std::string abc = put(dir, "abc.cif", loop + row + "ATOM CA ALA A 2 1.0\n abc 3.0\n");
  expect_error_at(error_of([&] { read_structure(abc); }), abc + ":13",
                  "_atom_site: y coordinate 'abc' (_atom_site.Cartn_y) is not a number");
}

TEST(Structure, MissingEmptyAndProteinFreeFiles) {
  TempDir dir;
  const std::string missing = dir.file("absent.pdb");
  expect_error_at(error_of([&] { read_structure(missing); }), missing, "cannot open");
  const std::string empty = put(dir, "empty.pdb", "");
  expect_error_at(error_of([&] { read_structure(empty); }), empty, "file is empty");
  const std::string water = put(dir, "water.pdb", hetatm("O", "HOH", 'A', 1, 0, 0, 0) + "END\n");
  expect_error_at(error_of([&] { read_structure(water); }), water, "no amino-acid residues");
  EXPECT_TRUE(structure_chains(water).empty());
}
