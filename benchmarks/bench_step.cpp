// Training-step benchmark: full fine-tuning vs adapter training at one shape, measured in one run,
// so that the ratios hold on a shared, noisy machine. Prints a table; --json adds one JSON line per
// mode.
//
//   adaptertune_bench [--device cpu|cuda] [--precision fp32|bf16|fp16] [--batch 32] [--seq 128]
//                     [--layers 12] [--hidden 768] [--heads 12] [--steps 10] [--warmup 3]
//                     [--modes full,houlsby,pfeiffer,head,forward] [--threads N] [--padded]
//                     [--drop N] [--json]
//
// Modes: full, head (training), forward (base inference), an adapter preset (houlsby, pfeiffer:
// adapter training); an adapter mode ending in -drop leaves the adapter out of the lowest
// `--drop` layers (AdapterDrop; default half the layers), and one starting with infer- measures
// inference with the adapter instead of training (e.g. infer-houlsby, infer-houlsby-drop).
// infer-parallel runs three Houlsby tasks on one input as one Parallel forward pass (the frozen
// computation below the first adapter shared), infer-separate as three forward passes.
//
// Batches: without --padded every sequence fills `seq` and no attention mask is passed (what a
// length-grouped batch without padding gets, and what Hugging Face does with an all-ones mask);
// with --padded a quarter of each sequence is padding under an attention mask.
//
// FLOP model: a forward pass costs F = tokens * (2 * linear weights + 4 * layers * seq * hidden)
// (matmuls only). Full fine-tuning does forward + input gradients + weight gradients, about 3F;
// adapter training skips the frozen weights' gradients, about 2F; head-only training is a forward
// pass, F; "forward" times inference alone (eval mode, no autograd). "TFLOP/s" is that useful work
// over the measured time.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#ifdef ADAPTERTUNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

namespace {

struct Options {
  std::string device = "cpu";
  std::string precision = "fp32";
  int64_t batch = 32, seq = 128, layers = 12, hidden = 768, heads = 12;
  int steps = 10, warmup = 3, threads = 0;
  std::vector<std::string> modes = {"full", "houlsby", "pfeiffer", "head"};
  /// Layers without the adapter in the -drop modes (-1: half of them).
  int64_t drop = -1;
  bool json = false;
  bool padded = false;
};

struct Result {
  std::string mode;
  double median_ms = 0, min_ms = 0;
  int64_t trainable = 0, total = 0;
  double useful_flops = 0;
  double peak_mib = -1;
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--json" || flag == "--padded") {
      (flag == "--json" ? o.json : o.padded) = true;
      continue;
    }
    if (i + 1 >= argc) throw atune::Error(flag + " needs a value");
    std::string v = argv[++i];
    if (flag == "--device")
      o.device = v;
    else if (flag == "--precision")
      o.precision = v;
    else if (flag == "--batch")
      o.batch = std::stoll(v);
    else if (flag == "--seq")
      o.seq = std::stoll(v);
    else if (flag == "--layers")
      o.layers = std::stoll(v);
    else if (flag == "--hidden")
      o.hidden = std::stoll(v);
    else if (flag == "--heads")
      o.heads = std::stoll(v);
    else if (flag == "--steps")
      o.steps = std::stoi(v);
    else if (flag == "--warmup")
      o.warmup = std::stoi(v);
    else if (flag == "--drop")
      o.drop = std::stoll(v);
    else if (flag == "--threads")
      o.threads = std::stoi(v);
    else if (flag == "--modes")
      o.modes = split(v);
    else
      throw atune::Error("unknown flag " + flag);
  }
  return o;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

