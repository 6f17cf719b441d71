// AdapterFusion (Pfeiffer et al., 2021) with AdapterHub's semantics: the fusion layer against its
// formula, whole models against an independent Python reference, nesting, packs in AdapterHub's
// fusion layout, and training that leaves everything but the fusion alone. Suites are named so
// that `ctest -R Fus` runs them.

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::max_abs_diff;

std::string fresh_dir(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "adaptertune_fusion_" + name + "_" + std::to_string(::getpid());
  remove_tree(dir);
  make_directories(dir);
  return dir;
}

// A tiny model (no dropout, eval mode) with adapters `names` of `adapter` (random weights, own
// LayerNorms) and the fusion over them with random weights, its own LayerNorms and head.
BertForSequenceClassification fused_model(const std::vector<std::string>& names,
                                          const AdapterConfig& adapter,
                                          const FusionConfig& fusion = FusionConfig::dynamic()) {
  torch::manual_seed(8);
  BertForSequenceClassification model(testing::tiny_config_without_dropout(),
                                      HeadConfig::classification({"a", "b"}));
  for (const auto& name : names) {
    model->add_task(name, adapter, HeadConfig::classification({"x", "y", "z"}));
    model->bert->add_layer_norm_copies(name);
  }
  const std::string fusion_task = model->bert->add_fusion(names, fusion);
  model->add_task_head(fusion_task, HeadConfig::classification({"p", "q"}));
  model->bert->add_layer_norm_copies(fusion_task);
  testing::randomize_task_tensors(*model);
  model->eval();
  return model;
}

torch::Tensor ids(int64_t rows, int64_t seq, int seed = 5) {
  return testing::random_ids(rows, seq, seed);
}

TEST(FusionConfig, PresetsAndJsonFollowAdapterHub) {
  const FusionConfig dynamic = FusionConfig::dynamic();
  EXPECT_TRUE(dynamic.key && dynamic.query && dynamic.value && dynamic.regularization &&
              dynamic.value_initialized && dynamic.value_before_softmax);
  EXPECT_FALSE(dynamic.query_before_ln || dynamic.residual_before || dynamic.temperature);
  const FusionConfig fixed = FusionConfig::preset("static");
  EXPECT_TRUE(fixed.key && fixed.query);
  EXPECT_FALSE(fixed.value || fixed.regularization || fixed.value_initialized);
  EXPECT_EQ(FusionConfig::from_json_string(fixed.to_json_string()), fixed);
  FusionConfig odd = dynamic;
  odd.residual_before = true;
  odd.value_before_softmax = false;
  odd.dropout_prob = 0.25;
  EXPECT_EQ(FusionConfig::from_json_string(odd.to_json_string()), odd);
  // The whole adapter_fusion_config.json, as AdapterHub writes it.
  EXPECT_EQ(FusionConfig::from_json_string(
                R"({"config": {"key": true, "query": true, "value": false, "query_before_ln": false,
                    "regularization": false, "residual_before": false, "temperature": false,
                    "value_before_softmax": true, "value_initialized": false,
                    "dropout_prob": null}, "name": "a,b", "hidden_size": 32})"),
            fixed);
  EXPECT_ERROR_CONTAINS(FusionConfig::from_json_string(R"({"keys": true})", "f.json"), "keys");
  EXPECT_ERROR_CONTAINS(FusionConfig::from_json_string(R"({"temperature": true})", "f.json"),
                        "not implemented");
  EXPECT_ERROR_CONTAINS(FusionConfig::from_json_string(R"({"dropout_prob": 1.5})", "f.json"),
                        "dropout_prob");
  EXPECT_ERROR_CONTAINS(FusionConfig::preset("learned"), "dynamic");
}

