#include "training/data_parallel.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "adaptertune/distributed/process_group.h"
#include "adaptertune/training/interrupt.h"

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

}  // namespace adaptertune::detail
