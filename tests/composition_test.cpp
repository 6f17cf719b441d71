// Composition blocks with AdapterHub's semantics: Stack, Parallel and BatchSplit, each tested
// against an exact expectation. Suites are named so that `ctest -R 'Stack|Parallel|BatchSplit'`
// runs them.

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// A tiny model (no dropout, eval mode) with tasks whose every own tensor is random, so that no
// adapter is near the identity and no LayerNorm copy equals the base's.
BertForSequenceClassification model_with(
    const std::vector<std::pair<std::string, AdapterConfig>>& tasks, bool layer_norms = true) {
  torch::manual_seed(21);
  BertForSequenceClassification model(testing::tiny_config_without_dropout(), HeadConfig{});
  int64_t labels = 2;
  for (const auto& [name, adapter] : tasks) {
    model->add_task(
        name, adapter,
        HeadConfig::classification(std::vector<std::string>(static_cast<size_t>(labels++), "x")));
    if (layer_norms) model->bert->add_layer_norm_copies(name);
  }
  testing::randomize_task_tensors(*model);
  model->eval();
  return model;
}

torch::Tensor ids(int64_t rows, int64_t seq, int seed = 5) {
  return testing::random_ids(rows, seq, seed);
}

// One adapter site of Stack(a, b), written out from AdapterHub's compose_stack: each adapter's
// pre_forward (LayerNorm first when original_ln_before) and residual on the previous output,
// then the last adapter's post_forward.
torch::Tensor stacked_site(SublayerOutput& site, const torch::Tensor& projected,
                           const torch::Tensor& input, const std::vector<std::string>& names) {
  torch::nn::LayerNorm norm = site->LayerNorm;
  torch::Tensor h = projected;
  BottleneckAdapter last{nullptr};
  for (const auto& name : names) {
    if (!site->has_adapter(name)) continue;
    auto adapter = site->adapters->at<BottleneckAdapterImpl>(name).shared_from_this();
    BottleneckAdapter a(std::dynamic_pointer_cast<BottleneckAdapterImpl>(adapter));
    const AdapterConfig& c = a->config();
    const torch::Tensor adapter_input = c.original_ln_before ? norm(h + input) : h;
    h = a->delta(adapter_input) + (c.residual_before_ln ? h : adapter_input);
    last = a;
  }
  if (!last) return norm(projected + input);
  return last->config().original_ln_after ? norm(h + input) : h;
}

// The encoder's output for Stack(names), layer by layer from the layers' parts.
torch::Tensor stacked_encoder(BertForSequenceClassification& model, const torch::Tensor& input_ids,
                              const std::vector<std::string>& names) {
  torch::Tensor hidden =
      model->bert->embeddings->forward(input_ids, torch::Tensor(), TaskRouting::base());
  for (size_t i = 0; i < model->bert->encoder->size(); ++i) {
    BertLayer layer = model->bert->encoder->at(i);
    const torch::Tensor attended_self = layer->attention->self(hidden);
    const torch::Tensor attended = stacked_site(
        layer->attention->output, layer->attention->output->dense(attended_self), hidden, names);
    hidden = stacked_site(layer->output, layer->output->dense(layer->intermediate(attended)),
                          attended, names);
  }
  return hidden;
}

TEST(Stack, EachAdapterRunsOnTheOutputOfTheOneBelow) {
  // Houlsby-style (adapter on the projected output) and Pfeiffer-style (after the LayerNorm).
  for (const auto& preset : {"houlsby", "pfeiffer"}) {
    auto model = model_with(
        {{"lang", AdapterConfig::preset(preset)}, {"task", AdapterConfig::preset(preset)}},
        /*layer_norms=*/false);
    const auto input = ids(3, 8);
    torch::NoGradGuard no_grad;
    const auto expected = stacked_encoder(model, input, {"lang", "task"});
    const auto got =
        model->bert->forward_routed(input, {}, {}, TaskRouting::stack({"lang", "task"}))
            .last_hidden_state;
    EXPECT_LT(testing::max_abs_diff(got, expected), 1e-5) << preset;
    // The order matters, and a Stack of one adapter is the task alone.
    const auto reversed =
        model->bert->forward_routed(input, {}, {}, TaskRouting::stack({"task", "lang"}))
            .last_hidden_state;
    EXPECT_GT(testing::max_abs_diff(got, reversed), 1e-3) << preset;
    EXPECT_TRUE(torch::equal(
        model->bert->forward_routed(input, {}, {}, TaskRouting::stack({"task"})).last_hidden_state,
        model->bert->forward_routed(input, {}, {}, TaskRouting::whole_batch("task"))
            .last_hidden_state));
  }
}