TEST(Fusion, LayerFollowsTheFormulaForEveryVariant) {
  const int64_t d = 8, n = 3;
  torch::manual_seed(4);
  const torch::Tensor query = torch::randn({2, 5, d});
  const torch::Tensor ups = torch::randn({2, 5, n, d});
  const torch::Tensor residual = torch::randn({2, 5, d});
  for (int variant = 0; variant < 4; ++variant) {
    FusionConfig config = variant == 1 ? FusionConfig::static_fusion() : FusionConfig::dynamic();
    config.value_before_softmax = variant != 2;
    config.residual_before = variant == 3;
    AdapterFusion fusion(d, std::vector<std::string>{"a", "b", "c"}, config, 0.0);
    torch::NoGradGuard no_grad;
    for (auto& p : fusion->parameters()) p.normal_(0, 0.5);
    torch::Tensor values = config.residual_before ? ups + residual.unsqueeze(2) : ups;
    // Per token: scores over the adapters, softmax, weighted sum, written with plain loops.
    torch::Tensor expected = torch::zeros({2, 5, d});
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t t = 0; t < 5; ++t) {
        torch::Tensor q = torch::matmul(fusion->query->weight, query[b][t]) + fusion->query->bias;
        torch::Tensor scores = torch::zeros({n});
        for (int64_t i = 0; i < n; ++i) {
          torch::Tensor k = torch::matmul(fusion->key->weight, values[b][t][i]) + fusion->key->bias;
          scores[i] = torch::dot(q, k);
        }
        torch::Tensor weights = torch::softmax(scores, 0);
        torch::Tensor context = torch::zeros({d});
        for (int64_t i = 0; i < n; ++i) {
          torch::Tensor v = values[b][t][i];
          if (config.value && config.value_before_softmax)
            v = torch::matmul(fusion->value->weight, v);
          context += weights[i] * v;
        }
        if (config.value && !config.value_before_softmax)
          context = torch::matmul(fusion->value->weight, context);
        expected[b][t] = config.residual_before ? context : context + residual[b][t];
      }
    }
    EXPECT_LT(max_abs_diff(fusion(query, ups, residual), expected), 1e-5) << "variant " << variant;
    EXPECT_EQ(fusion->value.is_empty(), !config.value);
  }
}

TEST(Fusion, InitStartsTheValueAtTheIdentityAndRegularisesTowardsIt) {
  AdapterFusion fusion(16, std::vector<std::string>{"a", "b"}, FusionConfig::dynamic(), 0.1);
  torch::Tensor expected = torch::full({16, 16}, 1e-6);
  expected.fill_diagonal_(1.0);
  EXPECT_TRUE(torch::allclose(fusion->value->weight, expected));
  torch::NoGradGuard no_grad;
  fusion->value->weight.copy_(torch::eye(16) * 3);
  // 0.01 · ||I − 3I||² = 0.01 · 16 · 4.
  EXPECT_NEAR(fusion->regularization_loss().item<double>(), 0.64, 1e-6);
  AdapterFusion fixed(16, std::vector<std::string>{"a", "b"}, FusionConfig::static_fusion(), 0.1);
  EXPECT_FALSE(fixed->regularization_loss().defined());
  EXPECT_ERROR_CONTAINS(
      AdapterFusion(16, std::vector<std::string>{"a"}, FusionConfig::dynamic(), 0.1),
      "two adapters");
}

