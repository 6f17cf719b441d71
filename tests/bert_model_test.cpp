#include "adaptertune/bert_model.h"
#include "adaptertune/precision.h"

#include <map>
#include <set>

#include <c10/core/InferenceMode.h>

#include "adaptertune/bert_for_masked_lm.h"
#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/inference/prepare_for_inference.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::max_abs_diff;
using testing::tiny_config;

class BertModelTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(BertModelTest);

torch::Tensor ids(std::vector<std::vector<int64_t>> rows, torch::Device device) {
  const int64_t seq = static_cast<int64_t>(rows[0].size());
  torch::Tensor out = torch::empty({static_cast<int64_t>(rows.size()), seq}, torch::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    out[static_cast<int64_t>(i)] = torch::tensor(rows[i], torch::kLong);
  }
  return out.to(device);
}

// A classifier of `config` with a Houlsby adapter "task" whose tensors are drawn away from their
// near-identity initialisation (from the current seed), on `device`.
BertForSequenceClassification classifier_with_adapter(const BertConfig& config,
                                                      torch::Device device) {
  BertForSequenceClassification model(config, HeadConfig{});
  model->bert->add_adapter("task", AdapterConfig::houlsby());
  testing::randomize_task_tensors(*model);
  model->to(device);
  return model;
}

// One classification step under autocast at `precision`: the loss (as "loss") and the gradient
// of every trainable tensor, by name. A trainable tensor that the pass does not use has no
// gradient: kept undefined, so comparisons see it as absent.
std::map<std::string, torch::Tensor> loss_and_gradients(BertForSequenceClassification& model,
                                                        const torch::Tensor& input,
                                                        const torch::Tensor& mask,
                                                        const torch::Tensor& labels,
                                                        Precision precision) {
  model->zero_grad();
  torch::Tensor loss;
  {
    AutocastGuard autocast(input.device(), precision);
    loss = model->loss(model(input, mask), labels);
  }
  loss.backward();
  std::map<std::string, torch::Tensor> out = {{"loss", loss.detach().clone()}};
  for (const auto& item : model->named_parameters()) {
    const torch::Tensor& grad = item.value().grad();
    if (item.value().requires_grad()) out[item.key()] = grad.defined() ? grad.clone() : grad;
  }
  return out;
}

// An independent forward pass written from the BERT paper's equations with plain tensor ops
// and the model's own weights, looked up by their Hugging Face names.
torch::Tensor reference_forward(BertModel& model, const torch::Tensor& input_ids,
                                const torch::Tensor& mask, const torch::Tensor& types) {
  std::map<std::string, torch::Tensor> w;
  for (const auto& item : model->named_parameters()) w[item.key()] = item.value();
  const BertConfig& c = model->config();
  auto layer_norm = [&](const torch::Tensor& x, const std::string& prefix) {
    auto mean = x.mean(-1, true);
    auto var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / torch::sqrt(var + c.layer_norm_eps) * w[prefix + ".weight"] +
           w[prefix + ".bias"];
  };
  auto linear = [&](const torch::Tensor& x, const std::string& prefix) {
    return torch::matmul(x, w[prefix + ".weight"].t()) + w[prefix + ".bias"];
  };
  const int64_t batch = input_ids.size(0), seq = input_ids.size(1);
  auto positions = torch::arange(seq, input_ids.options());
  torch::Tensor h = w["embeddings.word_embeddings.weight"]
                        .index_select(0, input_ids.flatten())
                        .view({batch, seq, -1}) +
                    w["embeddings.position_embeddings.weight"].index_select(0, positions) +
                    w["embeddings.token_type_embeddings.weight"]
                        .index_select(0, types.flatten())
                        .view({batch, seq, -1});
  h = layer_norm(h, "embeddings.LayerNorm");
  const int64_t heads = c.num_attention_heads, d = c.head_size();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l);
    auto split = [&](const torch::Tensor& x) {
      return x.view({batch, seq, heads, d}).permute({0, 2, 1, 3});
    };
    auto q = split(linear(h, p + ".attention.self.query"));
    auto k = split(linear(h, p + ".attention.self.key"));
    auto v = split(linear(h, p + ".attention.self.value"));
    auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
    scores = scores.masked_fill(mask.view({batch, 1, 1, seq}) == 0, -1e30);
    auto context = torch::matmul(torch::softmax(scores, -1), v)
                       .permute({0, 2, 1, 3})
                       .reshape({batch, seq, -1});
    auto attended = layer_norm(linear(context, p + ".attention.output.dense") + h,
                               p + ".attention.output.LayerNorm");
    auto inner = linear(attended, p + ".intermediate.dense");
    inner = 0.5 * inner * (1 + torch::erf(inner / std::sqrt(2.0)));  // exact GELU
    h = layer_norm(linear(inner, p + ".output.dense") + attended, p + ".output.LayerNorm");
  }
  return h;
}

