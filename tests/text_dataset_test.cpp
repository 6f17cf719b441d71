#include "adaptertune/tasks/text_dataset.h"

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/tasks/metrics.h"
#include "test_util.h"

namespace adaptertune {
namespace {

TaskDescription sentiment() {
  TaskDescription task;
  task.name = "reviews";
  task.labels = {"neg", "pos"};
  return task;
}

TaskDescription similarity() {
  TaskDescription task;
  task.name = "similarity";
  task.sentence_pair = true;
  return task;
}

TextFileOptions pairs() {
  TextFileOptions options;
  options.text_column = "first";
  options.pair_column = "second";
  options.label_column = "score";
  return options;
}

TEST(TextDataset, CsvFollowsRfc4180) {
  const TaskDescription task = sentiment();
  // Quoted commas, doubled quotes, a line break inside quotes, CR LF ends, extra columns, spaces
  // kept around unquoted fields (as Python's csv module keeps them).
  const std::string csv =
      "id,text,label\r\n"
      "7,plain text,pos\r\n"
      "8,\"with, a comma\",neg\r\n"
      "9,\"a \"\"quoted\"\" word\nand a second line\",pos\r\n"
      "10, spaced ,neg\r\n";
  const TextDataset data = parse_text_dataset(task, csv, "reviews.csv");
  ASSERT_EQ(data.examples.size(), 4u);
  EXPECT_TRUE(data.labelled);
  EXPECT_EQ(data.examples[0].text_a, "plain text");
  EXPECT_EQ(data.examples[1].text_a, "with, a comma");
  EXPECT_EQ(data.examples[2].text_a, "a \"quoted\" word\nand a second line");
  EXPECT_EQ(data.examples[3].text_a, " spaced ");
  EXPECT_EQ(data.examples[0].label, 1);
  EXPECT_EQ(data.examples[1].label, 0);
  // The line where each example starts; the multi-line one spans lines 4 and 5.
  EXPECT_EQ(data.examples[0].line, 2);
  EXPECT_EQ(data.examples[2].line, 4);
  EXPECT_EQ(data.examples[3].line, 6);
  EXPECT_EQ(data.examples[3].index, 3);
  EXPECT_FALSE(data.examples[0].text_b);
}

// Excel's "CSV UTF-8" starts with a byte-order mark: the first column was "\xEF\xBB\xBFtext", and
// "no column \"text\"" the answer. The TSV and JSON lines readers skipped it already.
TEST(TextDataset, AByteOrderMarkIsSkippedInEveryFormat) {
  const TaskDescription task = sentiment();
  for (const std::string name : {"excel.csv", "excel.tsv", "excel.jsonl"}) {
    const std::string body = name == "excel.csv"   ? "text,label\r\nfine,pos\r\n"
                             : name == "excel.tsv" ? "text\tlabel\nfine\tpos\n"
                                                   : "{\"text\": \"fine\", \"label\": \"pos\"}\n";
    const TextDataset data = parse_text_dataset(task, "\xEF\xBB\xBF" + body, name);
    ASSERT_EQ(data.examples.size(), 1u) << name;
    EXPECT_EQ(data.examples[0].text_a, "fine") << name;
    EXPECT_EQ(data.examples[0].label, 1) << name;
  }
}

// Which of two "label" columns is meant is not for the reader to guess.
TEST(TextDataset, AColumnTheTaskReadsNamedTwiceIsAnError) {
  const TaskDescription task = sentiment();
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "label,text,label\npos,a,neg\n", "twice.csv"),
                        "twice.csv: the header names column \"label\" 2 times (the file has "
                        "label, text, label)");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text\ttext\tlabel\na\tb\tpos\n", "twice.tsv"),
                        "twice.tsv: the header names column \"text\" 2 times");
  // A repeated column the task does not read is no matter.
  EXPECT_EQ(parse_text_dataset(task, "id,id,text,label\n1,2,a,pos\n", "ids.csv").examples.size(),
            1u);
}

