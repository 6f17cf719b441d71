#pragma once
// AdapterHub's flex heads (AutoAdapterModel's `heads.<name>.<i>.*`, head_config.json with its
// settings under "config") read as the static layouts that compute the same function, the way
// AdapterHub itself maps static heads onto flex ones (its STATIC_TO_FLEX_HEAD_MAP), in reverse:
//   classification, 1 layer on the pooler's output (use_pooler)   -> classifier.*
//   classification, 2 layers, tanh, on [CLS] (AdapterHub's default) -> a pooler of the task's
//       own (bert.pooler.dense.*: dense + tanh on [CLS] is BERT's pooler) and classifier.*
//   question_answering, 1 layer                                     -> qa_outputs.*
// A flex head's dropouts sit before each layer; in evaluation they do nothing, and in training
// the layouts drop what BERT's heads drop.

#include <optional>
#include <string>

#include "adaptertune/head_config.h"
#include "adaptertune/io/safetensors.h"
#include "json_util.h"

namespace adaptertune::detail {

/// Which static layout a flex head reads as.
enum class FlexHeadLayout {
  kPooledLinear,      ///< classifier on the pooler's output
  kClsTanhTwoLayers,  ///< the task's own pooler, then the classifier
  kSpanLinear,        ///< qa_outputs on every position
};

/// What head_config.json says of a flex head.
struct FlexHead {
  /// The head's name: its tensors are `heads.<name>.<i>.*`.
  std::string name;
  /// A span head (question answering); else `head` says what it classifies.
  bool span = false;
  HeadConfig head;
  FlexHeadLayout layout = FlexHeadLayout::kPooledLinear;
  /// Whether its last layer has a bias (AdapterHub's `bias`); none reads as a zero bias.
  bool bias = true;
  /// Why it cannot be read as a static head (a head type, a layer count, an activation, a
  /// malformed setting), in words; empty when it can.
  std::string unreadable;
};

/// The flex head that `document` (head_config.json, read from `path`) describes when its
/// "config" is an object; std::nullopt for a static head ("config" null or absent). Settings
/// AdapterHub leaves out take ClassificationHead's and QuestionAnsweringHead's defaults. Never
/// throws for the settings: what cannot be read is said in `unreadable`, so that the pack's
/// adapter still loads without its head.
std::optional<FlexHead> read_flex_head(const Json& document, const std::string& path);

/// `tensors` (the head's `heads.<name>.<i>.*`, from `path`) under the static layout's names.
/// Throws Error naming `path` when `head` is unreadable, and for a tensor the layout has no
/// place for or lacks.
NamedTensors static_head_tensors(const FlexHead& head, const NamedTensors& tensors,
                                 const std::string& path);

/// The names a kClsTanhTwoLayers head's first layer takes: BERT's pooler.
extern const char* const kPoolerWeight;
extern const char* const kPoolerBias;

}  // namespace adaptertune::detail
