#include "adaptertune/tasks/metrics.h"
#include "adaptertune/tasks/glue.h"

#include <cmath>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// Reference values computed with scikit-learn 1.2 and SciPy 1.10 (Debian 12):
//   accuracy_score, f1_score, matthews_corrcoef(g, p); pearsonr, spearmanr(x, y).
const std::vector<int64_t> kPred = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0};
const std::vector<int64_t> kGold = {1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 1};

TEST(Metrics, AgreeWithScikitLearnAndSciPy) {
  EXPECT_NEAR(accuracy(kPred, kGold), 0.6666666666666666, 1e-12);
  EXPECT_NEAR(f1_score(kPred, kGold), 0.7142857142857143, 1e-12);
  EXPECT_NEAR(matthews_corrcoef(kPred, kGold), 0.3142857142857143, 1e-12);
  // Three classes (the AX diagnostic's MCC is multi-class).
  EXPECT_NEAR(matthews_corrcoef({0, 1, 2, 2, 1, 0, 1, 2, 0, 0}, {0, 1, 2, 1, 1, 0, 2, 2, 0, 1}),
              0.5606060606060606, 1e-12);
  const std::vector<double> x = {1.0, 2.5, 2.5, 4.0, 3.0, 0.5, 5.0, 2.5};
  const std::vector<double> y = {0.8, 2.0, 3.1, 3.9, 3.0, 1.0, 4.2, 2.2};
  EXPECT_NEAR(pearson(x, y), 0.9507008153781746, 1e-12);
  EXPECT_NEAR(spearman(x, y), 0.9027075674773933, 1e-12);  // three-way tie at 2.5
}

TEST(Metrics, HandCheckedEdgeCases) {
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 1, 1}, {1, 1, 1}), 0.0);  // undefined -> 0
  EXPECT_DOUBLE_EQ(matthews_corrcoef({0, 1, 0, 1}, {0, 1, 0, 1}), 1.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 0, 1, 0}, {0, 1, 0, 1}), -1.0);
  EXPECT_DOUBLE_EQ(f1_score({0, 0}, {1, 1}), 0.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3}, {10, 20, 30}), 1.0);
  EXPECT_DOUBLE_EQ(pearson({1, 1, 1}, {1, 2, 3}), 0.0);
  EXPECT_ERROR_CONTAINS(accuracy({1}, {1, 0}), "accuracy: need two non-empty sequences");
  EXPECT_ERROR_CONTAINS(accuracy({}, {}), "accuracy: need two non-empty");
}

TEST(Metrics, GlueCombinedScores) {
  std::vector<double> p(kPred.begin(), kPred.end()), g(kGold.begin(), kGold.end());
  auto mrpc = task_metrics(glue_task("MRPC"), p, g);
  EXPECT_NEAR(mrpc["combined"], (0.7142857142857143 + 0.6666666666666666) / 2, 1e-12);
  EXPECT_NEAR(task_metrics(glue_task("CoLA"), p, g)["combined"], 0.3142857142857143, 1e-12);
  EXPECT_NEAR(task_metrics(glue_task("SST-2"), p, g)["combined"], 0.6666666666666666, 1e-12);
  auto sts = task_metrics(glue_task("STS-B"), {1.0, 2.5, 2.5, 4.0, 3.0, 0.5, 5.0, 2.5},
                          {0.8, 2.0, 3.1, 3.9, 3.0, 1.0, 4.2, 2.2});
  EXPECT_NEAR(sts["combined"], (0.9507008153781746 + 0.9027075674773933) / 2, 1e-12);
  EXPECT_ERROR_CONTAINS(task_metrics(glue_task("RTE"), {0.5}, {1}),
                        "RTE metrics: 0.5 is not a class id");
  // Values no integer conversion may take are refused before one is tried.
  EXPECT_ERROR_CONTAINS(task_metrics(glue_task("RTE"), {0}, {std::nan("")}),
                        "RTE metrics: nan is not a class id");
  EXPECT_ERROR_CONTAINS(task_metrics(glue_task("RTE"), {1e300}, {0}),
                        "RTE metrics: 1e+300 is not a class id");
  EXPECT_ERROR_CONTAINS(task_metrics(glue_task("RTE"), {-1}, {0}),
                        "RTE metrics: -1 is not a class id");
  EXPECT_ERROR_CONTAINS(task_metrics(glue_task("RTE"), {2}, {0}),
                        "RTE metrics: 2 is not a class id");
}

}  // namespace
}  // namespace adaptertune