TEST(TextDataset, TsvAndJsonLinesReadPairsAndTargets) {
  const TaskDescription task = similarity();
  const TextDataset tsv =
      parse_text_dataset(task,
                         "\xEF\xBB\xBF"
                         "first\tsecond\tscore\nA cat.\tA dog.\t0.5\n\"Q\"\tR\t-3e1\n",
                         "sim.tsv", pairs());
  ASSERT_EQ(tsv.examples.size(), 2u);
  EXPECT_EQ(tsv.examples[0].text_b, "A dog.");
  EXPECT_EQ(tsv.examples[0].score, 0.5);
  EXPECT_EQ(tsv.examples[1].text_a, "\"Q\"");  // TSV has no quoting
  EXPECT_EQ(tsv.examples[1].score, -30.0);

  const TextDataset jsonl =
      parse_text_dataset(task,
                         "{\"first\": \"A\", \"second\": \"B\", \"score\": 4, \"other\": [1]}\n\n"
                         "{\"score\": 1.25, \"second\": \"D\", \"first\": \"C\"}\n",
                         "sim.jsonl", pairs());
  ASSERT_EQ(jsonl.examples.size(), 2u);
  EXPECT_EQ(jsonl.examples[0].score, 4.0);
  EXPECT_EQ(jsonl.examples[1].text_a, "C");
  EXPECT_EQ(jsonl.examples[1].score, 1.25);
  EXPECT_EQ(jsonl.examples[1].line, 3);
}

TEST(TextDataset, JsonLinesLabelsMayBeIntegersOrBooleans) {
  TaskDescription task;
  task.name = "flags";
  task.labels = {"false", "true"};
  const TextDataset data = parse_text_dataset(
      task, "{\"text\": \"a\", \"label\": true}\n{\"text\": \"b\", \"label\": false}\n", "f.jsonl");
  EXPECT_EQ(data.examples[0].label, 1);
  EXPECT_EQ(data.examples[1].label, 0);
  TaskDescription numbered;
  numbered.name = "numbered";
  numbered.labels = {"0", "1", "2"};
  EXPECT_EQ(parse_text_dataset(numbered, "{\"text\": \"a\", \"label\": 2}\n", "n.jsonl")
                .examples[0]
                .label,
            2);
  // An integer label above INT64_MAX is itself, not wrapped to the label "-1".
  TaskDescription signed_labels;
  signed_labels.name = "signed";
  signed_labels.labels = {"-1", "1"};
  EXPECT_ERROR_CONTAINS(
      parse_text_dataset(signed_labels, "{\"text\": \"a\", \"label\": 18446744073709551615}\n",
                         "s.jsonl"),
      "18446744073709551615");
}

TEST(TextDataset, AFileWithoutTheLabelColumnIsUnlabelled) {
  const TaskDescription task = sentiment();
  const TextDataset csv = parse_text_dataset(task, "text\nno label here\n", "test.csv");
  EXPECT_FALSE(csv.labelled);
  EXPECT_FALSE(csv.examples[0].label);
  const TextDataset jsonl = parse_text_dataset(task, "{\"text\": \"x\"}\n", "test.jsonl");
  EXPECT_FALSE(jsonl.labelled);
  // An empty label column name ignores labels that are there (predict).
  TextFileOptions ignore;
  ignore.label_column.clear();
  const TextDataset ignored = parse_text_dataset(task, "text,label\na,unknown\n", "t.csv", ignore);
  EXPECT_FALSE(ignored.labelled);
  EXPECT_EQ(ignored.examples.size(), 1u);
}