Result run_mode(const Options& o, const std::string& mode, const atune::BertConfig& config,
                const torch::Device& device, atune::Precision precision) {
  torch::manual_seed(0);
  atune::BertForSequenceClassification model(config, atune::HeadConfig{});
  atune::FreezePolicy policy;
  // "infer-houlsby-drop": inference, the Houlsby preset, left out of the lowest layers.
  const bool infer = mode.rfind("infer-", 0) == 0;
  std::string preset = infer ? mode.substr(6) : mode;
  const bool drop = preset.size() > 5 && preset.compare(preset.size() - 5, 5, "-drop") == 0;
  if (drop) preset.resize(preset.size() - 5);
  // "infer-parallel" / "infer-separate": three tasks on one input (AdapterHub's Parallel).
  const bool several = infer && (preset == "parallel" || preset == "separate");
  static const std::vector<std::string> kTasks = {"t0", "t1", "t2"};
  const int64_t dropped = drop ? (o.drop >= 0 ? o.drop : o.layers / 2) : 0;
  if (mode == "full") {
    policy = atune::FreezePolicy::from_name("full");
  } else if (mode == "head" || mode == "forward") {
    policy = atune::FreezePolicy::from_name("head");
  } else if (several) {
    // Three Houlsby tasks, run as one Parallel forward pass or one after another.
    atune::AdapterConfig adapter = atune::AdapterConfig::houlsby();
    for (int64_t layer = 0; layer < dropped; ++layer) adapter.leave_out.push_back(layer);
    for (const auto& task : kTasks) model->bert->add_adapter(task, adapter);
  } else {
    atune::AdapterConfig adapter = atune::AdapterConfig::preset(preset);
    for (int64_t layer = 0; layer < dropped; ++layer) adapter.leave_out.push_back(layer);
    model->bert->add_adapter(preset, adapter);
  }
  model->to(device);
  model->train(mode != "forward" && !infer);
  if (mode == "full" || mode == "head" || mode == "forward") {
    atune::apply_freeze_policy(*model, policy);
  } else if (!several) {
    atune::prepare_task_training(*model, preset, policy);  // the task's adapters, LNs and head
  }
  atune::AdamWOptions adamw;
  adamw.lr = 1e-4;
  atune::AdamW optimizer(atune::weight_decay_groups(*model, 0.01), adamw);
  auto input = torch::randint(1, config.vocab_size, {o.batch, o.seq}, torch::kLong).to(device);
  torch::Tensor mask;
  if (o.padded) {
    mask = torch::ones({o.batch, o.seq}, torch::kLong);
    mask.narrow(1, o.seq - o.seq / 4, o.seq / 4).zero_();
    mask = mask.to(device);
  }
  auto labels = torch::randint(0, 2, {o.batch}, torch::kLong).to(device);

#ifdef ADAPTERTUNE_WITH_CUDA
  if (device.is_cuda()) {
    synchronize(device);
    c10::cuda::CUDACachingAllocator::emptyCache();
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
  }
#endif
  std::vector<double> times;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    synchronize(device);
    auto start = std::chrono::steady_clock::now();
    if (mode == "forward" || infer) {
      torch::NoGradGuard no_grad;
      atune::AutocastGuard autocast(device, precision);
      if (several && preset == "parallel") {
        model->forward_routed(input, mask, {},
                              atune::TaskRouting::parallel({"t0", "t1", "t2"}, o.batch));
      } else if (several) {
        for (const auto& task : kTasks) {
          model->bert->set_active_adapter(task);
          model(input, mask);
        }
      } else {
        model(input, mask);
      }
      synchronize(device);
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      if (step >= o.warmup) times.push_back(ms);
      continue;
    }
    optimizer.zero_grad();
    torch::Tensor loss;
    {
      atune::AutocastGuard autocast(device, precision);
      loss = model->loss(model(input, mask), labels);
    }
    loss.backward();
    optimizer.step();
    synchronize(device);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step >= o.warmup) times.push_back(ms);
  }
  Result r;
  r.mode = mode;
  std::sort(times.begin(), times.end());
  r.median_ms = times[times.size() / 2];
  r.min_ms = times.front();
  auto report = atune::parameter_report(*model);
  r.trainable = report.trainable();
  r.total = report.total();
  // Linear weights of the encoder and pooler (embeddings are lookups, not matmuls).
  double linear = 0;
  for (const auto& item : model->named_parameters()) {
    if (item.value().dim() == 2 && item.key().find("embeddings") == std::string::npos) {
      linear += static_cast<double>(item.value().numel());
    }
  }
  const double tokens = static_cast<double>(o.batch * o.seq);
  const double forward = tokens * (2 * linear + 4.0 * o.layers * o.seq * o.hidden);
  // Head-only training needs no backward pass through the encoder at all; adapter training
  // needs input gradients only above the lowest layer with an adapter.
  const double above = static_cast<double>(o.layers - dropped) / static_cast<double>(o.layers);
  r.useful_flops = (mode == "full"                                   ? 3.0
                    : (mode == "head" || mode == "forward" || infer) ? 1.0
                                                                     : 1.0 + above) *
                   forward;
  if (several) r.useful_flops *= 3;  // three tasks' outputs, as three separate runs compute
