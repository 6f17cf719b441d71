#include "adaptertune/tasks/batcher.h"

#include <algorithm>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

#include "adaptertune/error.h"

namespace adaptertune {

EncodedDataset encode_examples(const TextDataset& data, const Tokenizer& tokenizer,
                               int64_t max_length) {
  EncodedDataset out;
  out.regression = data.task != nullptr && data.task->regression();
  for (const auto& example : data.examples) {
    Encoding e;
    try {
      e = tokenizer.encode(example.text_a, example.text_b, max_length);
    } catch (const Error& error) {
      // The tokenizer knows the text, not where it came from.
      throw Error(data.path + ":" + std::to_string(example.line) + ": " + error.what());
    }
    out.truncated += e.truncated_tokens > 0;
    out.encodings.push_back(std::move(e));
    out.indices.push_back(example.index);
    if (example.label) out.targets.push_back(static_cast<double>(*example.label));
    if (example.score) out.targets.push_back(*example.score);
  }
  if (!out.targets.empty() && out.targets.size() != out.encodings.size()) {
    throw Error(data.path + ": some rows have labels and some do not");
  }
  return out;
}

Batch Batch::to(const c10::Device& device) const {
  Batch b = *this;
  b.input_ids = input_ids.to(device);
  if (attention_mask.defined()) b.attention_mask = attention_mask.to(device);
  b.token_type_ids = token_type_ids.to(device);
  if (labels.defined()) b.labels = labels.to(device);
  return b;
}

Batch Batch::slice(int64_t begin, int64_t end) const {
  const int64_t size = input_ids.size(0);
  if (begin < 0 || begin > end || end > size) {
    throw Error("Batch::slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") are not in a batch of " + std::to_string(size));
  }
  Batch b;
  b.input_ids = input_ids.slice(0, begin, end);
  if (attention_mask.defined()) b.attention_mask = attention_mask.slice(0, begin, end);
  b.token_type_ids = token_type_ids.slice(0, begin, end);
  if (labels.defined()) b.labels = labels.slice(0, begin, end);
  b.rows.assign(rows.begin() + begin, rows.begin() + end);
  b.tokens =
      b.attention_mask.defined() ? b.attention_mask.sum().item<int64_t>() : b.input_ids.numel();
  return b;
}

BatcherOptions BatcherOptions::for_inference(int64_t batch_size, int64_t pad_id) {
  BatcherOptions options;
  options.batch_size = batch_size;
  options.shuffle = false;
  options.group_by_length = true;
  options.pad_id = pad_id;
  return options;
}

Batcher::Batcher(const EncodedDataset& data, BatcherOptions options)
    : data_(data), options_(options) {
  if (options_.batch_size < 1) throw Error("batch size must be at least 1");
  if (data_.encodings.empty()) throw Error("cannot batch an empty dataset");
}

int64_t Batcher::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(data_.encodings.size());
  return (n + options_.batch_size - 1) / options_.batch_size;
}

std::vector<std::vector<size_t>> Batcher::epoch_order(int64_t epoch) const {
  std::vector<size_t> rows(data_.encodings.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::mt19937_64 rng(options_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  if (options_.shuffle) std::shuffle(rows.begin(), rows.end(), rng);
  const auto size = static_cast<size_t>(options_.batch_size);
  if (options_.group_by_length) {
    const size_t chunk = size * 50;
    for (size_t start = 0; start < rows.size(); start += chunk) {
      auto end = rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), start + chunk));
      std::stable_sort(
          rows.begin() + static_cast<std::ptrdiff_t>(start), end, [&](size_t a, size_t b) {
            return data_.encodings[a].input_ids.size() > data_.encodings[b].input_ids.size();
          });
    }
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t start = 0; start < rows.size(); start += size) {
    batches.emplace_back(
        rows.begin() + static_cast<std::ptrdiff_t>(start),
        rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), start + size)));
  }
  if (options_.shuffle && options_.group_by_length)
    std::shuffle(batches.begin(), batches.end(), rng);
  return batches;
}

Batch Batcher::make_batch(const std::vector<size_t>& rows) const {
  size_t longest = 0;
  for (size_t r : rows) longest = std::max(longest, data_.encodings.at(r).input_ids.size());
  const auto b = static_cast<int64_t>(rows.size());
  const auto s = static_cast<int64_t>(longest);
  Batch batch;
  batch.rows = rows;
  batch.input_ids = at::full({b, s}, options_.pad_id, at::kLong);
  batch.token_type_ids = at::zeros({b, s}, at::kLong);
  at::Tensor mask = at::zeros({b, s}, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto types = batch.token_type_ids.accessor<int64_t, 2>();
  auto m = mask.accessor<int64_t, 2>();
  bool padded = false;
  for (int64_t i = 0; i < b; ++i) {
    const Encoding& e = data_.encodings[rows[static_cast<size_t>(i)]];
    padded |= e.input_ids.size() < longest;
    batch.tokens += static_cast<int64_t>(e.input_ids.size());
    for (size_t j = 0; j < e.input_ids.size(); ++j) {
      ids[i][static_cast<int64_t>(j)] = e.input_ids[j];
      types[i][static_cast<int64_t>(j)] = e.token_type_ids[j];
      m[i][static_cast<int64_t>(j)] = 1;
    }
  }
  if (padded) batch.attention_mask = mask;
  if (!data_.targets.empty()) {
    if (data_.regression) {
      batch.labels = at::empty({b}, at::kFloat);
      for (int64_t i = 0; i < b; ++i) {
        batch.labels[i] = static_cast<float>(data_.targets[rows[static_cast<size_t>(i)]]);
      }
    } else {
      batch.labels = at::empty({b}, at::kLong);
      for (int64_t i = 0; i < b; ++i) {
        batch.labels[i] = static_cast<int64_t>(data_.targets[rows[static_cast<size_t>(i)]]);
      }
    }
  }
  return batch;
}

}  // namespace adaptertune