TEST(TextDataset, MalformedRowsNameTheFileLineAndColumn) {
  const TaskDescription task = sentiment();
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\na,pos\nb,maybe\n", "r.csv"),
                        "r.csv:3: column \"label\": unknown label \"maybe\" (expected neg, pos)");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\na,pos\nb\n", "r.csv"),
                        "r.csv:3: expected 2 fields (text, label), found 1");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\n  ,pos\n", "r.csv"),
                        "r.csv:2: empty text in column \"text\"");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\na,\n", "r.csv"),
                        "r.csv:2: empty label in column \"label\"");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\n\"open,pos\n", "r.csv"),
                        "r.csv:2: malformed CSV");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\nx\"y,pos\n", "r.csv"),
                        "r.csv:2: malformed CSV");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "sentence,label\na,pos\n", "r.csv"),
                        "r.csv: no column \"text\" (the file has sentence, label)");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "", "r.csv"), "r.csv: file is empty");
  EXPECT_ERROR_CONTAINS(
      parse_text_dataset(task, "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": [1]}\n",
                         "r.jsonl"),
      "r.jsonl:2: key \"text\" holds array, expected a string or a number");
  EXPECT_ERROR_CONTAINS(
      parse_text_dataset(task, "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\"}\n",
                         "r.jsonl"),
      "r.jsonl:2: no \"label\"");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "{\"text\": \"a\"\n", "r.jsonl"),
                        "r.jsonl:1: invalid JSON");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "{\"sentence\": \"a\", \"y\": 1}\n", "r.jsonl"),
                        "r.jsonl: no column \"text\" (line 1 has keys sentence, y)");
  EXPECT_ERROR_CONTAINS(
      parse_text_dataset(similarity(), "first\tsecond\tscore\na\tb\tinf\n", "s.tsv", pairs()),
      "s.tsv:2: column \"score\": target \"inf\" is not a finite number");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(similarity(), "first,score\na,1\n", "s.csv"),
                        "task similarity reads text pairs, but no pair column is given");
  EXPECT_ERROR_CONTAINS(parse_text_dataset(task, "text,label\na,pos\n", "r.csv", pairs()),
                        "reads single texts, but a pair column (\"second\") is given");
}

TEST(TextDataset, SkippingMalformedRowsKeepsTheRest) {
  TextFileOptions skip;
  skip.skip_malformed = true;
  const TextDataset data =
      parse_text_dataset(sentiment(), "text,label\na,pos\nb,maybe\nc\nd,neg\n", "r.csv", skip);
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[1].text_a, "d");
  EXPECT_EQ(data.examples[1].index, 3);  // the row number, skipped rows counted
  ASSERT_EQ(data.skipped.size(), 2u);
  EXPECT_NE(data.skipped[0].find("r.csv:3: column \"label\": unknown label"), std::string::npos);
}

TEST(TextDataset, FormatComesFromTheExtensionOrTheOption) {
  EXPECT_EQ(text_file_format("a/B.CSV", TextFileFormat::kAuto), TextFileFormat::kCsv);
  EXPECT_EQ(text_file_format("x.tsv", TextFileFormat::kAuto), TextFileFormat::kTsv);
  EXPECT_EQ(text_file_format("x.json", TextFileFormat::kAuto), TextFileFormat::kJsonLines);
  EXPECT_EQ(text_file_format("x.txt", TextFileFormat::kCsv), TextFileFormat::kCsv);
  EXPECT_ERROR_CONTAINS(text_file_format("x.txt", TextFileFormat::kAuto),
                        "x.txt: cannot tell the format from the name");
}

TEST(TextDataset, LabelsOfATrainingFileAreSortedNumericallyWhenTheyAreIntegers) {
  const std::string dir = testing::fresh_dir("text_dataset_labels");
  make_directories(dir);
  write_file_atomic(dir + "/n.csv", "text,label\na,10\nb,2\nc,-1\nd,2\n");
  EXPECT_EQ(read_text_dataset_labels(dir + "/n.csv"), (std::vector<std::string>{"-1", "2", "10"}));
  write_file_atomic(
      dir + "/s.jsonl",
      "{\"text\": \"a\", \"label\": \"pos\"}\n{\"text\": \"b\", \"label\": \"neg\"}\n");
  EXPECT_EQ(read_text_dataset_labels(dir + "/s.jsonl"), (std::vector<std::string>{"neg", "pos"}));
  write_file_atomic(dir + "/none.csv", "text\na\n");
  EXPECT_ERROR_CONTAINS(read_text_dataset_labels(dir + "/none.csv"),
                        "none.csv: no label column \"label\" to take the labels from");
  // read_text_dataset() reads from disk what parse_text_dataset() reads from memory.
  TaskDescription numbers;
  numbers.name = "numbers";
  numbers.labels = read_text_dataset_labels(dir + "/n.csv");
  EXPECT_EQ(read_text_dataset(numbers, dir + "/n.csv").examples[0].label, 2);
}