TEST(Stack, MixedPlacementsSkipSitesWithoutAnAdapter) {
  // lang has adapters after attention and the FFN, task only after the FFN: after attention the
  // Stack is lang alone.
  auto model = model_with({{"lang", AdapterConfig::houlsby()}, {"task", AdapterConfig::pfeiffer()}},
                          /*layer_norms=*/false);
  const auto input = ids(2, 6);
  torch::NoGradGuard no_grad;
  EXPECT_LT(testing::max_abs_diff(
                model->bert->forward_routed(input, {}, {}, TaskRouting::stack({"lang", "task"}))
                    .last_hidden_state,
                stacked_encoder(model, input, {"lang", "task"})),
            1e-5);
}

TEST(Stack, TheTopTaskOwnsLayerNormsPoolerAndHead) {
  auto model = model_with({{"lang", AdapterConfig::houlsby()}, {"task", AdapterConfig::houlsby()}});
  const auto input = ids(2, 6);
  torch::NoGradGuard no_grad;
  const auto stacked = model->forward_routed(input, {}, {}, TaskRouting::stack({"lang", "task"}));
  ASSERT_EQ(stacked.size(), 1u);
  EXPECT_EQ(stacked[0].size(1), 3) << "task's head (3 labels), not lang's (2)";
}

TEST(Stack, RefusesUnknownAndRepeatedAdapters) {
  auto model = model_with({{"a", AdapterConfig::houlsby()}});
  EXPECT_ERROR_CONTAINS(
      model->bert->forward_routed(ids(1, 4), {}, {}, TaskRouting::stack({"a", "nope"})), "nope");
  EXPECT_ERROR_CONTAINS(TaskRouting::stack({"a", "a"}),
                        "adapter \"a\" appears twice in Stack(a, a)");
  EXPECT_ERROR_CONTAINS(TaskRouting::stack(Stack(std::vector<std::string>{})),
                        "a Stack needs at least one adapter");
}

class ParallelTest : public testing::DeviceTest {};

TEST_P(ParallelTest, EqualsSeparateRunsWithPaddingAndStacksInside) {
  auto model = model_with({{"a", AdapterConfig::houlsby()},
                           {"b", AdapterConfig::pfeiffer()},
                           {"c", AdapterConfig::houlsby()}});
  model->to(device());
  const auto input = ids(4, 9).to(device());
  auto mask = torch::ones({4, 9}, torch::kLong);
  mask.narrow(1, 6, 3).narrow(0, 0, 2).zero_();  // two rows padded
  mask = mask.to(device());
  torch::NoGradGuard no_grad;
  const std::vector<Stack> branches = {Stack("a"), Stack("b"), Stack{"c", "a"}};
  const auto parallel = model->forward_routed(input, mask, {}, TaskRouting::parallel(branches, 4));
  ASSERT_EQ(parallel.size(), 3u);
  for (size_t i = 0; i < branches.size(); ++i) {
    const auto alone = model->forward_routed(input, mask, {}, TaskRouting::stack(branches[i]))[0];
    EXPECT_LT(testing::max_abs_diff(parallel[i], alone), 1e-5) << branches[i].describe();
  }
  EXPECT_EQ(parallel[0].size(1), 2);  // each branch with its own head
  EXPECT_EQ(parallel[1].size(1), 3);
}

TEST_P(ParallelTest, SharedLowerLayersStayExactWhenTheAdaptersLeaveThemOut) {
  // Both tasks leave layers 0 and 1 out: those run once for both branches.
  AdapterConfig upper = AdapterConfig::houlsby();
  upper.leave_out = {0, 1};
  auto model = model_with({{"a", upper}, {"b", upper}});
  model->to(device());
  const auto input = ids(3, 7).to(device());
  torch::NoGradGuard no_grad;
  const auto parallel = model->forward_routed(input, {}, {}, TaskRouting::parallel({"a", "b"}, 3));
  EXPECT_LT(testing::max_abs_diff(
                parallel[0], model->forward_routed(input, {}, {}, TaskRouting::stack({"a"}))[0]),
            1e-5);
  EXPECT_LT(testing::max_abs_diff(
                parallel[1], model->forward_routed(input, {}, {}, TaskRouting::stack({"b"}))[0]),
            1e-5);
}

ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(ParallelTest);

TEST(Parallel, RefusesBadSetups) {
  EXPECT_ERROR_CONTAINS(TaskRouting::parallel({}, 2), "Parallel: needs at least one branch");
  EXPECT_ERROR_CONTAINS(TaskRouting::parallel({"a", "a"}, 2), "branch a appears twice");
  auto model = model_with({{"a", AdapterConfig::houlsby()}, {"b", AdapterConfig::houlsby()}});
  EXPECT_ERROR_CONTAINS(
      model->forward_routed(ids(3, 4), {}, {}, TaskRouting::parallel({"a", "b"}, 2)),
      "the task routing is for 2 examples, input_ids has 3");
}

