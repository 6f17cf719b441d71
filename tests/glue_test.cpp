#include "adaptertune/tasks/glue.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/text/wordpiece.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kGlue = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data/glue";

std::string temp_file(const std::string& name, const std::string& contents) {
  const std::string dir = ::testing::TempDir() + "adaptertune_glue_" + std::to_string(::getpid());
  make_directories(dir);
  write_file_atomic(dir + "/" + name, contents);
  return dir + "/" + name;
}

std::pair<int64_t, int64_t> label_counts(const TextDataset& d) {
  int64_t zeros = 0, ones = 0;
  for (const auto& e : d.examples) (e.label == 0 ? zeros : ones)++;
  return {zeros, ones};
}

TEST(Glue, ShippedTasksHaveTheirPublishedRowCounts) {
  struct Expected {
    std::string task;
    size_t train, dev, test;
  };
  for (const auto& x : std::vector<Expected>{{"SST-2", 67349, 872, 1821},
                                             {"MRPC", 3668, 408, 1725},
                                             {"RTE", 2490, 277, 3000},
                                             {"CoLA", 8551, 1043, 1063},
                                             {"STS-B", 5749, 1500, 1379}}) {
    const GlueTaskInfo& task = glue_task(x.task);
    auto train = read_glue(task, kGlue, "train");
    auto dev = read_glue(task, kGlue, "dev");
    auto test = read_glue(task, kGlue, "test");
    EXPECT_EQ(train.examples.size(), x.train) << x.task;
    EXPECT_EQ(dev.examples.size(), x.dev) << x.task;
    EXPECT_EQ(test.examples.size(), x.test) << x.task;
    EXPECT_TRUE(train.labelled && dev.labelled && !test.labelled) << x.task;
    EXPECT_TRUE(train.skipped.empty());
  }
}

TEST(Glue, LabelsAndFieldsAreReadAsPublished) {
  // Label balances from the data's README.
  EXPECT_EQ(label_counts(read_glue(glue_task("sst2"), kGlue, "train")),
            (std::pair<int64_t, int64_t>{29780, 37569}));
  EXPECT_EQ(label_counts(read_glue(glue_task("mrpc"), kGlue, "dev")),
            (std::pair<int64_t, int64_t>{129, 279}));
  EXPECT_EQ(label_counts(read_glue(glue_task("cola"), kGlue, "dev")),
            (std::pair<int64_t, int64_t>{322, 721}));
  // RTE: entailment is class 0.
  EXPECT_EQ(label_counts(read_glue(glue_task("rte"), kGlue, "train")),
            (std::pair<int64_t, int64_t>{1249, 1241}));
  auto mrpc = read_glue(glue_task("MRPC"), kGlue, "train");  // starts with a byte-order mark
  EXPECT_TRUE(mrpc.examples[0].text_b.has_value());
  auto stsb = read_glue(glue_task("STS-B"), kGlue, "dev");
  for (const auto& e : stsb.examples) {
    ASSERT_TRUE(e.score.has_value());
    EXPECT_GE(*e.score, 0.0);
    EXPECT_LE(*e.score, 5.0);
  }
  auto sst_test = read_glue(glue_task("SST-2"), kGlue, "test");
  EXPECT_EQ(sst_test.examples.front().index, 0);
  EXPECT_EQ(sst_test.examples.back().index, 1820);
  // Quotes are literal characters, never CSV quoting.
  bool saw_quote = false;
  for (const auto& e : mrpc.examples) saw_quote |= e.text_a.find('"') != std::string::npos;
  EXPECT_TRUE(saw_quote);
}

