#pragma once
// Dev evaluation with AdapterDrop's frozen-layer cache: the trainers evaluate the same dev data
// many times, and with the adapter left out of the lowest layers those layers give every
// evaluation the same outputs. These give what evaluate() and predict_squad() give, with the
// outputs of the layers `cache` holds taken from it (its first use computes and keeps them).

#include <cstdint>
#include <map>
#include <string>

#include <c10/core/Device.h>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/squad.h"
#include "adaptertune/tasks/squad_features.h"
#include "adaptertune/text/tokenizer.h"
#include "adaptertune/training/trainer.h"

namespace adaptertune {
class ProcessGroup;
}  // namespace adaptertune

namespace adaptertune::detail {

class FrozenLayerCache;

/// evaluate(), the cached layers' outputs from `cache` (null: computed, as evaluate()). The
/// cache must hold rows for `data`'s examples only, kept without their padding (nothing here
/// reads a padded position: the sequence head reads the first).
EvalResult evaluate_cached(BertForSequenceClassification& model, const TaskDescription& task,
                           const EncodedDataset& data, int64_t batch_size, c10::Device device,
                           Precision precision, int64_t pad_id, ProcessGroup* group,
                           FrozenLayerCache* cache);

/// predict_squad() on `features`, the cached layers' outputs from `cache` (null: computed), a
/// row per window, kept without its padding (the answers read each window's own positions only).
std::map<std::string, SquadAnswerPrediction> predict_squad_cached(
    BertForQuestionAnswering& model, const SquadDataset& data, const SquadFeatures& features,
    const Tokenizer& tokenizer, const SquadAnswerOptions& answers, int64_t batch_size,
    c10::Device device, Precision precision, ProcessGroup* group, FrozenLayerCache* cache);

}  // namespace adaptertune::detail