TEST(BatchSplit, EqualsTheSplitRuns) {
  auto model = model_with({{"a", AdapterConfig::houlsby()}, {"b", AdapterConfig::pfeiffer()}});
  const auto input = ids(5, 8);
  torch::NoGradGuard no_grad;
  const auto split = model->forward_routed(
      input, {}, {}, TaskRouting::batch_split({Stack("a"), Stack{"a", "b"}}, {2, 3}));
  ASSERT_EQ(split.size(), 2u);
  const auto first =
      model->forward_routed(input.narrow(0, 0, 2), {}, {}, TaskRouting::stack({"a"}));
  const auto second =
      model->forward_routed(input.narrow(0, 2, 3), {}, {}, TaskRouting::stack({"a", "b"}));
  EXPECT_LT(testing::max_abs_diff(split[0], first[0]), 1e-5);
  EXPECT_LT(testing::max_abs_diff(split[1], second[0]), 1e-5);
  EXPECT_ERROR_CONTAINS(TaskRouting::batch_split({Stack("a")}, {2, 3}),
                        "BatchSplit: 1 parts but 2 sizes");
  EXPECT_ERROR_CONTAINS(TaskRouting::batch_split({Stack("a"), Stack("b")}, {2, 0}),
                        "size 0 of part b must be at least 1");
  EXPECT_ERROR_CONTAINS(
      model->forward_routed(input, {}, {}, TaskRouting::batch_split({"a", "b"}, {2, 2})),
      "the task routing is for 4 examples, input_ids has 5");
}

TEST(Stack, ActiveStackIsWhatForwardRuns) {
  auto model = model_with({{"lang", AdapterConfig::houlsby()}, {"task", AdapterConfig::houlsby()}});
  const auto input = ids(2, 6);
  torch::NoGradGuard no_grad;
  model->bert->set_active_stack(Stack{"lang", "task"});
  EXPECT_EQ(model->bert->active_adapter(), "task");
  EXPECT_TRUE(torch::equal(
      model(input), model->forward_routed(input, {}, {}, TaskRouting::stack({"lang", "task"}))[0]));
  model->bert->set_active_adapter("task");  // the task alone again
  EXPECT_TRUE(torch::equal(
      model(input), model->forward_routed(input, {}, {}, TaskRouting::whole_batch("task"))[0]));
  EXPECT_ERROR_CONTAINS(model->bert->set_active_stack(Stack{"lang", "lang"}), "appears twice");
  model->bert->set_active_stack(Stack{"lang", "task"});
  model->remove_task("lang");  // a stack that loses an adapter is no longer active
  EXPECT_EQ(model->bert->active_adapter(), std::nullopt);
}

TEST(Stack, SetupsParseAsAdapterHubWritesThem) {
  AdapterSetup one = parse_adapter_setup("sst2");
  EXPECT_EQ(one.kind, AdapterSetup::Kind::kStack);
  EXPECT_EQ(one.children.at(0).adapters, std::vector<std::string>{"sst2"});
  AdapterSetup stack = parse_adapter_setup(" Stack( lang ,sst2 ) ");
  EXPECT_EQ(stack.children.at(0).adapters, (std::vector<std::string>{"lang", "sst2"}));
  AdapterSetup parallel = parse_adapter_setup("Parallel(sst2, Stack(lang, rte))");
  EXPECT_EQ(parallel.kind, AdapterSetup::Kind::kParallel);
  ASSERT_EQ(parallel.children.size(), 2u);
  EXPECT_EQ(parallel.children[1].describe(), "Stack(lang, rte)");
  AdapterSetup split = parse_adapter_setup("BatchSplit(a, b, batch_sizes=[2, 3])");
  EXPECT_EQ(split.kind, AdapterSetup::Kind::kBatchSplit);
  EXPECT_EQ(split.batch_sizes, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(split.routing(5).batch_size(), 5);
}

TEST(Parallel, NestingIsCheckedWhenParsed) {
  // What AdapterHub users meet as TypeErrors (adapters#574, #496) is one clear error here.
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Stack(a, Parallel(b, c))"),
                        "Parallel is not supported inside a Stack");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Parallel(a, Parallel(b, c))"),
                        "Parallel is not supported inside Parallel");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Fuse(a, Stack(b, c))"),
                        "Stack is not supported inside a Fuse");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Stack(a, Fuse(b, Parallel(c, d)))"),
                        "Parallel is not supported inside a Fuse");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("BatchSplit(a, b)"), "BatchSplit needs batch_sizes");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Stack(a, b"), "expected ')' at character 11");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Stak(a)"), "unknown block \"Stak\"");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("a b"), "unexpected \"b\"");
}

}  // namespace
}  // namespace adaptertune
