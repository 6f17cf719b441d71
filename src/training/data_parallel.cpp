#include "training/data_parallel.h"

#include <algorithm>
#include <mutex>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "adaptertune/distributed/process_group.h"
#include "adaptertune/training/interrupt.h"
#include "splitmix64.h"

namespace adaptertune::detail {

std::pair<size_t, size_t> share_range(size_t rows, int64_t rank, int64_t world) {
  const auto n = static_cast<int64_t>(rows);
  const int64_t base = n / world, larger = n % world;
  const int64_t begin = rank * base + std::min(rank, larger);
  const int64_t size = base + (rank < larger ? 1 : 0);
  return {static_cast<size_t>(begin), static_cast<size_t>(begin + size)};
}

std::vector<size_t> share_of(const std::vector<size_t>& rows, int64_t rank, int64_t world) {
  const auto [begin, end] = share_range(rows.size(), rank, world);
  return {rows.begin() + static_cast<std::ptrdiff_t>(begin),
          rows.begin() + static_cast<std::ptrdiff_t>(end)};
}

void all_reduce_gradients(ProcessGroup& group, const std::vector<at::Tensor>& params,
                          std::vector<double>& extra) {
  // Which parameters had a gradient here, then `extra`: float64, so that losses keep their digits.
  std::vector<double> values(params.size(), 0.0);
  std::vector<at::Tensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor param = params[i];
    if (param.grad().defined()) {
      values[i] = 1;
    } else {
      param.mutable_grad() = at::zeros_like(param);
    }
    tensors.push_back(param.grad());
  }
  values.insert(values.end(), extra.begin(), extra.end());
  const c10::Device device = params.empty() ? c10::Device(c10::kCPU) : params[0].device();
  at::Tensor flags = at::tensor(values, at::kDouble).to(device);
  tensors.push_back(flags);
  group.all_reduce_sum(tensors);
  const at::Tensor sums = flags.cpu().contiguous();
  const double* sum = sums.data_ptr<double>();
  for (size_t i = 0; i < params.size(); ++i) {
    if (sum[i] == 0) at::Tensor(params[i]).mutable_grad().reset();
  }
  for (size_t i = 0; i < extra.size(); ++i) extra[i] = sum[params.size() + i];
}

bool all_reduce_step(ProcessGroup& group, const std::vector<at::Tensor>& params,
                     std::vector<double>& losses) {
  losses.push_back(stop_requested() ? 1.0 : 0.0);
  all_reduce_gradients(group, params, losses);
  const bool stop = losses.back() > 0;
  losses.pop_back();
  return stop;
}

bool rank0_decision(ProcessGroup& group, bool decision, c10::Device device) {
  at::Tensor flag = at::full({1}, decision ? 1.0f : 0.0f).to(device);
  group.broadcast({flag});
  return flag.item<float>() > 0;
}

namespace {

uint64_t batch_dropout_seed(uint64_t seed, int64_t epoch, int64_t batch, int64_t stream) {
  uint64_t x = splitmix64(seed, 0);
  for (const int64_t value : {epoch, batch, stream}) {
    x = splitmix64(x ^ static_cast<uint64_t>(value), 0);
  }
  return x;
}

}  // namespace

BatchDropoutStream::BatchDropoutStream(c10::Device device, uint64_t seed, int64_t epoch,
                                       int64_t batch, int64_t stream)
    : cpu_(at::detail::getDefaultCPUGenerator()) {
  at::Generator generator = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(batch_dropout_seed(seed, epoch, batch, stream));
}

BatchDropoutStream::~BatchDropoutStream() {
  cpu_.put_back();
}

std::optional<BatchDropoutStream> own_dropout_stream(const ProcessGroup* group, c10::Device device,
                                                     uint64_t seed, int64_t epoch, int64_t batch) {
  if (!group || group->world_size() < 2) return std::nullopt;
  return std::optional<BatchDropoutStream>(std::in_place, device, seed, epoch, batch,
                                           group->rank());
}

}  // namespace adaptertune::detail
