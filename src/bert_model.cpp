#include "adaptertune/bert_model.h"

#include <cstdio>
#include <limits>
#include <new>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "adaptertune/error.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/precision.h"
#include "adaptertune/runtime.h"
#include "shape_check.h"

namespace adaptertune {

namespace {

double lowest_finite(torch::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf:
      return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case at::kBFloat16:
      return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kFloat:
      return std::numeric_limits<float>::lowest();
    default:
      throw Error(std::string("attention mask: unsupported compute dtype ") + c10::toString(dtype));
  }
}

}  // namespace

torch::Tensor make_additive_attention_mask(const torch::Tensor& attention_mask,
                                           torch::ScalarType dtype) {
  // The lowest finite value rather than -inf: a row of padding then softmaxes to a uniform
  // distribution instead of NaN, as in Hugging Face.
  torch::Tensor keep = attention_mask.to(dtype).unsqueeze(1).unsqueeze(1);
  return (1.0 - keep) * lowest_finite(dtype);
}

void init_bert_weights(torch::nn::Module& module, double std) {
  torch::NoGradGuard no_grad;
  auto init_one = [std](torch::nn::Module& child) {
    if (auto* linear = child.as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, std);
      if (linear->bias.defined()) linear->bias.zero_();
    } else if (auto* embedding = child.as<torch::nn::Embedding>()) {
      embedding->weight.normal_(0.0, std);
      if (auto pad = embedding->options.padding_idx()) embedding->weight[*pad].zero_();
    } else if (auto* norm = child.as<torch::nn::LayerNorm>()) {
      norm->weight.fill_(1.0);
      norm->bias.zero_();
    }
  };
  // `module` itself is visited by hand: named_modules() can only include it when it is owned by
  // a shared_ptr, which is not yet the case inside a constructor.
  init_one(module);
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    // Adapters keep the init their config asks for.
    if (is_adapter_parameter(item.key())) continue;
    init_one(*item.value());
  }
}

namespace {

// A config whose weights do not fit in memory gets one line saying what to reduce, not
// LibTorch's allocator trace.
[[noreturn]] void throw_too_large(const BertConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  const double parameters =
      h * static_cast<double>(c.vocab_size + c.max_position_embeddings + c.type_vocab_size) +
      static_cast<double>(c.num_hidden_layers) *
          (4 * h * h + 2 * h * static_cast<double>(c.intermediate_size));
  char size[32];
  std::snprintf(size, sizeof size, "%.1f GB", parameters * 4 / 1e9);
  throw Error("not enough memory for the model's weights (about " + std::string(size) +
              " in float32: hidden_size " + std::to_string(c.hidden_size) + ", intermediate_size " +
              std::to_string(c.intermediate_size) + ", " + std::to_string(c.num_hidden_layers) +
              " layers, vocab_size " + std::to_string(c.vocab_size) +
              "); reduce hidden_size, intermediate_size, num_hidden_layers or vocab_size");
}

// Whether LibTorch's error is its allocator's (it throws c10::Error, not std::bad_alloc).
bool is_allocation_failure(const c10::Error& e) {
  return std::string(e.what_without_backtrace()).find("allocate") != std::string::npos;
}

[[noreturn]] void throw_adapter_too_large(const std::string& name, const AdapterConfig& config,
                                          int64_t hidden_size) {
  const int64_t bottleneck = config.bottleneck_size(hidden_size);
  char size[32];
  std::snprintf(size, sizeof size, "%.1f GB",
                2.0 * static_cast<double>(hidden_size) * static_cast<double>(bottleneck) * 4 / 1e9);
  throw Error("adapter \"" + name + "\": not enough memory for its weights (bottleneck " +
              std::to_string(bottleneck) + " at hidden size " + std::to_string(hidden_size) +
              ": about " + size + " in float32 per adapter); " +
              (config.adapter_size ? "lower adapter_size" : "raise reduction_factor"));
}

}  // namespace