TEST(Glue, TasksNotShippedReadFromHandMadeFiles) {
  auto qqp = read_glue_file(
      glue_task("QQP"),
      temp_file("qqp.tsv",
                "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                "201\t1\t2\tHow do I learn C++?\tWhat is the best way to learn C++?\t1\n"
                "202\t3\t4\tIs \"this\" quoted?\tWhy is the sky blue?\t0\n"));
  ASSERT_EQ(qqp.examples.size(), 2u);
  EXPECT_EQ(qqp.examples[1].index, 202);
  EXPECT_EQ(qqp.examples[1].text_a, "Is \"this\" quoted?");
  EXPECT_EQ(qqp.examples[0].label, 1);

  const std::string mnli_header =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
  auto mnli = read_glue_file(
      glue_task("MNLI"),
      temp_file("mnli.tsv", mnli_header + "0\t1\t1e\tfiction\t(a)\t(b)\t(A)\t(B)\tA "
                                          "man sleeps.\tA person rests.\tentailment\t"
                                          "entailment\n"
                                          "1\t2\t2n\tgov\t(a)\t(b)\t(A)\t(B)\tIt "
                                          "rains.\tIt is sunny.\tcontradiction\t"
                                          "contradiction\n"));
  EXPECT_EQ(mnli.examples[0].label, 1);  // GLUE order: contradiction, entailment, neutral
  EXPECT_EQ(mnli.examples[1].label, 0);
  auto qnli = read_glue_file(glue_task("QNLI"), temp_file("qnli.tsv",
                                                          "index\tquestion\tsentence\tlabel\n"
                                                          "0\tWho?\tNobody.\tnot_entailment\n"));
  EXPECT_EQ(qnli.examples[0].label, 1);
  auto wnli = read_glue_file(glue_task("WNLI"), temp_file("wnli.tsv",
                                                          "index\tsentence1\tsentence2\tlabel\n"
                                                          "0\tThe cup broke.\tIt broke.\t1\n"));
  EXPECT_EQ(wnli.examples[0].label, 1);
  auto ax = read_glue_file(glue_task("AX"), temp_file("AX.tsv",
                                                      "index\tsentence1\tsentence2\n"
                                                      "0\tA dog.\tAn animal.\n"));
  EXPECT_FALSE(ax.labelled);
  EXPECT_FALSE(ax.examples[0].label.has_value());
}

TEST(Glue, MalformedRowsNameFileAndLine) {
  const auto& rte = glue_task("RTE");
  const std::string header = "index\tsentence1\tsentence2\tlabel\n";
  auto columns = temp_file("cols.tsv", header + "0\ta\tb\tentailment\n1\tonly two\n");
  EXPECT_ERROR_CONTAINS(read_glue_file(rte, columns),
                        columns + ":3: expected 4 tab-separated fields, found 2");
  auto label = temp_file("label.tsv", header + "0\ta\tb\tmaybe\n");
  EXPECT_ERROR_CONTAINS(
      read_glue_file(rte, label),
      label + ":2: unknown label \"maybe\" (expected entailment, not_entailment)");
  auto empty = temp_file("empty.tsv", header + "0\t \tb\tentailment\n");
  EXPECT_ERROR_CONTAINS(read_glue_file(rte, empty), empty + ":2: empty text in column 2");
  auto score = temp_file("score.tsv",
                         "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
                         "sentence2\tscore\n0\tg\tf\t2012\t1\ts\ts\ta\tb\t7.5\n");
  EXPECT_ERROR_CONTAINS(read_glue_file(glue_task("STS-B"), score),
                        score + ":2: score \"7.5\" is not a number in [0, 5]");
  GlueReadOptions skip;
  skip.skip_malformed = true;
  auto skipped = read_glue_file(rte,
                                temp_file("mixed.tsv", header + "0\ta\tb\tentailment\n"
                                                                "1\tbroken\n"
                                                                "2\tc\td\tnope\n"
                                                                "3\te\tf\tnot_entailment\n"),
                                skip);
  EXPECT_EQ(skipped.examples.size(), 2u);
  ASSERT_EQ(skipped.skipped.size(), 2u);
  EXPECT_NE(skipped.skipped[0].find("mixed.tsv:3"), std::string::npos);
  EXPECT_ERROR_CONTAINS(glue_task("SQuAD"), "unknown GLUE task \"SQuAD\"");
  EXPECT_ERROR_CONTAINS(read_glue(rte, kGlue, "validation"), "RTE/validation.tsv: no such file");
}

