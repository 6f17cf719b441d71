#include "adaptertune/distributed/process_group.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ADAPTERTUNE_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef ADAPTERTUNE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"

namespace adaptertune {
namespace {

// The value of environment variable `name` as an integer in [min, max], if it is set.
std::optional<int64_t> env_integer(const char* name, int64_t min, int64_t max) {
  const char* text = std::getenv(name);
  if (!text || !*text) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || value < min || value > max) {
    throw Error("environment variable " + std::string(name) + "=" + text +
                ": expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// "tcp://HOST:PORT" into options.master_addr and master_port.
void parse_tcp_init_method(DistributedOptions& options) {
  const std::string rest = options.init_method.substr(6);
  const size_t colon = rest.rfind(':');
  const std::string port = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (colon == 0 || colon == std::string::npos || port.empty() ||
      port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5) {
    throw Error("init_method " + options.init_method + ": expected tcp://HOST:PORT");
  }
  options.master_addr = rest.substr(0, colon);
  options.master_port = std::stoll(port);
}

}  // namespace

DistributedOptions DistributedOptions::from_environment() {
  DistributedOptions options;
  const int64_t most = 1 << 20;
  const bool torchrun = std::getenv("WORLD_SIZE") != nullptr;
  if (auto v = env_integer(torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", 1, most)) {
    options.world_size = *v;
  }
  if (auto v = env_integer(torchrun ? "RANK" : "SLURM_PROCID", 0, most)) options.rank = *v;
  if (auto v = env_integer(torchrun ? "LOCAL_RANK" : "SLURM_LOCALID", 0, most)) {
    options.local_rank = *v;
  }
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) options.master_addr = addr;
  if (auto v = env_integer("MASTER_PORT", 1, 65535)) options.master_port = *v;
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) {
    options.use_agent_store = std::string(agent) == "True" || std::string(agent) == "1";
  }
  return options;
}

bool DistributedOptions::requested_by_environment() {
  const bool torchrun = std::getenv("WORLD_SIZE") != nullptr;
  const auto world = env_integer(torchrun ? "WORLD_SIZE" : "SLURM_NTASKS", 1, 1 << 20);
  return world && *world > 1;
}

void DistributedOptions::validate() const {
  const std::string owner = "DistributedOptions: ";
  if (world_size < 1) throw Error(owner + "world_size must be at least 1");
  if (rank < 0 || rank >= world_size) {
    throw Error(owner + "rank " + std::to_string(rank) + " is not in [0, world_size " +
                std::to_string(world_size) + ")");
  }
  if (local_rank < 0) throw Error(owner + "local_rank must be >= 0");
  if (master_port < 1 || master_port > 65535) {
    throw Error(owner + "master_port " + std::to_string(master_port) + " is not in [1, 65535]");
  }
  if (init_method != "env://" && init_method.rfind("tcp://", 0) != 0 &&
      init_method.rfind("file://", 0) != 0) {
    throw Error(owner + "init_method " + init_method +
                ": expected env://, tcp://HOST:PORT or file:///PATH");
  }
  if (init_method.rfind("file://", 0) == 0 && init_method.size() <= 7) {
    throw Error(owner + "init_method " + init_method + ": expected file:///PATH");
  }
  if (backend != "auto" && backend != "gloo" && backend != "nccl") {
    throw Error(owner + "backend \"" + backend + "\": expected auto, gloo or nccl");
  }
  if (!std::isfinite(timeout_seconds) || timeout_seconds <= 0) {
    throw Error(owner + "timeout_seconds must be a positive number");
  }
  if (bucket_bytes < 1) throw Error(owner + "bucket_bytes must be at least 1");
}

struct ProcessGroup::Impl {
  DistributedOptions options;
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;

  // Runs one collective, turning c10d's and Gloo's exceptions into an Error that says which
  // process saw what.
  template <typename Operation>
  void run(const char* what, Operation&& operation) {
    try {
      c10::intrusive_ptr<c10d::Work> work = operation();
      work->wait(std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000)));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("distributed: rank " + std::to_string(options.rank) + " of " +
                  std::to_string(options.world_size) + ": " + what +
                  " failed: another process exited or did not answer within " +
                  std::to_string(static_cast<int64_t>(options.timeout_seconds)) + " s (" +
                  first_line(e.what()) + ")");
    }
  }

  // NCCL moves CUDA tensors only: a tensor elsewhere (a model on the CPU in a group joined for
  // CUDA) is named here, for every collective and caller, rather than in c10d's words.
  void check_devices(const std::vector<at::Tensor>& tensors, const std::string& what) const {
    if (backend != "nccl") return;
    for (const at::Tensor& t : tensors) {
      if (!t.is_cuda()) {
        throw Error("distributed: rank " + std::to_string(options.rank) + " of " +
                    std::to_string(options.world_size) + ": " + what +
                    " over NCCL needs CUDA tensors, got one on " + t.device().str());
      }
    }
  }

  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }
};