BertModelImpl::BertModelImpl(BertConfig config, bool add_pooling_layer)
    : config_(std::move(config)) {
  ensure_default_threads();
  config_.validate();
  try {
    embeddings = register_module("embeddings", BertEmbeddings(config_));
    encoder = register_module("encoder", BertEncoder(config_));
    if (add_pooling_layer) pooler = register_module("pooler", BertPooler(config_));
  } catch (const std::bad_alloc&) {
    throw_too_large(config_);
  } catch (const c10::Error& e) {
    if (!is_allocation_failure(e)) throw;
    throw_too_large(config_);
  }
  init_bert_weights(*this, config_.initializer_range);
}

namespace {

// What forward() runs: the active task, or the Stack it tops.
TaskRouting active_routing(const AdapterSet& tasks) {
  return tasks.active_stack().size() > 1 ? TaskRouting::stack(Stack(tasks.active_stack()))
                                         : TaskRouting::whole_batch(tasks.active());
}

torch::Tensor additive_mask_for(const torch::Tensor& attention_mask, const torch::Tensor& like) {
  if (!attention_mask.defined()) return {};
  // Built once in the dtype attention scores will have, so that no layer casts it again and
  // fp16 gets fp16's lowest value rather than float's, which would overflow to -inf.
  return make_additive_attention_mask(attention_mask,
                                      matmul_dtype(like.device(), like.scalar_type()));
}

}  // namespace

BertModelOutput BertModelImpl::forward(const torch::Tensor& input_ids,
                                       const torch::Tensor& attention_mask,
                                       const torch::Tensor& token_type_ids,
                                       LastLayerOutput output) {
  return forward_routed(input_ids, attention_mask, token_type_ids, active_routing(tasks_), output);
}

torch::Tensor BertModelImpl::lower_hidden_states(const torch::Tensor& input_ids,
                                                 const torch::Tensor& attention_mask,
                                                 const torch::Tensor& token_type_ids,
                                                 int64_t layers) {
  if (layers < 0 || layers > config_.num_hidden_layers) {
    throw Error("lower_hidden_states: " + std::to_string(layers) + " layers of " +
                std::to_string(config_.num_hidden_layers));
  }
  const TaskRouting routing = active_routing(tasks_);
  torch::Tensor hidden = embeddings(input_ids, token_type_ids, routing);
  if (attention_mask.defined()) {
    detail::check_same_shape_and_device(attention_mask, input_ids, "attention_mask", "input_ids");
  }
  return encoder->run_layers(hidden, additive_mask_for(attention_mask, hidden), routing, 0,
                             static_cast<size_t>(layers));
}

BertModelOutput BertModelImpl::forward_from(const torch::Tensor& hidden,
                                            const torch::Tensor& attention_mask,
                                            int64_t first_layer, LastLayerOutput output) {
  if (first_layer < 0 || first_layer > config_.num_hidden_layers) {
    throw Error("forward_from: layer " + std::to_string(first_layer) + " of " +
                std::to_string(config_.num_hidden_layers));
  }
  if (hidden.dim() != 3 || hidden.size(2) != config_.hidden_size || !hidden.is_floating_point() ||
      (attention_mask.defined() &&
       (attention_mask.size(0) != hidden.size(0) || attention_mask.size(1) != hidden.size(1)))) {
    throw Error("forward_from: hidden states must be floating point [batch, seq, " +
                std::to_string(config_.hidden_size) + "] matching the attention mask, got " +
                detail::tensor_string(hidden));
  }
  const at::Device device = embeddings->word_embeddings->weight.device();
  detail::check_device(hidden, "forward_from: hidden states", device, "the model's weights");
  if (attention_mask.defined()) {
    detail::check_device(attention_mask, "attention_mask", device, "the model's weights");
  }
  const TaskRouting routing = active_routing(tasks_);
  BertModelOutput out;
  out.last_hidden_state =
      encoder->run_layers(hidden, additive_mask_for(attention_mask, hidden), routing,
                          static_cast<size_t>(first_layer), encoder->size(), output);
  if (pooler) out.pooler_output = pooler(out.last_hidden_state, routing);
  return out;
}