TEST_P(BertModelTest, OutputShapes) {
  BertModel model(tiny_config());
  model->to(device());
  auto input = ids({{1, 5, 7, 9, 2, 0, 0}, {1, 8, 3, 4, 6, 10, 2}}, device());
  BertModelOutput out = model(input);
  EXPECT_EQ(out.last_hidden_state.sizes(), (std::vector<int64_t>{2, 7, 32}));
  EXPECT_EQ(out.pooler_output.sizes(), (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(out.last_hidden_state.device().type(), device().type());
  BertModel no_pooler(tiny_config(), /*add_pooling_layer=*/false);
  EXPECT_FALSE(no_pooler->forward(input.cpu()).pooler_output.defined());
}

TEST_P(BertModelTest, MatchesIndependentReferenceImplementation) {
  BertModel model(tiny_config());
  model->to(device());
  model->eval();
  auto input = ids({{1, 5, 7, 9, 2, 0, 0}, {1, 8, 3, 4, 6, 10, 2}}, device());
  auto mask = ids({{1, 1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1, 1}}, device());
  auto types = ids({{0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1, 1}}, device());
  torch::NoGradGuard no_grad;
  auto ours = model(input, mask, types).last_hidden_state;
  auto reference = reference_forward(model, input, mask, types);
  EXPECT_LT(max_abs_diff(ours, reference), 1e-4);
}

TEST_P(BertModelTest, PaddingDoesNotChangeUnpaddedOutputs) {
  BertModel model(tiny_config());
  model->to(device());
  model->eval();
  torch::NoGradGuard no_grad;
  auto alone = model(ids({{1, 5, 7, 9, 2}}, device()));
  // The same sentence padded to 9 with arbitrary ids under the padding mask.
  auto padded = model(ids({{1, 5, 7, 9, 2, 33, 44, 55, 66}}, device()),
                      ids({{1, 1, 1, 1, 1, 0, 0, 0, 0}}, device()));
  using torch::indexing::Slice;
  EXPECT_LT(
      max_abs_diff(alone.last_hidden_state, padded.last_hidden_state.index({Slice(), Slice(0, 5)})),
      1e-5);
  EXPECT_LT(max_abs_diff(alone.pooler_output, padded.pooler_output), 1e-5);
}

// LastLayerOutput::kFirstPosition: the last layer computes the first position alone, from the
// keys and values of every position; what it gives there (and the pooler from it) is what the
// whole pass gives there, with adapters, padding, in float32 and bfloat16, and a sequence
// classifier in evaluation takes that path for the same logits.
TEST_P(BertModelTest, FirstPositionOnlyGivesTheWholePassesFirstPosition) {
  torch::manual_seed(11);
  BertForSequenceClassification classifier(tiny_config(), HeadConfig::classification({"a", "b"}));
  BertModel& model = classifier->bert;
  AdapterConfig adapter = AdapterConfig::houlsby();
  adapter.init = AdapterInit::kBert;  // large enough to matter
  model->add_adapter("x", adapter);
  classifier->to(device());
  classifier->eval();
  auto input = ids({{1, 5, 7, 9, 2, 0, 0}, {1, 8, 3, 4, 6, 10, 2}}, device());
  auto mask = ids({{1, 1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1, 1}}, device());
  auto types = ids({{0, 0, 0, 1, 1, 0, 0}, {0, 0, 0, 0, 1, 1, 1}}, device());
  for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    SCOPED_TRACE(precision_name(precision));
    c10::InferenceMode inference;
    AutocastGuard autocast(device(), precision);
    const double tolerance = precision == Precision::kFloat32 ? 1e-5 : 0.05;
    const BertModelOutput whole = model(input, mask, types);
    const BertModelOutput first =
        model->forward(input, mask, types, LastLayerOutput::kFirstPosition);
    ASSERT_EQ(first.last_hidden_state.sizes(), (std::vector<int64_t>{2, 1, 32}));
    EXPECT_LT(max_abs_diff(first.last_hidden_state.to(torch::kFloat),
                           whole.last_hidden_state.narrow(1, 0, 1).to(torch::kFloat)),
              tolerance);
    EXPECT_LT(
        max_abs_diff(first.pooler_output.to(torch::kFloat), whole.pooler_output.to(torch::kFloat)),
        tolerance);
    // The classifier's logits in evaluation: the head on the whole pass's pooled output.
    const torch::Tensor logits = classifier(input, mask, types);
    const torch::Tensor expected = classifier->classifier(whole.pooler_output);
    EXPECT_LT(max_abs_diff(logits.to(torch::kFloat), expected.to(torch::kFloat)), tolerance);
    // From cached lower layers (AdapterDrop), and with no layer left to run: cut to the first.
    const torch::Tensor lower = model->lower_hidden_states(input, mask, types, 1);
    EXPECT_LT(max_abs_diff(model->forward_from(lower, mask, 1, LastLayerOutput::kFirstPosition)
                               .pooler_output.to(torch::kFloat),
                           whole.pooler_output.to(torch::kFloat)),
              tolerance);
    const torch::Tensor top = model->lower_hidden_states(input, mask, types, 2);
    EXPECT_EQ(model->forward_from(top, mask, 2, LastLayerOutput::kFirstPosition)
                  .last_hidden_state.sizes(),
              (std::vector<int64_t>{2, 1, 32}));
  }
}

// The same in training (set_training_last_layer()): only the first position of the last layer
// reaches the loss, so the loss and every trainable tensor's gradient are those of the whole
// pass, for adapters (their frozen projections packed, as a TrainingEngine runs them) and full
// fine-tuning, with padding, in float32 and bfloat16.
TEST_P(BertModelTest, FirstPositionOnlyInTrainingGivesTheSameLossAndGradients) {
  torch::manual_seed(12);
  BertForSequenceClassification model =
      classifier_with_adapter(testing::tiny_config_without_dropout(), device());
  model->train();
  EXPECT_EQ(model->training_last_layer(), LastLayerOutput::kAllPositions) << "the default";
  const torch::Tensor input = testing::random_ids(3, 9).to(device());
  torch::Tensor mask = torch::ones({3, 9}, torch::kLong);
  mask[1].narrow(0, 5, 4).zero_();
  mask = mask.to(device());
  const torch::Tensor labels = torch::tensor({0, 1, 1}, torch::kLong).to(device());
  auto gradients = [&](Precision precision, LastLayerOutput output) {
    model->set_training_last_layer(output);
    return loss_and_gradients(model, input, mask, labels, precision);
  };
  auto compare = [&](const std::string& policy) {
    for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
      SCOPED_TRACE(policy + " " + precision_name(precision));
      const auto whole = gradients(precision, LastLayerOutput::kAllPositions);
      const auto first = gradients(precision, LastLayerOutput::kFirstPosition);
      ASSERT_EQ(whole.size(), first.size());
      // bf16: the products round their bf16 operands alike either way, but sums over fewer
      // rows (the weight gradients) and the float32 LayerNorms see other orders.
      const double relative = precision == Precision::kFloat32 ? 1e-5 : 2e-2;
      for (const auto& [name, value] : whole) {
        const torch::Tensor& other = first.at(name);
        ASSERT_EQ(other.defined(), value.defined()) << name;
        if (!value.defined()) continue;
        const double scale = 1 + value.abs().max().item<double>();
        EXPECT_LT(testing::max_abs_diff(other.to(torch::kFloat), value.to(torch::kFloat)),
                  relative * scale)
            << name;
      }
      // The last layer's query gradient comes from the first position alone, and is there.
      const std::string query = "bert.encoder.layer.2.attention.self.query.weight";
      if (first.count(query)) {
        EXPECT_GT(first.at(query).abs().max().item<double>(), 0);
      }
    }
  };
  prepare_task_training(*model, "task", FreezePolicy{});
  {
    FrozenProjectionsPacked packed(*model);
    ASSERT_GT(packed.packed(), 0);
    compare("houlsby");
  }
  apply_freeze_policy(*model, FreezePolicy::from_name("full"));
  compare("full");

  // With dropout the path shows: the masks are drawn over the smaller tensors, so one seed gives
  // another loss, where the whole pass repeats its own.
  torch::manual_seed(13);
  BertForSequenceClassification dropped(tiny_config(), HeadConfig{});
  dropped->to(device());
  dropped->train();
  auto loss_with_seed = [&](LastLayerOutput output) {
    dropped->set_training_last_layer(output);
    torch::manual_seed(14);
    return dropped->loss(dropped(input, mask), labels).item<double>();
  };
  const double whole = loss_with_seed(LastLayerOutput::kAllPositions);
  EXPECT_EQ(loss_with_seed(LastLayerOutput::kAllPositions), whole);
  EXPECT_NE(loss_with_seed(LastLayerOutput::kFirstPosition), whole);
}

