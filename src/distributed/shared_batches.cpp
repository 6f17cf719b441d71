#include "distributed/shared_batches.h"

#include <ATen/ATen.h>

#include "adaptertune/distributed/process_group.h"

namespace adaptertune::detail {

bool evaluates_batch(size_t batch, const ProcessGroup* group) {
  return group == nullptr ||
         static_cast<int64_t>(batch % static_cast<size_t>(group->world_size())) == group->rank();
}

void gather_by_sum(ProcessGroup& group, const std::vector<at::Tensor>& tensors,
                   c10::Device device) {
  std::vector<at::Tensor> on_device;
  for (const at::Tensor& t : tensors) on_device.push_back(t.to(device));
  group.all_reduce_sum(on_device);
  for (size_t i = 0; i < tensors.size(); ++i) {
    // Back in place (a no-op on the CPU, where to() returned the tensor itself).
    if (!on_device[i].is_same(tensors[i])) at::Tensor(tensors[i]).copy_(on_device[i]);
  }
}

}  // namespace adaptertune::detail
