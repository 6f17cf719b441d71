#include "distributed/squad_windows.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>

#include "distributed/shared_batches.h"

namespace adaptertune::detail {

EncodedDataset encoded_windows(const SquadFeatures& features) {
  EncodedDataset data;
  for (const SquadFeature& feature : features.features) data.encodings.push_back(feature.encoding);
  return data;
}

std::map<std::string, SquadAnswerPrediction> answer_squad_windows(
    const SquadDataset& data, const SquadFeatures& features, const Tokenizer& tokenizer,
    const SquadAnswerOptions& answers, int64_t batch_size, c10::Device device, ProcessGroup* group,
    const SpanLogits& span_logits) {
  const EncodedDataset windows = encoded_windows(features);
  Batcher batcher(windows, BatcherOptions::for_inference(batch_size, tokenizer.pad_id()));
  // Every window's start logits, then its end logits, one window after another; filled where
  // this process computes (in a group, its share of the batches; zeros elsewhere until gathered).
  std::vector<int64_t> offsets(windows.encodings.size() + 1, 0);
  for (size_t w = 0; w < windows.encodings.size(); ++w) {
    offsets[w + 1] = offsets[w] + 2 * static_cast<int64_t>(windows.encodings[w].input_ids.size());
  }
  const at::Tensor spans = at::zeros({offsets.back()});
  float* const span = spans.data_ptr<float>();
  const std::vector<std::vector<size_t>> order = batcher.epoch_order(0);
  for (size_t b = 0; b < order.size(); ++b) {
    if (!evaluates_batch(b, group)) continue;
    const std::vector<size_t>& rows = order[b];
    const at::Tensor cpu =
        span_logits(batcher.make_batch(rows).to(device)).to(at::kCPU, at::kFloat).contiguous();
    for (size_t i = 0; i < rows.size(); ++i) {
      const int64_t length = (offsets[rows[i] + 1] - offsets[rows[i]]) / 2;
      const at::Tensor row = cpu[static_cast<int64_t>(i)].narrow(0, 0, length);
      const at::Tensor start = row.select(1, 0).contiguous(), end = row.select(1, 1).contiguous();
      std::copy_n(start.data_ptr<float>(), length, span + offsets[rows[i]]);
      std::copy_n(end.data_ptr<float>(), length, span + offsets[rows[i]] + length);
    }
  }
  if (group) gather_by_sum(*group, {spans}, device);
  std::vector<std::vector<float>> starts(windows.encodings.size()), ends(starts.size());
  for (size_t w = 0; w < starts.size(); ++w) {
    const int64_t length = (offsets[w + 1] - offsets[w]) / 2;
    starts[w].assign(span + offsets[w], span + offsets[w] + length);
    ends[w].assign(span + offsets[w] + length, span + offsets[w + 1]);
  }
  return extract_squad_answers(data, features, tokenizer, starts, ends, answers);
}

}  // namespace adaptertune::detail