TEST(Fusion, OfCopiesOfOneAdapterIsThatAdapter) {
  // Identical adapters and an exact identity value: every attention weight multiplies the same
  // value, so the fusion's output is that adapter's, whatever the query and key learned.
  for (const char* preset : {"houlsby", "pfeiffer"}) {
    torch::manual_seed(2);
    BertModel model(testing::tiny_config_without_dropout());
    model->add_adapter("a", AdapterConfig::preset(preset));
    model->add_adapter("b", AdapterConfig::preset(preset));
    const std::string name = model->add_fusion({"a", "b"});
    EXPECT_EQ(name, "a,b");
    torch::NoGradGuard no_grad;
    auto params = model->named_parameters();
    for (const auto& item : params) {
      if (is_adapter_parameter(item.key(), "a")) {
        item.value().normal_(0, 0.3);
        params[rename_task_parameter(item.key(), "a", "b")].copy_(item.value());
      } else if (is_fusion_parameter(item.key())) {
        item.value().normal_(0, 0.3);
      }
    }
    for (const auto& item : params) {
      if (item.key().find("value.weight") != std::string::npos)
        item.value().copy_(torch::eye(item.value().size(0)));
    }
    model->eval();
    const torch::Tensor input = ids(3, 7);
    model->set_active_adapter("a");
    const torch::Tensor alone = model(input).last_hidden_state;
    model->set_active_adapter("a,b");
    EXPECT_LT(max_abs_diff(model(input).last_hidden_state, alone), 1e-5) << preset;
    model->set_active_adapter(std::nullopt);
    EXPECT_GT(max_abs_diff(model(input).last_hidden_state, alone), 1e-2) << preset;
  }
}

// Debian's python3 with torch is the independent reference (see hf_checkpoint_test.cpp).
bool have_reference() {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0) return true;
  return false;
}

TEST(Fusion, MatchesTheAdapterHubReference) {
  if (!have_reference()) {
    if (std::getenv("ADAPTERTUNE_REQUIRE_REFERENCE") != nullptr) {
      FAIL() << "/usr/bin/python3 with torch is required (ADAPTERTUNE_REQUIRE_REFERENCE is set)";
    }
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch: install Debian's python3-torch";
  }
  const std::string script =
      std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../python/fusion_reference.py";
  FusionConfig variant = FusionConfig::dynamic();
  variant.value_before_softmax = false;
  variant.residual_before = true;
  variant.query_before_ln = true;
  AdapterConfig left_out = AdapterConfig::houlsby();
  left_out.leave_out = {0};
  const std::vector<std::tuple<std::string, AdapterConfig, FusionConfig>> cases = {
      {"houlsby-dynamic", AdapterConfig::houlsby(), FusionConfig::dynamic()},
      {"pfeiffer-static", AdapterConfig::pfeiffer(), FusionConfig::static_fusion()},
      {"pfeiffer-variant", AdapterConfig::pfeiffer(), variant},
      {"houlsby-leave-out", left_out, FusionConfig::dynamic()}};
  for (const auto& [label, adapter, fusion] : cases) {
    auto model = fused_model({"sst2", "mrpc", "cola"}, adapter, fusion);
    model->bert->set_active_adapter("sst2,mrpc,cola");
    const std::string dir = fresh_dir("reference_" + label);
    // The base with the fusion task's own LayerNorms and head in place of the base's, and the
    // adapters and fusion layers under AdapterHub's names: what Python would hold.
    std::map<std::string, bool> from_copy;
    for (const auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == std::string("sst2,mrpc,cola") &&
          !is_fusion_parameter(item.key()))
        from_copy[shared_parameter_name(item.key())] = true;
    }
    NamedTensors chosen;
    for (const auto& item : model->named_parameters()) {
      const std::string name = shared_parameter_name(item.key());
      const std::optional<std::string> task = parameter_task(item.key());
      const bool adapter_or_fusion =
          is_adapter_parameter(item.key()) || is_fusion_parameter(item.key());
      if (adapter_or_fusion || (task == std::string("sst2,mrpc,cola")) ||
          (!task && !from_copy.count(name))) {
        chosen.emplace_back(name, item.value().detach());
      }
    }
    save_safetensors(dir + "/model.safetensors", chosen);
    write_file_atomic(dir + "/config.json", model->bert->config().to_json_string());
    nlohmann::json setup = {{"fusion", "sst2,mrpc,cola"},
                            {"fusion_config", nlohmann::json::parse(fusion.to_json_string())}};
    for (const char* name : {"sst2", "mrpc", "cola"})
      setup["adapters"][name] = nlohmann::json::parse(adapter.to_json_string());
    write_file_atomic(dir + "/setup.json", setup.dump());
    const torch::Tensor input_ids = ids(2, 9);
    torch::Tensor mask = torch::ones({2, 9}, torch::kLong);
    mask[0].narrow(0, 6, 3).zero_();
    const torch::Tensor types = torch::zeros({2, 9}, torch::kLong);
    save_safetensors(
        dir + "/inputs.safetensors",
        {{"input_ids", input_ids}, {"attention_mask", mask}, {"token_type_ids", types}});
    torch::NoGradGuard no_grad;
    save_safetensors(dir + "/expected.safetensors", {{"logits", model(input_ids, mask, types)}});
    EXPECT_EQ(std::system(("/usr/bin/python3 " + script + " check '" + dir + "'").c_str()), 0)
        << label;
  }
}