TEST_P(BertModelTest, MaskedOutRowsStayFiniteUnderAutocast) {
  // An all-padding row masks every key. With the mask built as float's lowest value and cast to
  // bf16/fp16 it became -inf and the softmax NaN; built in the compute dtype it stays finite (and,
  // as in Hugging Face, such a row attends uniformly).
  BertModel model(tiny_config());
  model->to(device());
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<Precision> precisions = {Precision::kBFloat16};
  if (device().is_cuda()) precisions.push_back(Precision::kFloat16);
  for (Precision precision : precisions) {
    AutocastGuard autocast(device(), precision);
    auto out = model(ids({{1, 5, 7, 9, 2}, {1, 5, 0, 0, 0}}, device()),
                     ids({{1, 1, 1, 1, 1}, {0, 0, 0, 0, 0}}, device()));
    EXPECT_TRUE(torch::isfinite(out.last_hidden_state).all().item<bool>())
        << precision_name(precision);
  }
}

TEST_P(BertModelTest, FrozenLinearWeightsStoredInTheComputeDtypeGiveTheSameOutputs) {
  // Two Houlsby adapters, their fusion and a task head: every kind of Linear the model runs.
  // Autocast rounds each float32 weight to bf16 on use; storing it rounded gives the same bits.
  torch::manual_seed(4);
  BertForSequenceClassification model(tiny_config(), HeadConfig::classification({"a", "b"}));
  model->bert->add_adapter("x", AdapterConfig::houlsby());
  model->bert->add_adapter("y", AdapterConfig::houlsby());
  const std::string fusion = model->bert->add_fusion({"x", "y"});
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : model->parameters()) parameter.add_(torch::randn_like(parameter) * 0.1);
  }
  model->bert->set_active_adapter(fusion);
  model->to(device());
  model->eval();
  const torch::Tensor input = testing::random_ids(3, 9).to(device());
  const torch::Tensor mask = torch::ones({3, 9}, torch::kLong).to(device());
  auto logits = [&] {
    c10::InferenceMode inference;
    AutocastGuard autocast(device(), Precision::kBFloat16);
    return model(input, mask);
  };
  const torch::Tensor before = logits();
  EXPECT_EQ(store_frozen_linear_weights(*model, Precision::kBFloat16), 0)
      << "trainable weights stay float32";
  int64_t linears = 0;
  for (auto& item : model->named_parameters()) {
    item.value().set_requires_grad(false);
    if (item.value().dim() == 2 && item.key().find("embeddings") == std::string::npos) ++linears;
  }
  EXPECT_EQ(store_frozen_linear_weights(*model, Precision::kFloat32), 0);
  EXPECT_EQ(store_frozen_linear_weights(*model, Precision::kBFloat16), linears);
  for (auto& item : model->named_parameters()) {
    const bool linear_weight =
        item.value().dim() == 2 && item.key().find("embeddings") == std::string::npos;
    EXPECT_EQ(item.value().scalar_type(), linear_weight ? torch::kBFloat16 : torch::kFloat32)
        << item.key();
  }
  EXPECT_TRUE(torch::equal(logits(), before));
  EXPECT_EQ(store_frozen_linear_weights(*model, Precision::kBFloat16), 0) << "already stored";
}