BertModelOutput BertModelImpl::forward_routed(const torch::Tensor& input_ids,
                                              const torch::Tensor& attention_mask,
                                              const torch::Tensor& token_type_ids,
                                              const TaskRouting& routing, LastLayerOutput output) {
  for (const auto& group : routing.groups()) {
    tasks_.check_known(group.task);
    for (const auto& adapter : group.stack) tasks_.check_known(adapter);
  }
  if (routing.batch_size() > 0 && input_ids.dim() >= 1 &&
      routing.batch_size() != input_ids.size(0)) {
    throw Error("BertModel: the task routing is for " + std::to_string(routing.batch_size()) +
                " examples, input_ids has " + std::to_string(input_ids.size(0)));
  }
  torch::Tensor hidden = embeddings(input_ids, token_type_ids, routing);
  if (attention_mask.defined()) {
    detail::check_same_shape_and_device(attention_mask, input_ids, "attention_mask", "input_ids");
  }
  const torch::Tensor additive_mask = additive_mask_for(attention_mask, hidden);
  BertModelOutput out;
  out.last_hidden_state =
      encoder->run_layers(hidden, additive_mask, routing, 0, encoder->size(), output);
  if (pooler) out.pooler_output = pooler(out.last_hidden_state, routing);
  return out;
}

void BertModelImpl::add_adapter(const std::string& name, const AdapterConfig& config) {
  config.validate();
  config.bottleneck_size(config_.hidden_size);  // throws for a size below 1
  if (!config.leave_out.empty() && config.leave_out.back() >= config_.num_hidden_layers) {
    throw Error("adapter \"" + name + "\": leave_out names layer " +
                std::to_string(config.leave_out.back()) + " but the model has " +
                std::to_string(config_.num_hidden_layers) + " layers (0 to " +
                std::to_string(config_.num_hidden_layers - 1) + ")");
  }
  TaskEntry entry;
  entry.name = name;
  entry.adapter = config;
  tasks_.add(entry);  // checks the name
  // All or nothing: a failure part way (memory) takes out the layers' adapters added so far, so
  // the other tasks see the model as it was.
  try {
    for (size_t i = 0; i < encoder->size(); ++i) {
      if (!config.in_layer(static_cast<int64_t>(i))) continue;  // AdapterDrop: none here
      BertLayer layer = encoder->at(i);
      if (config.mh_adapter) layer->attention->output->add_adapter(name, config);
      if (config.output_adapter) layer->output->add_adapter(name, config);
    }
  } catch (const std::bad_alloc&) {
    remove_adapter(name);
    throw_adapter_too_large(name, config, config_.hidden_size);
  } catch (const c10::Error& e) {
    remove_adapter(name);
    if (!is_allocation_failure(e)) throw;
    throw_adapter_too_large(name, config, config_.hidden_size);
  } catch (...) {
    remove_adapter(name);
    throw;
  }
  if (!tasks_.active()) tasks_.set_active(name);
}

