#pragma once
/// @file parameter_names.h
/// The rules that read a parameter's Hugging Face name: which part of the model it belongs to, and
/// which adapter. The one place these rules live; the freeze policy, the reports, checkpoints and
/// adapter packs all ask here.
///
/// Names are those of `named_parameters()`: a BertModel's (`encoder.layer.0.output.dense.weight`)
/// or, in a whole model, with the `bert.` prefix (`bert.encoder.layer.0.…`) beside its head
/// (`classifier.*`, `cls.*`). Adapters sit under `….adapters.<name>.…` (AdapterHub's layout).
///
/// A task (a named adapter) owns, beside its adapter, its own copies of the base tensors it
/// trains and its own head. A copy sits in the module whose tensor it stands for, under
/// `….tasks.<name>.`: `bert.encoder.layer.0.output.tasks.sst2.LayerNorm.weight` is task sst2's
/// copy of `bert.encoder.layer.0.output.LayerNorm.weight`, `tasks.sst2.classifier.weight` its
/// head. Removing the `tasks.<name>.` part gives the Hugging Face name, which adapter packs use.

#include <optional>
#include <string>
#include <vector>

namespace adaptertune {

/// The part of the model a parameter belongs to, derived from its Hugging Face name.
enum class ParameterGroup {
  kEmbeddings,   ///< word, position and token-type embeddings
  kAttention,    ///< query/key/value and the attention output projection
  kFeedForward,  ///< intermediate and output projections
  kLayerNorm,    ///< every LayerNorm of the base (embeddings, attention output, output)
  kAdapter,      ///< bottleneck adapters (`…adapters.<name>…`) and AdapterFusion layers
                 ///< (`…adapter_fusion_layer.<a,b,…>…`)
  kPooler,       ///< `pooler.dense`
  kHead,         ///< task or pretraining head (`classifier.*`, `cls.*`)
};

/// All groups, in report order.
const std::vector<ParameterGroup>& all_parameter_groups();
/// Lower-case name of a group ("embeddings", "attention", "ffn", "layer_norm", "adapters",
/// "pooler", "head").
std::string parameter_group_name(ParameterGroup group);
/// The group of the parameter called `name` (e.g. "bert.encoder.layer.3.output.LayerNorm.weight"
/// is kLayerNorm). Throws Error for a name that belongs to no group.
ParameterGroup classify_parameter(const std::string& name);

/// The encoder layer `name` belongs to (`bert.encoder.layer.3.…` and a task's copy or adapter
/// there: 3); std::nullopt for the embeddings, pooler and heads.
std::optional<int64_t> encoder_layer_of(const std::string& name);

/// `name` without the `bert.` prefix a whole model gives its encoder's parameters.
std::string base_parameter_name(const std::string& name);
/// Whether `name` is a parameter of any bottleneck adapter.
bool is_adapter_parameter(const std::string& name);
/// Whether `name` is a parameter of an AdapterFusion layer (`….adapter_fusion_layer.<a,b>.…`).
bool is_fusion_parameter(const std::string& name);
/// Whether `name` is a parameter of the adapter called `adapter`.
bool is_adapter_parameter(const std::string& name, const std::string& adapter);
/// `name` with task `from`'s part (`adapters.<from>.`, `adapter_fusion_layer.<from>.` or
/// `tasks.<from>.`) renamed to `to`
/// (unchanged when it is not `from`'s).
std::string rename_task_parameter(const std::string& name, const std::string& from,
                                  const std::string& to);

/// The task a parameter belongs to: the adapter's name for adapter weights, the fusion's for
/// fusion layers (`a,b`), the task's for its
/// copies of base tensors and its head (`….tasks.<task>.…`); std::nullopt for the shared base
/// and the model's own head.
std::optional<std::string> parameter_task(const std::string& name);
/// Whether `name` is a task's copy of a base tensor or its head (`….tasks.<task>.…`).
bool is_task_copy_parameter(const std::string& name);
/// The name of the tensor a task's copy stands for: `name` without its `tasks.<task>.` part
/// (unchanged for any other parameter).
std::string shared_parameter_name(const std::string& name);

}  // namespace adaptertune