// The query, key and value weights of every layer, in that order.
std::vector<torch::Tensor*> projection_weights(torch::nn::Module& model) {
  std::vector<torch::Tensor*> weights;
  for (const auto& child : model.modules()) {
    if (auto* attention = child->as<SelfAttention>()) {
      for (auto* linear : {&attention->query, &attention->key, &attention->value}) {
        weights.push_back(&(*linear)->weight);
      }
    }
  }
  return weights;
}

// SelfAttentionImpl::pack_projections() for every layer; how many.
int64_t pack_attention_projections(torch::nn::Module& model) {
  int64_t packed = 0;
  for (const auto& child : model.modules()) {
    if (auto* attention = child->as<SelfAttention>()) {
      attention->pack_projections();
      ++packed;
    }
  }
  return packed;
}

TEST_P(BertModelTest, PackedAttentionProjectionsFollowTheirWeights) {
  torch::manual_seed(5);
  BertModel model(tiny_config());
  model->to(device());
  const torch::Tensor input = testing::random_ids(2, 7).to(device());
  auto hidden = [&] {
    c10::InferenceMode inference;
    return model(input).last_hidden_state;
  };
  model->eval();
  const torch::Tensor before = hidden();
  const std::vector<torch::Tensor*> weights = projection_weights(*model);
  ASSERT_EQ(weights.size(), 3 * static_cast<size_t>(tiny_config().num_hidden_layers));
  const size_t parameters = model->parameters().size();

  EXPECT_EQ(pack_attention_projections(*model), tiny_config().num_hidden_layers);
  EXPECT_EQ(model->parameters().size(), parameters) << "the parameters stay the module's";
  const int64_t row_bytes = weights[0]->numel() * static_cast<int64_t>(weights[0]->element_size());
  for (size_t i = 0; i < weights.size(); i += 3) {
    const auto* query = static_cast<const char*>(weights[i]->data_ptr());
    EXPECT_EQ(static_cast<const char*>(weights[i + 1]->data_ptr()), query + row_bytes);
    EXPECT_EQ(static_cast<const char*>(weights[i + 2]->data_ptr()), query + 2 * row_bytes);
  }
  EXPECT_TRUE(torch::equal(hidden(), before));
  const void* packed_at = weights[0]->data_ptr();
  pack_attention_projections(*model);
  EXPECT_EQ(weights[0]->data_ptr(), packed_at) << "packing again leaves it as it is";

  // A weight written in place is what the packed block holds; one given new storage is read
  // from there. Both give what an unpacked model with those weights gives.
  BertModel twin(tiny_config());
  twin->to(device());
  twin->eval();
  {
    torch::NoGradGuard no_grad;
    weights[1]->mul_(2);                             // layer 0's key, in place
    weights[5]->set_data(weights[5]->clone() * -1);  // layer 1's value, new storage
    for (auto& item : twin->named_parameters()) {
      item.value().copy_(model->named_parameters()[item.key()]);
    }
  }
  c10::InferenceMode inference;
  EXPECT_TRUE(torch::equal(hidden(), twin(input).last_hidden_state));
  EXPECT_FALSE(torch::equal(hidden(), before));
}