ProcessGroup::ProcessGroup(const DistributedOptions& given, c10::Device device)
    : impl_(std::make_unique<Impl>()) {
  DistributedOptions options = given;
  options.validate();
  if (options.init_method.rfind("tcp://", 0) == 0) parse_tcp_init_method(options);
  impl_->options = options;
  std::string backend = options.backend;
  if (backend == "auto") {
#ifdef ADAPTERTUNE_WITH_NCCL
    backend = device.is_cuda() ? "nccl" : "gloo";
#else
    backend = "gloo";
#endif
  }
  if (backend == "nccl") {
#ifndef ADAPTERTUNE_WITH_NCCL
    throw Error(
        "distributed backend nccl: this build of adaptertune has no NCCL (its LibTorch "
        "has no CUDA); use gloo");
#endif
    if (!device.is_cuda())
      throw Error("distributed backend nccl needs a CUDA device, got " + device.str());
  }
  impl_->backend = backend;
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000));
  const std::string where = options.init_method.rfind("file://", 0) == 0
                                ? options.init_method
                                : options.master_addr + ":" + std::to_string(options.master_port);
  try {
    if (options.init_method.rfind("file://", 0) == 0) {
      const std::string path = options.init_method.substr(7);
      // The store retries a file it cannot create until its timeout: a missing directory (a
      // typing error, a file system not mounted) would only show after it.
      const std::string directory = path.substr(0, path.find_last_of('/') + 1);
      if (!directory.empty() && !directory_exists(directory)) {
        throw Error("distributed: init_method " + options.init_method + ": directory " + directory +
                    " does not exist");
      }
      impl_->store =
          c10::make_intrusive<c10d::FileStore>(path, static_cast<int>(options.world_size));
      impl_->store->setTimeout(timeout);  // its own default is 300 s
    } else {
      c10d::TCPStoreOptions store;
      store.port = static_cast<std::uint16_t>(options.master_port);
      store.isServer = options.rank == 0 && !options.use_agent_store;
      store.numWorkers = static_cast<size_t>(options.world_size);
      store.waitWorkers = !options.use_agent_store;
      store.timeout = timeout;
      impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store);
    }
    // Our keys apart from a launcher's in a shared store.
    auto store = c10::make_intrusive<c10d::PrefixStore>("adaptertune", impl_->store);
    if (backend == "gloo") {
#ifndef ADAPTERTUNE_WITH_GLOO
      throw Error(
          "distributed backend gloo: this build of adaptertune has no Gloo (it was built "
          "without Gloo's headers; Debian: libgloo-dev)");
#else
      auto gloo = c10d::ProcessGroupGloo::Options::create();
      gloo->timeout = timeout;
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      if (interface && *interface) {
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
      } else if (is_loopback(options.master_addr) && options.init_method.rfind("file://", 0) != 0) {
        // One machine: stay on the loopback interface.
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
          store, static_cast<int>(options.rank), static_cast<int>(options.world_size), gloo);
#endif
    } else {
#ifdef ADAPTERTUNE_WITH_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          store, static_cast<int>(options.rank), static_cast<int>(options.world_size), nccl);
#endif
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("distributed: rank " + std::to_string(options.rank) + " of " +
                std::to_string(options.world_size) + " could not join the group at " + where +
                " within " + std::to_string(static_cast<int64_t>(options.timeout_seconds)) +
                " s (" + Impl::first_line(e.what()) + ")");
  }
  // Every process has joined only when a first collective completes.
  barrier();
}

ProcessGroup::~ProcessGroup() = default;

int64_t ProcessGroup::rank() const {
  return impl_->options.rank;
}
int64_t ProcessGroup::world_size() const {
  return impl_->options.world_size;
}
const std::string& ProcessGroup::backend() const {
  return impl_->backend;
}

void ProcessGroup::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  // The results are written into the tensors themselves (parameters too), not recorded.
  c10::AutoGradMode no_grad(false);
  impl_->check_devices(tensors, "an all-reduce");
  // Buckets of one dtype each, filled in order up to bucket_bytes (a larger tensor is a bucket
  // of its own).
  std::map<at::ScalarType, std::vector<std::vector<at::Tensor>>> buckets;
  std::map<at::ScalarType, int64_t> filled;
  for (const at::Tensor& t : tensors) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    auto& list = buckets[t.scalar_type()];
    int64_t& used = filled[t.scalar_type()];
    if (list.empty() || used + bytes > impl_->options.bucket_bytes) {
      list.emplace_back();
      used = 0;
    }
    list.back().push_back(t);
    used += bytes;
  }
  std::vector<std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>>> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  try {
    for (auto& [dtype, list] : buckets) {
      for (auto& bucket : list) {
        std::vector<at::Tensor> flat_views;
        for (const auto& t : bucket) flat_views.push_back(t.reshape({-1}));
        std::vector<at::Tensor> flat{at::cat(flat_views)};
        works.push_back(impl_->group->allreduce(flat));
        flats.emplace_back(std::move(flat), bucket);
      }
    }
  } catch (const std::exception& e) {
    throw Error("distributed: rank " + std::to_string(rank()) + ": all-reduce failed (" +
                Impl::first_line(e.what()) + ")");
  }
  for (size_t i = 0; i < works.size(); ++i) {
    impl_->run("the gradient all-reduce", [&] { return works[i]; });
    const at::Tensor& flat = flats[i].first[0];
    int64_t offset = 0;
    for (const at::Tensor& t : flats[i].second) {
      t.copy_(flat.narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors) {
  c10::AutoGradMode no_grad(false);
  impl_->check_devices(tensors, "a broadcast from rank 0");
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    impl_->run("a broadcast from rank 0", [&] { return impl_->group->broadcast(one); });
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void ProcessGroup::barrier() {
  impl_->run("joining the other processes", [&] { return impl_->group->barrier(); });
}

}  // namespace adaptertune
