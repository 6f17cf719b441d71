#pragma once
// What data-parallel training does the same way in every loop that trains in a ProcessGroup (the
// Trainer, the QuestionAnsweringTrainer and masked-LM pretraining): which rows of a global batch
// a process takes, how the processes' gradients become the global batch's, and how they agree to
// stop, and whose random numbers each batch's dropout draws. How they share out an evaluation is
// distributed/shared_batches.h (prediction does too).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "generator_state.h"

namespace adaptertune {
class ProcessGroup;
}  // namespace adaptertune

namespace adaptertune::detail {

/// Where the slice of a global batch of `rows` rows that process `rank` of `world` trains on
/// lies: [first, second), consecutive, as even as can be (the first processes one row more),
/// empty when the batch has fewer rows than processes.
std::pair<size_t, size_t> share_range(size_t rows, int64_t rank, int64_t world);

/// The rows of `rows` in share_range().
std::vector<size_t> share_of(const std::vector<size_t>& rows, int64_t rank, int64_t world);

/// Sums the gradients of `params` over `group`. Each process's loss was already scaled to its
/// share of the global batch, so the sum is the gradient of the global batch's mean loss. A
/// parameter that got no gradient on any process keeps none (another task's, in a multi-task
/// run: AdamW and clipping skip it). `extra` (losses, flags) is summed in the same all-reduce.
void all_reduce_gradients(ProcessGroup& group, const std::vector<at::Tensor>& params,
                          std::vector<double>& extra);

/// The end of an optimizer step in a group: the gradients of `params`, the step's `losses`
/// (summed in place) and whether any process was asked to stop (stop_requested()), all in one
/// all-reduce. Returns whether any was: every process then stops at the same step.
bool all_reduce_step(ProcessGroup& group, const std::vector<at::Tensor>& params,
                     std::vector<double>& losses);

/// Rank 0's `decision` (early stopping) on every process of `group`, so that no process stops
/// alone; `device` is the group's tensors' device.
bool rank0_decision(ProcessGroup& group, bool decision, c10::Device device);

/// One batch's dropout drawn from a stream of its own: while one lives, the default generator of
/// `device` (the CPU's included) draws from a seed made of the run's `seed`, the batch's place
/// (`epoch`, `batch`) and `stream`; the CPU generator's state comes back when it ends. So a batch
/// draws the same masks in a resumed run as in an uninterrupted one, whatever was saved, and
/// draws nothing from the CPU generator's own sequence (pretraining's masking). In a group,
/// `stream` is the rank where the processes must drop independently (each pads its own slice,
/// or at::dropout's masks follow the slice's shape: the same stream would give every slice the
/// same mask), and 0 where they share the stream and DropoutRows (dropout.h) places each slice.
class BatchDropoutStream {
 public:
  BatchDropoutStream(c10::Device device, uint64_t seed, int64_t epoch, int64_t batch,
                     int64_t stream);
  ~BatchDropoutStream();
  BatchDropoutStream(const BatchDropoutStream&) = delete;
  BatchDropoutStream& operator=(const BatchDropoutStream&) = delete;

 private:
  GeneratorState cpu_;
};

/// The Trainer's and QuestionAnsweringTrainer's dropout for batch (`epoch`, `batch`): in a group
/// of several processes, a BatchDropoutStream of this process's rank; otherwise none: a process
/// alone draws from the generators train() seeded, as it always has. From generators seeded
/// alike every process of a group would drop the same elements of its slice as the others. A
/// group does not follow one process's masks: those come from train()'s generators, the Trainer
/// pads each slice to its own longest row, and on CUDA at::dropout's masks follow the slice's
/// shape.
std::optional<BatchDropoutStream> own_dropout_stream(const ProcessGroup* group, c10::Device device,
                                                     uint64_t seed, int64_t epoch, int64_t batch);

}  // namespace adaptertune::detail