TEST_P(BertModelTest, PackedAttentionProjectionsStillGetGradients) {
  torch::manual_seed(6);
  BertModel model(tiny_config());
  model->to(device());
  pack_attention_projections(*model);
  model(testing::random_ids(2, 7).to(device())).last_hidden_state.square().sum().backward();
  for (torch::Tensor* weight : projection_weights(*model)) {
    ASSERT_TRUE(weight->grad().defined());
    EXPECT_GT(weight->grad().abs().sum().item<double>(), 0);
  }
}

// Every SelfAttention of `model`, in order.
std::vector<SelfAttentionImpl*> attentions(torch::nn::Module& model) {
  std::vector<SelfAttentionImpl*> out;
  for (const auto& child : model.modules()) {
    if (auto* attention = child->as<SelfAttention>()) out.push_back(attention);
  }
  return out;
}

TEST_P(BertModelTest, FrozenProjectionsPackedForTrainingGiveTheSameGradientsAndGoBack) {
  torch::manual_seed(8);
  BertForSequenceClassification model =
      classifier_with_adapter(testing::tiny_config_without_dropout(), device());
  prepare_task_training(*model, "task", FreezePolicy{});
  const torch::Tensor input = testing::random_ids(3, 9).to(device());
  const torch::Tensor labels = torch::tensor({0, 1, 1}, torch::kLong).to(device());
  auto gradients = [&](Precision precision) {
    return loss_and_gradients(model, input, {}, labels, precision);
  };
  std::map<Precision, std::map<std::string, torch::Tensor>> joined;
  for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    joined[precision] = gradients(precision);
  }
  const std::map<std::string, torch::Tensor> values_before = [&] {
    std::map<std::string, torch::Tensor> out;
    for (const auto& item : model->named_parameters()) out[item.key()] = item.value().clone();
    return out;
  }();
  const std::vector<SelfAttentionImpl*> layers = attentions(*model);
  ASSERT_EQ(layers.size(), static_cast<size_t>(model->bert->config().num_hidden_layers));
  c10::weak_intrusive_ptr<c10::StorageImpl> block =
      layers[0]->query->weight.storage().getWeakStorageImpl();
  {
    FrozenProjectionsPacked packed(*model);
    EXPECT_EQ(packed.packed(), static_cast<int64_t>(layers.size()));
    for (SelfAttentionImpl* attention : layers) EXPECT_TRUE(attention->packed());
    block = layers[0]->query->weight.storage().getWeakStorageImpl();
    for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
      // The block holds the very values the join gave: the same bits throughout.
      for (const auto& [name, expected] : gradients(precision)) {
        EXPECT_TRUE(torch::equal(expected, joined[precision][name]))
            << precision_name(precision) << " " << name;
      }
    }
  }
  for (SelfAttentionImpl* attention : layers) EXPECT_FALSE(attention->packed());
  EXPECT_TRUE(block.expired()) << "the block went with the packing";
  for (const auto& item : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), values_before.at(item.key()))) << item.key();
  }

  // Layers whose projections train stay as they are.
  apply_freeze_policy(*model, FreezePolicy::from_name("full"));
  EXPECT_EQ(FrozenProjectionsPacked(*model).packed(), 0);
  EXPECT_EQ(pack_frozen_projections(*model), 0);
}

TEST_P(BertModelTest, RecomputedAttentionProbabilitiesGiveTheSameGradients) {
  // Dropout on (tiny_config's 0.1), a padding mask, fp32 and bf16, adapters and full training:
  // the probabilities computed again in backward must be the very ones the forward pass used.
  torch::manual_seed(10);
  BertForSequenceClassification model = classifier_with_adapter(tiny_config(), device());
  model->train();
  const torch::Tensor input = testing::random_ids(3, 9).to(device());
  torch::Tensor mask = torch::ones({3, 9}, torch::kLong);
  mask[1].narrow(0, 6, 3).zero_();
  mask = mask.to(device());
  const torch::Tensor labels = torch::tensor({0, 1, 1}, torch::kLong).to(device());
  const std::vector<SelfAttentionImpl*> layers = attentions(*model);
  for (SelfAttentionImpl* attention : layers) EXPECT_FALSE(attention->recompute_probabilities());
  auto gradients = [&](Precision precision, bool recompute) {
    model->bert->encoder->set_recompute_attention_probabilities(recompute);
    for (SelfAttentionImpl* attention : layers) {
      EXPECT_EQ(attention->recompute_probabilities(), recompute);
    }
    torch::manual_seed(11);  // the same dropout masks in both runs
    return loss_and_gradients(model, input, mask, labels, precision);
  };
  for (const char* policy : {"houlsby", "full"}) {
    if (std::string(policy) == "full") {
      apply_freeze_policy(*model, FreezePolicy::from_name("full"));
    } else {
      prepare_task_training(*model, "task", FreezePolicy{});
    }
    for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
      const auto kept = gradients(precision, false);
      const auto recomputed = gradients(precision, true);
      ASSERT_EQ(kept.size(), recomputed.size());
      for (const auto& [name, value] : kept) {
        const torch::Tensor& other = recomputed.at(name);
        ASSERT_EQ(other.defined(), value.defined()) << name;
        if (value.defined()) {
          EXPECT_TRUE(torch::equal(other, value))
              << policy << " " << precision_name(precision) << " " << name;
        }
      }
    }
  }
}