std::string BertModelImpl::add_fusion(const std::vector<std::string>& adapters,
                                      const FusionConfig& config) {
  config.validate();
  const std::string name = fusion_name(adapters);
  TaskEntry entry;
  entry.name = name;
  entry.fusion = config;
  entry.fused = adapters;
  if (adapters.size() < 2) throw Error("fusion \"" + name + "\": needs at least two adapters");
  for (const auto& adapter : adapters) {
    if (tasks_.at(adapter).is_fusion()) {
      throw Error("fusion \"" + name + "\": \"" + adapter +
                  "\" is a fusion; a fusion fuses adapters only");
    }
  }
  // The sites: every fused adapter must have one where any has one.
  std::vector<int64_t> leave_out;
  for (size_t i = 0; i < encoder->size(); ++i) {
    BertLayer layer = encoder->at(i);
    bool any = false;
    for (const auto& [site, where] :
         {std::pair<SublayerOutput, const char*>{layer->attention->output, "attention output"},
          std::pair<SublayerOutput, const char*>{layer->output, "output"}}) {
      std::string with, without;
      for (const auto& adapter : adapters) {
        std::string& list = site->has_adapter(adapter) ? with : without;
        list += (list.empty() ? "" : ", ") + adapter;
      }
      if (!with.empty() && !without.empty()) {
        throw Error("fusion \"" + name + "\": at layer " + std::to_string(i) + "'s " + where + " " +
                    with + " has an adapter but " + without +
                    " has none; only adapters placed alike can be fused");
      }
      any = any || !with.empty();
    }
    if (!any) leave_out.push_back(static_cast<int64_t>(i));
  }
  entry.adapter = tasks_.at(adapters.back()).adapter;
  entry.adapter.leave_out = leave_out;
  tasks_.add(entry);  // checks the name and the adapters
  const double dropout = config_.attention_probs_dropout_prob;
  try {  // all or nothing, as add_adapter()
    for (size_t i = 0; i < encoder->size(); ++i) {
      BertLayer layer = encoder->at(i);
      for (SublayerOutput site : {layer->attention->output, layer->output}) {
        if (site->has_adapter(adapters.front())) site->add_fusion(name, adapters, config, dropout);
      }
    }
  } catch (...) {
    remove_adapter(name);
    throw;
  }
  return name;
}

torch::Tensor BertModelImpl::fusion_regularization_loss(const std::string& name) const {
  const TaskEntry& entry = tasks_.at(name);
  if (!entry.is_fusion()) throw Error("\"" + name + "\" is an adapter, not a fusion");
  torch::Tensor total;
  if (!entry.fusion->regularization) return total;
  for (size_t i = 0; i < encoder->size(); ++i) {
    BertLayer layer = encoder->at(i);
    for (SublayerOutput site : {layer->attention->output, layer->output}) {
      AdapterFusion fusion = site->fusion(name);
      if (!fusion) continue;
      torch::Tensor loss = fusion->regularization_loss();
      if (loss.defined()) total = total.defined() ? total + loss : loss;
    }
  }
  return total;
}

void BertModelImpl::add_layer_norm_copies(const std::string& name) {
  TaskEntry& entry = tasks_.at(name);
  if (entry.layer_norms) return;
  // Copies go where the task's adapter is: layers it leaves out (and, with layer 0, the
  // embeddings) run exactly as the frozen base, so their outputs can be shared and cached.
  const AdapterConfig& adapter = entry.adapter;
  if (adapter.in_layer(0)) embeddings->add_layer_norm_copy(name);
  for (size_t i = 0; i < encoder->size(); ++i) {
    if (!adapter.in_layer(static_cast<int64_t>(i))) continue;
    BertLayer layer = encoder->at(i);
    layer->attention->output->add_layer_norm_copy(name);
    layer->output->add_layer_norm_copy(name);
  }
  entry.layer_norms = true;
}

void BertModelImpl::add_pooler_copy(const std::string& name) {
  TaskEntry& entry = tasks_.at(name);
  if (entry.pooler) return;
  if (!pooler) throw Error("task \"" + name + "\": this model has no pooler to copy");
  pooler->add_copy(name);
  entry.pooler = true;
}

void BertModelImpl::remove_adapter(const std::string& name) {
  tasks_.remove(name);  // throws when absent
  embeddings->remove_task(name);
  for (size_t i = 0; i < encoder->size(); ++i) {
    BertLayer layer = encoder->at(i);
    layer->attention->output->remove_task(name);
    layer->output->remove_task(name);
  }
  if (pooler) pooler->remove_task(name);
}

void BertModelImpl::set_active_stack(const Stack& stack) {
  tasks_.set_active_stack(stack.adapters);
}

void BertModelImpl::set_active_adapter(const std::optional<std::string>& name) {
  tasks_.set_active(name);
}

const AdapterConfig& BertModelImpl::adapter_config(const std::string& name) const {
  return tasks_.at(name).adapter;
}

}  // namespace adaptertune