TEST(TaskDescription, ValidateNamesWhatIsWrong) {
  TaskDescription task = sentiment();
  EXPECT_NO_THROW(task.validate());
  EXPECT_EQ(task.scored_metrics(), (std::vector<std::string>{"accuracy"}));
  EXPECT_EQ(task.selection_metric(), "combined");
  EXPECT_EQ(similarity().scored_metrics(), (std::vector<std::string>{"pearson", "spearmanr"}));

  task.metrics = {"accuracy", "bleu"};
  EXPECT_ERROR_CONTAINS(task.validate(), "task reviews: unknown metric \"bleu\"");
  task.metrics = {"pearson"};
  EXPECT_ERROR_CONTAINS(task.validate(), "metric pearson does not fit a classification task");
  task.metrics = {"f1", "f1"};
  EXPECT_ERROR_CONTAINS(task.validate(), "metric f1 listed twice");
  task.metrics = {"mcc"};
  task.main_metric = "f1";
  EXPECT_ERROR_CONTAINS(task.validate(),
                        "main metric \"f1\" is not reported (expected one of combined, "
                        "accuracy, mcc)");
  task.main_metric = "accuracy";  // reported for every classification task
  EXPECT_NO_THROW(task.validate());
  // Accuracy named once in the list (it read "expected combined, accuracy or one of accuracy").
  task.metrics = {"accuracy"};
  task.main_metric = "mcc";
  EXPECT_ERROR_CONTAINS(task.validate(),
                        "main metric \"mcc\" is not reported (expected one of combined, accuracy)");

  TaskDescription three = sentiment();
  three.labels = {"a", "b", "c"};
  three.metrics = {"f1"};
  EXPECT_ERROR_CONTAINS(three.validate(), "metric f1 scores the second of two labels");
  three.labels = {"a", "b", "a"};
  three.metrics.clear();
  EXPECT_ERROR_CONTAINS(three.validate(), "label \"a\" appears twice");
  three.labels = {"only"};
  EXPECT_ERROR_CONTAINS(three.validate(), "one label (\"only\")");
  TaskDescription regression = similarity();
  regression.metrics = {"accuracy"};
  EXPECT_ERROR_CONTAINS(regression.validate(), "does not fit a regression task");
  regression.metrics.clear();
  regression.name.clear();
  EXPECT_ERROR_CONTAINS(regression.validate(), "task: the name is empty");
  // The name and the labels are written into JSON, which holds valid UTF-8 only.
  regression.name = "sim\xff";
  EXPECT_ERROR_CONTAINS(regression.validate(), "task: the name: invalid UTF-8 at byte 3");
  three.labels = {"a", "b\xc3"};
  EXPECT_ERROR_CONTAINS(three.validate(), "task reviews: label 1: invalid UTF-8 at byte 1");
  three.labels = {"a", "caf\xc3\xa9"};
  EXPECT_NO_THROW(three.validate());
}

TEST(TaskDescription, MetricsAreTheChosenOnesAndCombinedIsTheirMean) {
  TaskDescription task;
  task.name = "topics";
  task.labels = {"a", "b", "c"};
  task.metrics = {"macro_f1", "mcc"};
  // By hand: per-class F1 0.5, 0.8, 0.8 (macro 0.7); Gorodkin's MCC with 5 of 7 correct, gold
  // counts 2, 2, 3 and predicted counts 2, 3, 2: (5·7 − 16) / √((49 − 17)(49 − 17)) = 19/32.
  const std::vector<double> gold{0, 0, 1, 1, 2, 2, 2}, predicted{0, 1, 1, 1, 2, 0, 2};
  const auto m = task_metrics(task, predicted, gold);
  EXPECT_NEAR(m.at("accuracy"), 5.0 / 7.0, 1e-12);
  EXPECT_NEAR(m.at("macro_f1"), 0.7, 1e-12);
  EXPECT_NEAR(m.at("mcc"), 19.0 / 32.0, 1e-12);
  EXPECT_NEAR(m.at("combined"), (m.at("macro_f1") + m.at("mcc")) / 2, 1e-15);
  EXPECT_EQ(m.count("f1"), 0u);
  EXPECT_ERROR_CONTAINS(task_metrics(task, {3}, {0}), "topics metrics: 3 is not a class id");
}

}  // namespace
}  // namespace adaptertune