TEST_P(BertModelTest, PackedBlockGivenUpOnceItsWeightsHaveNewStorage) {
  torch::manual_seed(9);
  BertModel model(tiny_config());
  model->to(device());
  model->eval();
  for (auto& parameter : model->parameters()) parameter.set_requires_grad(false);
  EXPECT_EQ(pack_frozen_projections(*model), tiny_config().num_hidden_layers);
  EXPECT_EQ(pack_frozen_projections(*model), 0) << "already packed";
  const c10::weak_intrusive_ptr<c10::StorageImpl> block =
      attentions(*model)[0]->query->weight.storage().getWeakStorageImpl();
  model->to(torch::kDouble);  // new storage for every parameter
  EXPECT_FALSE(block.expired()) << "the module still holds its block";
  c10::InferenceMode inference;
  model(testing::random_ids(2, 5).to(device()));
  EXPECT_TRUE(block.expired()) << "a pass that finds it stale lets it go";
}

TEST_P(BertModelTest, PreparedForInferenceGivesTheSameOutputs) {
  torch::manual_seed(7);
  BertForSequenceClassification model(tiny_config(), HeadConfig::classification({"a", "b"}));
  model->bert->add_adapter("x", AdapterConfig::houlsby());
  model->bert->set_active_adapter("x");
  model->to(device());
  model->eval();
  const torch::Tensor input = testing::random_ids(3, 9).to(device());
  for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    auto logits = [&] {
      c10::InferenceMode inference;
      AutocastGuard autocast(device(), precision);
      return model(input);
    };
    const torch::Tensor before = logits();
    prepare_for_inference(*model, precision);
    for (const auto& item : model->named_parameters()) {
      EXPECT_FALSE(item.value().requires_grad()) << item.key();
    }
    const std::vector<torch::Tensor*> weights = projection_weights(*model);
    EXPECT_EQ(weights[0]->scalar_type(),
              precision == Precision::kFloat32 ? torch::kFloat32 : torch::kBFloat16);
    const auto* query = static_cast<const char*>(weights[0]->data_ptr());
    EXPECT_EQ(static_cast<const char*>(weights[2]->data_ptr()),
              query + 2 * weights[0]->numel() * weights[0]->element_size())
        << "packed";
    EXPECT_TRUE(torch::equal(logits(), before)) << precision_name(precision);
  }
}

TEST(PrepareForInference, TakesAModelThatNoSharedPtrHolds) {
  // LibTorch's modules(include_self) throws its own error for a module on the stack.
  BertModelImpl model(tiny_config());
  EXPECT_NO_THROW(prepare_for_inference(model, Precision::kBFloat16));
  EXPECT_EQ(model.encoder->at(0)->attention->self->query->weight.scalar_type(), torch::kBFloat16);
  EXPECT_FALSE(model.encoder->at(0)->attention->self->query->weight.requires_grad());
}

TEST_P(BertModelTest, BadInputsGetClearErrors) {
  BertModel model(tiny_config());
  model->to(device());
  auto input = ids({{1, 5, 7}}, device());
  EXPECT_ERROR_CONTAINS(model(input, ids({{1, 1}}, device())),
                        "attention_mask: expected shape [1, 3] (as input_ids), got [1, 2]");
  EXPECT_ERROR_CONTAINS(model(input, torch::Tensor(), ids({{0, 1}}, device())),
                        "token_type_ids: expected shape [1, 3]");
  EXPECT_ERROR_CONTAINS(model(torch::ones({3}, torch::kLong).to(device())),
                        "input_ids: expected shape [batch, seq]");
  EXPECT_ERROR_CONTAINS(model(input.to(torch::kFloat)), "input_ids: expected dtype int64");
  EXPECT_ERROR_CONTAINS(model(torch::ones({1, 65}, torch::kLong).to(device())),
                        "sequence length 65 exceeds max_position_embeddings 64");
  if (device().is_cpu()) {
    EXPECT_ERROR_CONTAINS(model(ids({{1, 500}}, device())),
                          "input_ids: values must lie in [0, 120), found 500");
    EXPECT_ERROR_CONTAINS(model(input, torch::Tensor(), ids({{0, 2, 1}}, device())),
                          "token_type_ids: values must lie in [0, 2), found 2");
  }
  // A tensor on another device than the model's gets an Error, not LibTorch's (meta is another
  // device whatever the test's).
  const auto meta = torch::TensorOptions().device(torch::kMeta).dtype(torch::kLong);
  EXPECT_ERROR_CONTAINS(model(torch::ones({1, 3}, meta)),
                        "input_ids: on meta, expected " + model->parameters()[0].device().str() +
                            " (the model's weights)");
  EXPECT_ERROR_CONTAINS(
      model(input, torch::ones({1, 3}, meta)),
      "attention_mask: on meta, expected " + input.device().str() + " (as input_ids)");
  EXPECT_ERROR_CONTAINS(model(input, torch::Tensor(), torch::zeros({1, 3}, meta)),
                        "token_type_ids: on meta, expected");
  const int64_t width = tiny_config().hidden_size;
  EXPECT_ERROR_CONTAINS(model->forward_from(torch::zeros({1, 3, width}, meta.dtype(torch::kFloat)),
                                            torch::Tensor(), 1),
                        "forward_from: hidden states: on meta, expected");
  EXPECT_ERROR_CONTAINS(
      model->forward_from(torch::zeros({1, 3, width}, torch::kLong).to(device()), {}, 1),
      "forward_from: hidden states must be floating point [batch, seq, " + std::to_string(width) +
          "] matching the attention mask, got Long [1, 3, " + std::to_string(width) + "]");
}