TEST(Glue, PlainLinesAreAsStrictAsTheTsvReader) {
  const auto& sst2 = glue_task("SST-2");
  const auto& rte = glue_task("RTE");
  const TextDataset ok = parse_text_lines(rte, "a\tb\r\nc\td\n", "stdin");
  ASSERT_EQ(ok.examples.size(), 2u);
  EXPECT_EQ(ok.examples[1].text_a, "c");
  EXPECT_EQ(ok.examples[1].text_b.value(), "d");
  EXPECT_EQ(ok.examples[1].line, 2);
  EXPECT_ERROR_CONTAINS(parse_text_lines(sst2, "good\n\nbad\n", "stdin"), "stdin:2: empty line");
  EXPECT_ERROR_CONTAINS(parse_text_lines(sst2, "good\na\tb\n", "stdin"),
                        "stdin:2: 2 tab-separated fields, but SST-2 takes one text (no TAB)");
  EXPECT_ERROR_CONTAINS(parse_text_lines(rte, "a\tb\tc\n", "stdin"),
                        "stdin:1: 3 tab-separated fields, but RTE takes text<TAB>text_pair");
  EXPECT_ERROR_CONTAINS(parse_text_lines(rte, "a\t \n", "stdin"), "stdin:1: empty text in field 2");
  EXPECT_TRUE(parse_text_lines(sst2, "", "stdin").examples.empty());
}

TEST(Glue, TokenizerErrorsNameTheFileAndLine) {
  const std::string path =
      temp_file("utf8.tsv", "sentence\tlabel\nfine\t1\nbad \xff\xfe bytes\t0\n");
  const TextDataset data = read_glue_file(glue_task("SST-2"), path);
  WordPieceTokenizer tokenizer(std::string(ADAPTERTUNE_TEST_DATA_DIR) +
                               "/../../data/vocab/bert-base-uncased-vocab.txt");
  EXPECT_ERROR_CONTAINS(encode_examples(data, tokenizer, 16), path + ":3: ");
  EXPECT_ERROR_CONTAINS(encode_examples(data, tokenizer, 16), "invalid UTF-8 at byte 4");
}

TEST(Glue, TsvParsesFromMemoryLikeFromAFile) {
  const auto& rte = glue_task("RTE");
  const std::string text =
      "\xEF\xBB\xBFindex\tsentence1\tsentence2\tlabel\r\n0\ta\tb\tentailment\n";
  const TextDataset from_memory = parse_glue_tsv(rte, text, "mem.tsv");
  const TextDataset from_file = read_glue_file(rte, temp_file("mem.tsv", text));
  ASSERT_EQ(from_memory.examples.size(), 1u);
  EXPECT_EQ(from_memory.examples[0].text_b, from_file.examples[0].text_b);
  EXPECT_EQ(from_memory.examples[0].label, from_file.examples[0].label);
}

TEST(Glue, SubmissionFilesUseLeaderboardNamesAndLabels) {
  const std::string dir = ::testing::TempDir() + "adaptertune_submit_" + std::to_string(::getpid());
  auto rte = write_glue_submission(glue_task("RTE"), "test", dir, {0, 1, 2}, {0, 1, 1});
  EXPECT_EQ(rte, dir + "/RTE.tsv");
  EXPECT_EQ(read_file(rte),
            "index\tprediction\n0\tentailment\n1\tnot_entailment\n2\tnot_entailment\n");
  auto sts = write_glue_submission(glue_task("STS-B"), "test", dir, {4, 5}, {5.7, 2.12345});
  EXPECT_EQ(read_file(sts), "index\tprediction\n4\t5.000\n5\t2.123\n");
  EXPECT_EQ(glue_submission_file_name(glue_task("MNLI"), "test_mismatched"), "MNLI-mm.tsv");
  EXPECT_EQ(glue_submission_file_name(glue_task("MNLI"), "test_matched"), "MNLI-m.tsv");
  EXPECT_EQ(glue_submission_file_name(glue_task("sst2")), "SST-2.tsv");
  EXPECT_ERROR_CONTAINS(write_glue_submission(glue_task("RTE"), "test", dir, {0}, {2}),
                        "prediction 2 is not a class id of RTE");
  // Beyond int64_t, and not a number: refused before any conversion (which would be undefined).
  EXPECT_ERROR_CONTAINS(write_glue_submission(glue_task("RTE"), "test", dir, {0}, {1e300}),
                        "prediction 1e+300 is not a class id of RTE");
  EXPECT_ERROR_CONTAINS(write_glue_submission(glue_task("RTE"), "test", dir, {0}, {std::nan("")}),
                        "prediction nan is not a class id of RTE");
  EXPECT_ERROR_CONTAINS(write_glue_submission(glue_task("RTE"), "test", dir, {0}, {0.5}),
                        "prediction 0.5 is not a class id of RTE");
}

}  // namespace
}  // namespace adaptertune
