#pragma once
// A whole pass over a data set shared out over a ProcessGroup, as evaluation (the Trainer's, the
// QuestionAnsweringTrainer's, pretraining's held-out loss) and prediction (Predictor) do it: each
// process computes whole batches, every world_size-th one, and the results are put together on
// every process, each row as one process alone computes it.

#include <cstddef>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace adaptertune {
class ProcessGroup;
}  // namespace adaptertune

namespace adaptertune::detail {

/// Whether this process computes batch `batch` of a pass that `group` shares out: every
/// world_size-th batch, from its rank (every batch without a group). Whole batches, each as one
/// process would make it, so that every row comes out as one process computes it.
bool evaluates_batch(size_t batch, const ProcessGroup* group);

/// Puts a pass shared out with evaluates_batch() together: `tensors` (on the CPU) hold this
/// process's results, and zeros where the other processes' go; afterwards every process holds all
/// of them. A sum over `group`, exact because the other processes add zeros; `device` is the
/// group's tensors' device.
void gather_by_sum(ProcessGroup& group, const std::vector<at::Tensor>& tensors, c10::Device device);

}  // namespace adaptertune::detail
