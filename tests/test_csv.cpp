// The project's CSV files (io/csv.h): written through row by row, quoted where needed, read back by name.
#include <gtest/gtest.h>

#include <cmath>

#include "io/csv.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

TEST(Csv, CellsRoundTripWithCommasQuotesAndLineBreaks) {
  TempDir d;
  const std::string path = d.file("t.csv");
  {
    CsvWriter out(path, {"name", "value", "note"});
    out.write(CsvRow() << "plain" << 1.5 << "");
    out.write(CsvRow() << "a, b" << std::nan("") << "say \"hi\"\nand go");
    EXPECT_THROW(out.write(CsvRow() << "too few"), Error);
  }
  EXPECT_EQ(read_text(path), "name,value,note\nplain,1.5,\n\"a, b\",nan,\"say \"\"hi\"\"\nand go\"\n");
  const CsvTable t = CsvTable::read(path);
  ASSERT_EQ(t.rows(), 2u);
  EXPECT_EQ(t.text(1, "name"), "a, b");
  EXPECT_EQ(t.text(1, "note"), "say \"hi\"\nand go");
  EXPECT_EQ(t.number(0, "value"), 1.5);
  EXPECT_TRUE(std::isnan(t.number(1, "value")));
  EXPECT_TRUE(std::isnan(t.number(0, "note"))) << "an empty cell is no number";
  // Appending to a file with rows adds rows only; a new file gets its header.
  {
    CsvWriter more(path, {"name", "value", "note"}, /*append=*/true);
    more.write(CsvRow() << "third" << 3 << "x");
  }
  EXPECT_EQ(CsvTable::read(path).rows(), 3u);
}

TEST(Csv, ReadErrorsNameTheFileAndLine) {
  TempDir d;
  write_file(d.file("a.csv"), "step,loss\n1,2.5\n2,x\n3\n");
  try {
    CsvTable::read(d.file("a.csv"));
    ADD_FAILURE() << "a row of 1 cell was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a.csv:4: 1 cells, the header names 2 columns"), std::string::npos) << e.what();
  }
  write_file(d.file("b.csv"), "step,loss\n1,2.5\n2,x\n");
  try {
    CsvTable::read(d.file("b.csv")).number(1, "loss");
    ADD_FAILURE() << "x read as a number";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.csv:3: loss 'x' is not a number"), std::string::npos) << e.what();
  }
}

TEST(Csv, ByColumnNameWhateverTheOrder) {
  TempDir d;
  write_file(d.file("o.csv"), "loss,step\n2.5,1\n");
  const CsvTable t = CsvTable::read(d.file("o.csv"));
  EXPECT_EQ(t.integer(0, "step"), 1);
  EXPECT_EQ(t.number(0, "loss"), 2.5);
  try {
    t.number(0, "perplexity");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'perplexity' (columns: loss, step)"), std::string::npos) << e.what();
  }
  write_file(d.file("c.csv"), "step,loss\n1,\"open\n");
  EXPECT_THROW(CsvTable::read(d.file("c.csv")), Error);
  write_file(d.file("e.csv"), "step,loss\nx,1\n");
  EXPECT_THROW(CsvTable::read(d.file("e.csv")).integer(0, "step"), Error);
}
