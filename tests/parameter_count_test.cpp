// Pins adapter and model sizes to the figures published for BERT (Devlin et al. 2019) and
// bottleneck adapters (Houlsby et al. 2019; AdapterHub), counting the tensors of real modules.

#include "adaptertune/bert_model.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// Elements of the parameters whose name contains `part` ("" = all).
int64_t count(const torch::nn::Module& module, const std::string& part = "") {
  int64_t n = 0;
  for (const auto& item : module.named_parameters()) {
    if (item.key().find(part) != std::string::npos) n += item.value().numel();
  }
  return n;
}

class BertBaseCounts : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new BertModel(BertConfig::bert_base()); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static BertModel* model_;
};
BertModel* BertBaseCounts::model_ = nullptr;

TEST_F(BertBaseCounts, BaseModelWithoutHeadHas109482240Parameters) {
  EXPECT_EQ(count(**model_), 109482240);
}

TEST_F(BertBaseCounts, LayerNormsAndPooler) {
  EXPECT_EQ(count(**model_, "LayerNorm"), 38400);
  EXPECT_EQ(count(**model_, "pooler."), 590592);
}

TEST_F(BertBaseCounts, PfeifferAndHoulsbyAtReductionFactor16) {
  BertModel& model = *model_;
  model->add_adapter("pfeiffer", AdapterConfig::pfeiffer());
  model->add_adapter("houlsby", AdapterConfig::houlsby());
  const int64_t pfeiffer = count(*model, ".adapters.pfeiffer.");
  EXPECT_EQ(pfeiffer, 894528);
  EXPECT_NEAR(100.0 * pfeiffer / 109482240.0, 0.817, 0.0005);
  EXPECT_EQ(count(*model, ".adapters.houlsby."), 1789056);
  // One adapter at d = 768, m = 48.
  EXPECT_EQ(count(*model, "encoder.layer.0.output.adapters.houlsby."), 74544);
  ParameterReport report = parameter_report(*model);
  EXPECT_EQ(report.base(), 109482240);
  EXPECT_EQ(report.count(ParameterGroup::kAdapter), 894528 + 1789056);
  model->remove_adapter("pfeiffer");
  model->remove_adapter("houlsby");
  EXPECT_EQ(count(*model), 109482240);
}

TEST(BertLargeCounts, HoulsbyAdaptersAtSizes8And64And256) {
  BertModel model(BertConfig::bert_large());
  for (int64_t m : {8, 64, 256}) {
    AdapterConfig config = AdapterConfig::houlsby();
    config.adapter_size = m;
    model->add_adapter("m" + std::to_string(m), config);
  }
  EXPECT_EQ(count(*model, ".adapters.m8."), 835968);
  EXPECT_EQ(count(*model, ".adapters.m64."), 6343680);
  EXPECT_EQ(count(*model, ".adapters.m256."), 25227264);
}

}  // namespace
}  // namespace adaptertune