TEST_P(BertModelTest, HeadLossesRefuseBadLabelsWithClearErrors) {
  auto input = ids({{1, 5, 7}}, device());
  const auto meta = torch::TensorOptions().device(torch::kMeta).dtype(torch::kLong);
  BertForMaskedLM masked_lm(tiny_config());
  masked_lm->to(device());
  EXPECT_ERROR_CONTAINS(masked_lm->loss(input, torch::zeros({1, 3}, torch::kFloat).to(device())),
                        "labels: expected int64 [batch, seq], got Float [1, 3]");
  EXPECT_ERROR_CONTAINS(masked_lm->loss(input, torch::Tensor()),
                        "labels: expected int64 [batch, seq], got undefined");
  EXPECT_ERROR_CONTAINS(masked_lm->loss(input, torch::full({1, 3}, -100, meta)),
                        "labels: on meta, expected");
  if (device().is_cpu()) {
    EXPECT_ERROR_CONTAINS(masked_lm->loss(input, ids({{-100, 500, -100}}, device())),
                          "labels (other than -100): values must lie in [0, 120), found 500");
    EXPECT_ERROR_CONTAINS(masked_lm->loss(input, ids({{-100, -5, 3}}, device())),
                          "labels (other than -100): values must lie in [0, 120), found -5");
  }
  EXPECT_TRUE(
      torch::isfinite(masked_lm->loss(input, ids({{-100, 119, 0}}, device()))).item<bool>());

  BertForSequenceClassification classifier(tiny_config(), HeadConfig{});
  classifier->to(device());
  EXPECT_ERROR_CONTAINS(classifier->loss(classifier(input), torch::ones({1}, meta)),
                        "loss: labels: on meta, expected");
  // Logits that are not the active head's: cross-entropy would take any number of classes.
  const auto label = ids({{1}}, device()).reshape({1});
  EXPECT_ERROR_CONTAINS(classifier->loss(torch::zeros({1, 5}).to(device()), label),
                        "loss: logits must be [batch, 2] for the active head, got [1, 5]");
  EXPECT_ERROR_CONTAINS(classifier->loss(torch::zeros({2}).to(device()), label),
                        "loss: logits must be [batch, 2] for the active head, got [2]");
  EXPECT_ERROR_CONTAINS(classifier->loss(classifier(input), torch::Tensor()),
                        "loss: labels must have shape [1], got undefined");
  BertForSequenceClassification regressor(tiny_config(), HeadConfig::regression());
  regressor->to(device());
  EXPECT_ERROR_CONTAINS(
      regressor->loss(regressor(input), torch::ones({1}, meta.dtype(torch::kFloat))),
      "loss: labels: on meta, expected");

  BertForQuestionAnswering answering(tiny_config());
  answering->to(device());
  EXPECT_ERROR_CONTAINS(answering->loss(answering(input), torch::ones({1}, meta), label),
                        "BertForQuestionAnswering::loss: positions: on meta, expected");
}

TEST(BertModelNames, ParameterNamesAreHuggingFaceKeys) {
  BertModel model(tiny_config());
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  // Hugging Face BertModel: 5 embedding tensors, 16 per layer, 2 for the pooler.
  EXPECT_EQ(names.size(), 5u + 16u * 2u + 2u);
  for (const char* key :
       {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias", "encoder.layer.0.attention.self.query.weight",
        "encoder.layer.0.attention.self.key.bias", "encoder.layer.0.attention.self.value.weight",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.0.attention.output.LayerNorm.bias",
        "encoder.layer.1.intermediate.dense.weight", "encoder.layer.1.output.dense.bias",
        "encoder.layer.1.output.LayerNorm.weight", "pooler.dense.weight", "pooler.dense.bias"}) {
    EXPECT_EQ(names.count(key), 1u) << key;
  }
}

