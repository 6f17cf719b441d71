#pragma once
/// @file process_group.h
/// Data-parallel training across processes and machines, on LibTorch's c10d process groups
/// (Gloo on CPU, NCCL on CUDA where LibTorch was built with it).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace adaptertune {

/// How this process joins a group: its place in it, where the group meets, the backend.
struct DistributedOptions {
  /// This process's rank (0 … world_size-1), the number of processes, and its rank on its
  /// machine (which GPU it takes: `cuda:local_rank`).
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  /// Where the processes meet: "env://" (master_addr and master_port, as torchrun sets them in
  /// MASTER_ADDR and MASTER_PORT), "tcp://HOST:PORT", or "file:///PATH" (a file every process
  /// can reach, e.g. on a shared file system; it must not exist yet).
  std::string init_method = "env://";
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  /// Connect to the store the launcher already serves at the master address (torchrun's static
  /// rendezvous sets TORCHELASTIC_USE_AGENT_STORE=True) instead of serving it from rank 0.
  bool use_agent_store = false;
  /// "gloo", "nccl" (CUDA only), or "auto": NCCL for CUDA when this build has it, else Gloo.
  std::string backend = "auto";
  /// How long joining and every collective may wait for the other processes before the run
  /// fails with an Error (a process that died is noticed at once on Gloo).
  double timeout_seconds = 300;
  /// Gradients are summed in flat buckets of at most this many bytes (one all-reduce each).
  int64_t bucket_bytes = int64_t{25} << 20;

  /// The options the environment gives: torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
  /// MASTER_PORT and TORCHELASTIC_USE_AGENT_STORE, else Slurm's SLURM_PROCID, SLURM_NTASKS and
  /// SLURM_LOCALID (MASTER_ADDR and MASTER_PORT still apply); unset ones keep their defaults.
  /// Throws Error naming the variable when one is not a number in its range.
  static DistributedOptions from_environment();
  /// True when the environment describes a group of more than one process (WORLD_SIZE or
  /// SLURM_NTASKS above 1).
  static bool requested_by_environment();
  /// Throws Error naming the first option out of its range.
  void validate() const;
};

/// One process's membership of a group of processes that train one model together: the same
/// trainable tensors on every process, each process a share of every batch, gradients summed.
/// Construction blocks until every process has joined (or the timeout passes: Error). Every
/// collective below must be called by every process of the group in the same order. A failure
/// of another process (it exited, or did not answer within the timeout) becomes an Error naming
/// this rank and the operation, instead of a hang.
class ProcessGroup {
 public:
  /// Joins the group for tensors on `device` (the backend follows from it for "auto").
  ProcessGroup(const DistributedOptions& options, c10::Device device);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  /// Rank 0: the process that writes the run's files.
  bool is_main() const { return rank() == 0; }
  /// "gloo" or "nccl".
  const std::string& backend() const;

  /// Sums `tensors` (one device, any dtypes) over the group, in place: flattened per dtype into
  /// buckets of at most bucket_bytes, one all-reduce per bucket, all in flight together.
  /// Under NCCL every tensor must be on CUDA (this and broadcast() throw Error otherwise).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  /// Copies rank 0's `tensors` into every process's, in place.
  void broadcast(const std::vector<at::Tensor>& tensors);
  /// Returns when every process has reached it.
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Whether a process in `group` (null: alone) is the one that prints and writes for the run:
/// rank 0, or the process alone.
inline bool is_main_process(const ProcessGroup* group) {
  return group == nullptr || group->is_main();
}

}  // namespace adaptertune
