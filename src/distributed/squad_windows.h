#pragma once
// Questions answered from their windows' span logits, the one pass predict_squad() (a span
// model's active task) and a Predictor's span tasks (each request routed to its task) share:
// windows batched by length, logits put in place (and gathered over a group), answers extracted.

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "adaptertune/tasks/batcher.h"
#include "adaptertune/tasks/squad.h"
#include "adaptertune/tasks/squad_features.h"
#include "adaptertune/text/tokenizer.h"

namespace adaptertune {
class ProcessGroup;
}  // namespace adaptertune

namespace adaptertune::detail {

/// The windows' encodings, in the order of `features`: what a Batcher takes.
EncodedDataset encoded_windows(const SquadFeatures& features);

/// What a span model gives one batch of windows (already on the pass's device): logits
/// [rows, seq, 2], start then end, in any floating dtype on any device.
using SpanLogits = std::function<at::Tensor(const Batch& batch)>;

/// The answers of `data`'s questions (by id) from their windows `features`: the windows batched
/// by length (`batch_size` each, padded with the tokenizer's pad id) and moved to `device`,
/// `span_logits` run on this process's share of the batches (evaluates_batch(); every batch
/// without a group), the logits gathered over `group`, then extract_squad_answers() with
/// `answers`. The caller sets up inference (eval mode, InferenceMode, autocast inside
/// `span_logits`).
std::map<std::string, SquadAnswerPrediction> answer_squad_windows(
    const SquadDataset& data, const SquadFeatures& features, const Tokenizer& tokenizer,
    const SquadAnswerOptions& answers, int64_t batch_size, c10::Device device, ProcessGroup* group,
    const SpanLogits& span_logits);

}  // namespace adaptertune::detail