TEST(Fusion, RefusesWhatItCannotFuse) {
  torch::manual_seed(1);
  BertModel model(testing::tiny_config_without_dropout());
  model->add_adapter("a", AdapterConfig::houlsby());
  model->add_adapter("b", AdapterConfig::houlsby());
  model->add_adapter("p", AdapterConfig::pfeiffer());
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a"}), "at least two");
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a", "ghost"}), "ghost");
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a", "a"}), "twice");
  // Houlsby has an adapter after attention, Pfeiffer none: AdapterHub cannot fuse them either.
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a", "p"}), "placed alike");
  EXPECT_EQ(model->adapter_names(), (std::vector<std::string>{"a", "b", "p"}));  // unchanged
  model->add_fusion({"a", "b"});
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a", "b"}), "already exists");
  EXPECT_ERROR_CONTAINS(model->add_fusion({"a,b", "p"}), "fuses adapters only");
  EXPECT_ERROR_CONTAINS(model->remove_adapter("a"), "remove the fusion first");
  EXPECT_ERROR_CONTAINS(model->add_adapter("c,d", AdapterConfig::houlsby()), "no ','");
  EXPECT_ERROR_CONTAINS(model->fusion_regularization_loss("a"), "not a fusion");
  model->remove_adapter("a,b");
  model->remove_adapter("a");  // nothing fuses it any more
  for (const auto& item : model->named_parameters()) {
    EXPECT_EQ(item.key().find("adapter_fusion_layer"), std::string::npos) << item.key();
  }
}

TEST(Fusion, SetupsParseAndNestingIsCheckedWithClearErrors) {
  EXPECT_EQ(parse_adapter_setup("Fuse(a, b)").children.at(0).adapters,
            (std::vector<std::string>{"a,b"}));
  const AdapterSetup stacked = parse_adapter_setup("Stack(lang, Fuse(a, b, c))");
  EXPECT_EQ(stacked.children.at(0).adapters, (std::vector<std::string>{"lang", "a,b,c"}));
  EXPECT_EQ(stacked.children.at(0).describe(), "Stack(lang, Fuse(a, b, c))");
  const AdapterSetup parallel = parse_adapter_setup("Parallel(Fuse(a, b), c)");
  EXPECT_EQ(parallel.kind, AdapterSetup::Kind::kParallel);
  EXPECT_EQ(parallel.children.at(0).adapters, (std::vector<std::string>{"a,b"}));
  // Fuse over Stack or over Parallel: refused when parsed, never a crash (adapters#574, #496).
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Fuse(Stack(a, b), c)"),
                        "Stack is not supported inside a Fuse");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Fuse(Parallel(a, b), c)"),
                        "Parallel is not supported inside a Fuse");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Fuse(a)"), "at least two");
  EXPECT_ERROR_CONTAINS(parse_adapter_setup("Stack(Fuse(a, Fuse(b, c)), d)"),
                        "Fuse is not supported inside a Fuse");
}