TEST(BertModelNames, ClassifierNamesCarryTheBertPrefix) {
  BertForSequenceClassification model(tiny_config(), HeadConfig::classification({"neg", "pos"}));
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  EXPECT_EQ(names.count("bert.embeddings.word_embeddings.weight"), 1u);
  EXPECT_EQ(names.count("classifier.weight"), 1u);
  EXPECT_EQ(names.count("classifier.bias"), 1u);
  EXPECT_EQ(model->classifier->weight.sizes(), (std::vector<int64_t>{2, 32}));
}

TEST(BertModelInit, FollowsBertInitialisation) {
  BertConfig config = tiny_config();
  config.vocab_size = 4000;  // enough samples for a stable std estimate
  BertModel model(config);
  auto word = model->embeddings->word_embeddings->weight;
  EXPECT_NEAR(word.std().item<double>(), 0.02, 0.002);
  EXPECT_TRUE(torch::equal(word[config.pad_token_id], torch::zeros({32})));
  EXPECT_TRUE(torch::equal(model->encoder->at(0)->output->LayerNorm->weight, torch::ones({32})));
  EXPECT_TRUE(torch::equal(model->pooler->dense->bias, torch::zeros({32})));
}

TEST(BertForSequenceClassification, LossForClassificationAndRegression) {
  BertForSequenceClassification classifier(tiny_config(),
                                           HeadConfig::classification({"a", "b", "c"}));
  auto input = torch::tensor({{1, 4, 5, 2}, {1, 6, 2, 0}}, torch::kLong);
  auto logits = classifier(input);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 3}));
  auto loss = classifier->loss(logits, torch::tensor({0, 2}, torch::kLong));
  EXPECT_NEAR(loss.item<double>(),
              torch::nn::functional::cross_entropy(logits, torch::tensor({0, 2})).item<double>(),
              1e-6);
  EXPECT_ERROR_CONTAINS(classifier->loss(logits, torch::tensor({0, 3}, torch::kLong)),
                        "loss: labels: values must lie in [0, 3), found 3");
  EXPECT_ERROR_CONTAINS(classifier->loss(logits, torch::tensor({0}, torch::kLong)),
                        "labels must have shape [2], got [1]");

  BertForSequenceClassification regressor(tiny_config(), HeadConfig::regression());
  auto scores = regressor(input);
  EXPECT_EQ(scores.sizes(), (std::vector<int64_t>{2, 1}));
  auto target = torch::tensor({0.5f, 4.0f});
  EXPECT_NEAR(regressor->loss(scores, target).item<double>(),
              (scores.squeeze(-1) - target).pow(2).mean().item<double>(), 1e-6);
}

TEST(HeadConfig, JsonRoundTripAndValidation) {
  HeadConfig head = HeadConfig::classification({"entailment", "not_entailment"});
  head.classifier_dropout = 0.2;
  EXPECT_EQ(HeadConfig::from_json_string(head.to_json_string()), head);
  EXPECT_EQ(HeadConfig::from_json_string(HeadConfig::regression().to_json_string()),
            HeadConfig::regression());
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"num_labels": 1})", "head.json"),
                        "head.json: HeadConfig: a classification head needs num_labels >= 2");
  EXPECT_ERROR_CONTAINS(
      HeadConfig::from_json_string(R"({"num_labels": 3, "id2label": {"0": "a", "1": "b"}})"),
      "id2label has 2 names for num_labels 3");
  // Ids are decimal, each once: "1x" is no id, and "01" beside "1" leaves id 0 without a name.
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"id2label": {"0": "a", "1x": "b"}})"),
                        "key 'id2label' must be keyed by class ids");
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"id2label": {"1": "a", "01": "b"}})"),
                        "key 'id2label' must be a name for each id 0..n-1, once each");
  EXPECT_EQ(HeadConfig::from_json_string(R"({"id2label": {"1": "b", "0": "a"}})").id2label,
            (std::vector<std::string>{"a", "b"}));
  // Label names are written into head_config.json: valid UTF-8 only.
  EXPECT_ERROR_CONTAINS(HeadConfig::classification({"a", "b\xff"}).validate(),
                        "HeadConfig: id2label 1: invalid UTF-8 at byte 1");
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"problem_type": "multi_label"})"),
                        "'problem_type' must be");
  // The file's "the encoder's dropout" is null: a negative number is a mistake, not that.
  EXPECT_EQ(HeadConfig::from_json_string(R"({"classifier_dropout": null})").classifier_dropout,
            -1.0);
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"classifier_dropout": -0.1})", "h.json"),
                        "h.json: key 'classifier_dropout' must be null or a probability in [0, "
                        "1), found -0.1");
  // A number given is shown as given (not the 301 digits of std::to_string(1e300)).
  EXPECT_ERROR_CONTAINS(HeadConfig::from_json_string(R"({"classifier_dropout": 1e300})"),
                        "'classifier_dropout' must be below 1, got 1e+300");
}

}  // namespace
}  // namespace adaptertune