#ifdef ADAPTERTUNE_WITH_CUDA
  if (device.is_cuda()) {
    auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    // Index 0 is the aggregate over all pools (StatType::AGGREGATE, whose namespace moved between
    // LibTorch versions).
    r.peak_mib = static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    if (o.threads > 0) atune::set_num_threads(o.threads);
    torch::Device device(o.device);
    if (device.is_cuda() && !torch::cuda::is_available()) {
      throw atune::Error("--device cuda: CUDA is not available");
    }
    atune::Precision precision = atune::parse_precision(o.precision);
    atune::BertConfig config;
    config.num_hidden_layers = o.layers;
    config.hidden_size = o.hidden;
    config.num_attention_heads = o.heads;
    config.intermediate_size = 4 * o.hidden;
    config.max_position_embeddings = std::max<int64_t>(512, o.seq);
    config.validate();

    std::vector<Result> results;
    for (const auto& mode : o.modes) {
      static const std::set<std::string> known = {"full",
                                                  "head",
                                                  "forward",
                                                  "houlsby",
                                                  "pfeiffer",
                                                  "houlsby-drop",
                                                  "pfeiffer-drop",
                                                  "infer-houlsby",
                                                  "infer-pfeiffer",
                                                  "infer-houlsby-drop",
                                                  "infer-pfeiffer-drop",
                                                  "infer-parallel",
                                                  "infer-separate",
                                                  "infer-parallel-drop",
                                                  "infer-separate-drop"};
      if (known.count(mode) == 0) {
        throw atune::Error("unknown mode " + mode +
                           " (full, head, forward, [infer-]houlsby|pfeiffer[-drop], "
                           "infer-parallel|separate[-drop])");
      }
      results.push_back(run_mode(o, mode, config, device, precision));
    }
    double full_ms = 0;
    for (const auto& r : results) {
      if (r.mode == "full") full_ms = r.median_ms;
    }
    std::printf("adaptertune %s training-step benchmark: device %s, precision %s, %d threads\n",
                atune::version(), o.device.c_str(), o.precision.c_str(), torch::get_num_threads());
    std::printf(
        "shape: L=%lld d=%lld heads=%lld, batch %lld x seq %lld%s; %d timed steps after %d "
        "warm-up\n",
        static_cast<long long>(o.layers), static_cast<long long>(o.hidden),
        static_cast<long long>(o.heads), static_cast<long long>(o.batch),
        static_cast<long long>(o.seq), o.padded ? " (1/4 padding, masked)" : "", o.steps, o.warmup);
    std::printf("%-19s %12s %10s %10s %12s %10s %12s %10s\n", "mode", "trainable", "median ms",
                "min ms", "tokens/s", "TFLOP/s", "vs full", "peak MiB");
    for (const auto& r : results) {
      const double tokens_per_s = static_cast<double>(o.batch * o.seq) / (r.median_ms / 1000.0);
      char ratio[32] = "-";
      if (full_ms > 0) std::snprintf(ratio, sizeof ratio, "%.3f", r.median_ms / full_ms);
      char peak[32] = "-";
      if (r.peak_mib >= 0) std::snprintf(peak, sizeof peak, "%.0f", r.peak_mib);
      std::printf("%-19s %12lld %10.2f %10.2f %12.0f %10.2f %12s %10s\n", r.mode.c_str(),
                  static_cast<long long>(r.trainable), r.median_ms, r.min_ms, tokens_per_s,
                  r.useful_flops / (r.median_ms / 1000.0) / 1e12, ratio, peak);
      if (o.json) {
        std::printf(
            "{\"mode\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\",\"median_ms\":%.4f,"
            "\"min_ms\":%.4f,\"trainable\":%lld,\"total\":%lld,\"tflops\":%.4f,"
            "\"peak_mib\":%.1f}\n",
            r.mode.c_str(), o.device.c_str(), o.precision.c_str(), r.median_ms, r.min_ms,
            static_cast<long long>(r.trainable), static_cast<long long>(r.total),
            r.useful_flops / (r.median_ms / 1000.0) / 1e12, r.peak_mib);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "adaptertune_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