TEST(Fusion, StackBelowAndParallelBesideEqualSeparateRuns) {
  auto model = fused_model({"a", "b"}, AdapterConfig::houlsby());
  model->add_task("lang", AdapterConfig::houlsby(), HeadConfig::classification({"u", "v"}));
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == std::string("lang")) item.value().normal_(0, 0.2);
    }
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor input = ids(3, 6);
  const torch::Tensor mask = torch::ones({3, 6}, torch::kLong);
  const torch::Tensor types = torch::zeros({3, 6}, torch::kLong);
  model->bert->set_active_adapter("a,b");
  const torch::Tensor fused = model(input, mask, types);
  model->bert->set_active_adapter("lang");
  const torch::Tensor lang = model(input, mask, types);
  // Parallel(Fuse(a, b), lang) gives each branch what it gives alone.
  const AdapterSetup parallel = parse_adapter_setup("Parallel(Fuse(a, b), lang)");
  auto outputs = model->forward_routed(input, mask, types, parallel.routing(3));
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_LT(max_abs_diff(outputs[0], fused), 1e-5);
  EXPECT_LT(max_abs_diff(outputs[1], lang), 1e-5);
  // Stack(lang, Fuse(a, b)) runs the fusion on lang's output: not the fusion alone, and its
  // head is the fusion's.
  model->bert->set_active_stack(parse_adapter_setup("Stack(lang, Fuse(a, b))").children.at(0));
  const torch::Tensor stacked = model(input, mask, types);
  EXPECT_EQ(stacked.size(1), 2);
  EXPECT_GT(max_abs_diff(stacked, fused), 1e-4);
}

TEST(Fusion, PackIsInAdapterHubsFusionLayoutAndLoadsBackExactly) {
  auto model = fused_model({"sst2", "rte"}, AdapterConfig::pfeiffer());
  const std::string dir = fresh_dir("pack");
  for (const char* name : {"sst2", "rte"}) save_adapter_pack(model, name, dir + "/" + name);
  save_adapter_pack(model, "sst2,rte", dir + "/fusion");
  for (const char* file : {"adapter_fusion_config.json", "model_adapter_fusion.safetensors",
                           "head_config.json", "model_head.safetensors"}) {
    EXPECT_TRUE(file_exists(dir + "/fusion/" + file)) << file;
  }
  EXPECT_FALSE(file_exists(dir + "/fusion/adapter_config.json"));
  const nlohmann::json config =
      nlohmann::json::parse(read_file(dir + "/fusion/adapter_fusion_config.json"));
  EXPECT_EQ(config.at("name"), "sst2,rte");
  EXPECT_EQ(config.at("config").at("value"), true);
  std::set<std::string> names;
  for (const auto& [name, tensor] :
       load_safetensors(dir + "/fusion/model_adapter_fusion.safetensors"))
    names.insert(name);
  EXPECT_TRUE(
      names.count("bert.encoder.layer.0.output.adapter_fusion_layer.sst2,rte.query.weight"));
  EXPECT_TRUE(
      names.count("bert.encoder.layer.2.output.adapter_fusion_layer.sst2,rte.value.weight"));
  EXPECT_TRUE(names.count("bert.encoder.layer.1.output.LayerNorm.weight"));  // its own copy
  for (const auto& name : names) EXPECT_EQ(name.find(".adapters."), std::string::npos) << name;

  const AdapterPackInfo info = read_adapter_pack_info(dir + "/fusion");
  ASSERT_TRUE(info.fusion.has_value());
  EXPECT_EQ(info.fused, (std::vector<std::string>{"sst2", "rte"}));
  // Fusion packs load after the adapter packs, whatever order they were given in.
  EXPECT_EQ(pack_load_order({info, read_adapter_pack_info(dir + "/rte"), info,
                             read_adapter_pack_info(dir + "/sst2")}),
            (std::vector<size_t>{1, 3, 0, 2}));
  // Tools check a set of packs before they load a base.
  EXPECT_ERROR_CONTAINS(check_fused_adapters({info, read_adapter_pack_info(dir + "/rte")},
                                             {dir + "/fusion", dir + "/rte"}),
                        "fusion: the fusion sst2,rte needs the adapters it fuses; sst2 not loaded");
  check_fused_adapters(
      {info, read_adapter_pack_info(dir + "/rte"), read_adapter_pack_info(dir + "/sst2")},
      {dir + "/fusion", dir + "/rte", dir + "/sst2"});

  torch::manual_seed(99);
  BertForSequenceClassification fresh(testing::tiny_config_without_dropout(),
                                      HeadConfig::classification({"a", "b"}));
  for (const auto& item : model->named_parameters()) {
    if (!parameter_task(item.key()) && fresh->named_parameters().contains(item.key())) {
      torch::NoGradGuard no_grad;
      fresh->named_parameters()[item.key()].copy_(item.value());
    }
  }
  fresh->eval();
  EXPECT_ERROR_CONTAINS(load_adapter_pack(fresh, dir + "/fusion"), "load their adapter packs");
  EXPECT_TRUE(fresh->bert->adapter_names().empty());  // nothing half-loaded
  load_adapter_pack(fresh, dir + "/sst2");
  load_adapter_pack(fresh, dir + "/rte");
  EXPECT_ERROR_CONTAINS(load_adapter_pack(fresh, dir + "/fusion", std::string("other")),
                        "cannot load as");
  AdapterPackLoad load = load_adapter_pack(fresh, dir + "/fusion");
  EXPECT_TRUE(load.warnings.empty());
  EXPECT_EQ(load.adapter_name, "sst2,rte");
  EXPECT_EQ(fresh->bert->active_adapter(), std::string("sst2,rte"));
  model->bert->set_active_adapter("sst2,rte");
  const torch::Tensor input = ids(4, 8);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(fresh(input), model(input)));
}

TEST(Fusion, TrainingTheFusionLeavesTheFusedAdaptersAndTheBaseAlone) {
  auto model = fused_model({"a", "b"}, AdapterConfig::houlsby());
  model->train();
  const int64_t trainable = prepare_task_training(*model, "a,b", FreezePolicy{});
  int64_t fusion_and_own = 0;
  for (const auto& item : model->named_parameters()) {
    const bool own = parameter_task(item.key()) == std::string("a,b");
    EXPECT_EQ(item.value().requires_grad(), own) << item.key();
    if (own) fusion_and_own += item.value().numel();
  }
  EXPECT_EQ(trainable, fusion_and_own);
  // What the fusion runs: the base, its own tensors and the adapters it fuses (not their heads).
  const ParameterReport report = parameter_report(*model, std::string("a,b"));
  EXPECT_EQ(report.trainable(), trainable);
  int64_t runs = 0;
  for (const auto& item : model->named_parameters()) {
    const std::optional<std::string> task = parameter_task(item.key());
    if (!task ? item.key().rfind("classifier.", 0) != 0
              : *task == "a,b" || is_adapter_parameter(item.key())) {
      runs += item.value().numel();
    }
  }
  EXPECT_EQ(report.total(), runs);
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : model->named_parameters())
    before[item.key()] = item.value().detach().clone();
  model->bert->set_active_adapter("a,b");
  torch::optim::SGD sgd(trainable_parameters(*model), torch::optim::SGDOptions(0.1));
  const torch::Tensor input = ids(4, 8);
  torch::Tensor loss = model->loss(model(input), torch::tensor({0, 1, 1, 0}));
  loss = loss + model->bert->fusion_regularization_loss("a,b");
  loss.backward();
  sgd.step();
  for (const auto& item : model->named_parameters()) {
    const bool changed = !torch::equal(item.value(), before[item.key()]);
    if (is_fusion_parameter(item.key()) && item.key().find("value") != std::string::npos) {
      EXPECT_TRUE(changed) << item.key();
    }
    if (parameter_task(item.key()) != std::string("a,b")) {
      EXPECT_FALSE(changed) << item.key();
    }
  }
}

}  // namespace
}  // namespace adaptertune
