// Training-step benchmark: full fine-tuning vs adapter training at one shape, measured in one run,
// so that the ratios hold on a shared, noisy machine. Prints a table; --json adds one JSON line per
// mode.
//
//   adaptertune_bench [--device cpu|cuda] [--precision fp32|bf16|fp16] [--batch 32] [--seq 128]
//                     [--layers 12] [--hidden 768] [--heads 12] [--steps 10] [--warmup 3]
//                     [--modes full,houlsby,pfeiffer,head,forward] [--threads N] [--padded]
//                     [--drop N] [--lengths FILE] [--profile TRACE.json] [--system-malloc]
//                     [--float32-frozen-weights] [--joined-projections] [--all-positions]
//                     [--recompute-attention-probabilities] [--gradient-checkpointing]
//                     [--last-layer-first-position] [--json]
//
// Modes: full, head (training), forward (base inference), an adapter preset (houlsby, pfeiffer:
// adapter training); an adapter mode ending in -drop leaves the adapter out of the lowest
// `--drop` layers (AdapterDrop; default half the layers), and one starting with infer- measures
// inference with the adapter instead of training (e.g. infer-houlsby, infer-houlsby-drop).
// infer-parallel runs three Houlsby tasks on one input as one Parallel forward pass (the frozen
// computation below the first adapter shared), infer-separate as three forward passes.
// infer-dev-dynamic, infer-dev-inorder and infer-dev-maxpad run the Houlsby model over a whole
// dev set whose token counts --lengths lists (one per line; benchmarks/compare.py writes SST-2
// dev's), in batches of --batch, one "step" being one pass: dynamic sorts the examples by length
// and pads each batch to its longest, as adaptertune's Predictor batches (group_by_length);
// inorder keeps file order and pads each batch to its longest; maxpad pads everything to --seq.
// gemm measures the roofline: GFLOP/s of the model's matrix products alone ([tokens, d] x [d, d],
// [d, 4d] and [4d, d]) in --precision's dtype, 2 * M * N * K per product, through the product the
// model's Linear layers run (adaptertune::linear: oneDNN for float32 on the CPU where the build
// has it, else at::linear), so that a step's fraction of it compares like with like.
// gemm-input-grad and gemm-weight-grad time the same products' backward passes through autograd:
// `dY W` and `dY^T x`, the same operations each. Adapter training skips the weight gradients of
// the frozen encoder, full fine-tuning runs all three, so their times bound how far below a full
// step's products an adapter step's can go.
//
// Inference modes run as a Predictor does (set_up_for_inference()): every weight frozen, with
// bf16/fp16 the Linear weights stored in that dtype, the attention projections packed, the bf16
// and float32 weights' products reading copies laid out for oneDNN's kernels
// (FrozenLinearWeightsPrepacked;
// PredictorOptions::prepack_frozen_weights) unless --unpacked-weights has oneDNN lay them out
// inside every call, and the last layer computed at the first position only, all the classifier
// reads (LastLayerOutput::kFirstPosition), unless --all-positions computes every position, as
// the Python reference does. The FLOP model below counts every position either way: the work the
// reference does for the same logits.
//
// Training modes run as a TrainingEngine trains: under bf16/fp16 the frozen Linear weights are
// stored in that dtype (FrozenLinearWeightsInDtype), unless --float32-frozen-weights keeps them
// float32 (autocast casting them on every use, as before). The random base is rounded to bf16
// values, as a base loaded from bf16 files (the shipped one) holds, so that they qualify. The
// frozen attention projections are packed (FrozenProjectionsPacked), unless --joined-projections
// joins them on every step, as before; and the frozen bf16 weights' forward products read copies
// laid out for oneDNN's kernels (FrozenLinearWeightsPrepacked), unless --unpacked-weights has
// oneDNN lay them out inside every call, as before. --recompute-attention-probabilities has
// backward compute the attention probabilities again instead of keeping them
// (BertEncoderImpl::set_recompute_attention_probabilities()).
// --gradient-checkpointing turns on the encoder's gradient checkpointing for training modes.
// --last-layer-first-position has training modes compute the last layer at the first position
// only, as inference does (TrainerOptions::last_layer_first_position); the FLOP model still counts
// every position.
//
// Like the adaptertune tool, the benchmark links TCMalloc where the build has it (CMake
// ADAPTERTUNE_WITH_TCMALLOC), and otherwise runs glibc's malloc with tune_cpu_allocator()
// (runtime.h) unless --system-malloc is given; the JSON records say which ("cpu_allocator",
// "tuned_malloc").
//
// Memory: on CUDA the caching allocator's peak; on CPU the process's VmHWM (and VmRSS before the
// first mode), which measures one configuration when a process runs one mode, as compare.py does.
// --json prints one record per mode with every timed step, the fields reference_step.py prints.
//
// --profile writes a Chrome trace of the timed steps (of the last mode, when several run): on
// CUDA Kineto's, with the GPU's kernels; on the CPU the autograd profiler's, operators only.
// benchmarks/trace_summary.py sums a trace up per step, or sets ours beside reference_step.py's.
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
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#ifdef ADAPTERTUNE_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/csrc/autograd/profiler_legacy.h>

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
  /// glibc's malloc as configured by default, not tune_cpu_allocator()'s settings (a bench that
  /// links TCMalloc runs TCMalloc either way).
  bool system_malloc = false;
  bool frozen_weights_in_dtype = true;
  bool packed_projections = true;
  bool prepacked_weights = true;
  /// Inference computes the last layer at the first position only, as a Predictor does.
  bool first_position_only = true;
  bool recompute_attention_probabilities = false;
  bool gradient_checkpointing = false;
  bool train_first_position_only = false;
  /// Token counts of a dev set for the infer-dev-* modes.
  std::vector<int64_t> lengths;
  /// Where to write a Chrome trace of the timed steps: on the CPU LibTorch's autograd profiler
  /// (operators), on CUDA Kineto's (operators and the GPU's kernels, copies and fills).
  std::string profile;
};

/// Records the timed steps of one mode into a Chrome trace (--profile), which
/// benchmarks/trace_summary.py sums up. On CUDA it is Kineto's profiler, which records the GPU's
/// kernels, copies and fills with the operators that launched them: where a step's GPU time goes,
/// which operator times alone do not show (a launch returns before its kernel runs). On the CPU it
/// is LibTorch's autograd profiler, operators only, since Debian's LibTorch is built without
/// Kineto and the operators are where the CPU's time goes.
class TraceRecorder {
 public:
  TraceRecorder(std::string path, torch::Device device) : path_(std::move(path)), device_(device) {}
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;
  ~TraceRecorder() {
    if (!kineto_) return;
    try {
      torch::autograd::profiler::disableProfiler();  // a mode that threw: no trace
    } catch (const std::exception&) {
      // The mode's own error, already on its way out, is the one to report.
    }
  }

  void start() {
    if (path_.empty()) return;
    if (!device_.is_cuda()) {
      legacy_ = std::make_unique<torch::autograd::profiler::RecordProfile>(path_);
      return;
    }
    namespace impl = torch::profiler::impl;
    const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
    const std::set<impl::ActivityType> activities = {impl::ActivityType::CPU,
                                                     impl::ActivityType::CUDA};
    torch::autograd::profiler::prepareProfiler(config, activities);
    torch::autograd::profiler::enableProfiler(config, activities);
    kineto_ = true;
  }

  /// Writes the trace.
  void stop() {
    legacy_.reset();
    if (!kineto_) return;
    kineto_ = false;
    torch::autograd::profiler::disableProfiler()->save(path_);
  }

 private:
  std::string path_;
  torch::Device device_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> legacy_;
  bool kineto_ = false;
};

struct Result {
  std::string mode;
  double median_ms = 0, min_ms = 0;
  int64_t trainable = 0, total = 0;
  double useful_flops = 0;
  double peak_mib = -1;
  std::vector<double> times_ms;
  int64_t examples = 0;
};

/// VmHWM / VmRSS of this process in MiB from /proc/self/status; -1 where there is none.
double proc_status_mib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  }
  return -1;
}

/// Token counts, one per line; dev_batches() caps them at --seq.
std::vector<int64_t> read_lengths(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw atune::Error("--lengths " + path + ": cannot open");
  std::vector<int64_t> lengths;
  int line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty()) continue;
    size_t used = 0;
    int64_t n = 0;
    try {
      n = std::stoll(line, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != line.size() || n < 1) {
      throw atune::Error("--lengths " + path + " line " + std::to_string(line_number) +
                         ": expected a positive token count, got \"" + line + "\"");
    }
    lengths.push_back(n);
  }
  if (lengths.empty()) throw atune::Error("--lengths " + path + ": no token counts");
  return lengths;
}

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
    if (flag == "--json" || flag == "--padded" || flag == "--system-malloc") {
      (flag == "--json" ? o.json : flag == "--padded" ? o.padded : o.system_malloc) = true;
      continue;
    }
    if (flag == "--all-positions") {
      o.first_position_only = false;
      continue;
    }
    if (flag == "--joined-projections") {
      o.packed_projections = false;
      continue;
    }
    if (flag == "--unpacked-weights") {
      o.prepacked_weights = false;
      continue;
    }
    if (flag == "--recompute-attention-probabilities") {
      o.recompute_attention_probabilities = true;
      continue;
    }
    if (flag == "--float32-frozen-weights") {
      o.frozen_weights_in_dtype = false;
      continue;
    }
    if (flag == "--gradient-checkpointing") {
      o.gradient_checkpointing = true;
      continue;
    }
    if (flag == "--last-layer-first-position") {
      o.train_first_position_only = true;
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
    else if (flag == "--profile")
      o.profile = v;
    else if (flag == "--lengths")
      o.lengths = read_lengths(v);
    else
      throw atune::Error("unknown flag " + flag);
  }
  return o;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

/// Which of a Linear layer's three products gemm* times: the forward `x W^T`, the input gradient
/// `dY W` (every training mode's backward runs it below the lowest trainable tensor), or the weight
/// gradient `dY^T x` (only full fine-tuning runs it for the encoder's weights).
enum class GemmProduct { kForward, kInputGradient, kWeightGradient };

/// The roofline: the model's matrix products alone, timed as one step. The gradients run through
/// LibTorch's autograd, as in a training step (oneDNN's float32 autograd function where
/// adaptertune::linear takes that path), the forward pass before the clock starts.
Result run_gemm(const Options& o, const torch::Device& device, atune::Precision precision,
                GemmProduct product) {
  const auto dtype = precision == atune::Precision::kFloat32    ? torch::kFloat32
                     : precision == atune::Precision::kBFloat16 ? torch::kBFloat16
                                                                : torch::kFloat16;
  const auto options = torch::TensorOptions().device(device).dtype(dtype);
  const int64_t tokens = o.batch * o.seq, d = o.hidden;
  // (K, N) of the products a layer's forward runs: Q, K, V and output projections, FFN in, out.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{d, d}, {d, 4 * d}, {4 * d, d}};
  std::vector<torch::Tensor> inputs, weights, output_grads;
  double flops = 0;
  for (const auto& [k, n] : shapes) {
    inputs.push_back(torch::randn({tokens, k}, options)
                         .set_requires_grad(product == GemmProduct::kInputGradient));
    weights.push_back(torch::randn({n, k}, options)  // [out, in], as a Linear layer's
                          .set_requires_grad(product == GemmProduct::kWeightGradient));
    output_grads.push_back(torch::randn({tokens, n}, options));
    // Each of the three products multiplies the same sizes: 2 * tokens * k * n operations.
    flops += 2.0 * static_cast<double>(tokens) * static_cast<double>(k) * static_cast<double>(n);
  }
  Result r;  // run_mode() names it
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    std::vector<torch::Tensor> outputs;
    if (product != GemmProduct::kForward) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        // A fresh gradient each step, as a training step's first backward into a leaf makes it,
        // not an accumulation into last step's.
        inputs[i].mutable_grad() = torch::Tensor();
        weights[i].mutable_grad() = torch::Tensor();
        outputs.push_back(atune::linear(inputs[i], weights[i]));
      }
    }
    synchronize(device);
    auto start = std::chrono::steady_clock::now();
    if (product == GemmProduct::kForward) {
      for (size_t i = 0; i < shapes.size(); ++i) atune::linear(inputs[i], weights[i]);
    } else {
      torch::autograd::backward(outputs, output_grads);
    }
    synchronize(device);
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (step >= o.warmup) r.times_ms.push_back(ms);
  }
  r.useful_flops = flops;
  r.examples = o.batch;
  return r;
}

/// Batches of a dev set as (ids, mask), in file order or sorted by length, each padded to its
/// longest or to `pad_to`.
std::vector<std::pair<torch::Tensor, torch::Tensor>> dev_batches(const Options& o,
                                                                 int64_t vocab_size, int64_t pad_to,
                                                                 bool sort_by_length,
                                                                 const torch::Device& device) {
  std::vector<int64_t> lengths = o.lengths;
  if (sort_by_length) std::stable_sort(lengths.begin(), lengths.end());
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches;
  const auto count = static_cast<int64_t>(lengths.size());
  for (int64_t start = 0; start < count; start += o.batch) {
    const int64_t rows = std::min(o.batch, count - start);
    int64_t width = pad_to;
    for (int64_t row = 0; row < rows && pad_to == 0; ++row) {
      width = std::max(width, std::min(lengths[start + row], o.seq));
    }
    auto mask = torch::zeros({rows, width}, torch::kLong);
    for (int64_t row = 0; row < rows; ++row) {
      mask[row].narrow(0, 0, std::min({lengths[start + row], o.seq, width})).fill_(1);
    }
    batches.emplace_back(torch::randint(1000, vocab_size, {rows, width}, torch::kLong).to(device),
                         mask.to(device));
  }
  return batches;
}

Result run_mode(const Options& o, const std::string& mode, const atune::BertConfig& config,
                const torch::Device& device, atune::Precision precision) {
  static const std::map<std::string, GemmProduct> gemm_modes = {
      {"gemm", GemmProduct::kForward},
      {"gemm-input-grad", GemmProduct::kInputGradient},
      {"gemm-weight-grad", GemmProduct::kWeightGradient}};
  if (auto gemm = gemm_modes.find(mode); gemm != gemm_modes.end()) {
    Result r = run_gemm(o, device, precision, gemm->second);
    r.mode = mode;
    return r;
  }
  torch::manual_seed(0);
  atune::BertForSequenceClassification model(config, atune::HeadConfig{});
  {
    // The base's values as a bf16 file holds them (the shipped base is one), so that training
    // can store its frozen weights in bf16 as the TrainingEngine does. Timing is unaffected.
    torch::NoGradGuard no_grad;
    for (auto& parameter : model->parameters()) parameter.copy_(parameter.to(torch::kBFloat16));
  }
  atune::FreezePolicy policy;
  // "infer-houlsby-drop": inference, the Houlsby preset, left out of the lowest layers.
  const bool infer = mode.rfind("infer-", 0) == 0;
  // "infer-dev-dynamic" / "-inorder" / "-maxpad": the Houlsby model over a dev set's lengths.
  const bool dev_set = mode.rfind("infer-dev-", 0) == 0;
  if (dev_set && o.lengths.empty()) throw atune::Error("mode " + mode + " needs --lengths FILE");
  std::string preset = dev_set ? "houlsby" : infer ? mode.substr(6) : mode;
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
  // As a Predictor runs (set_up_for_inference()): nothing trains, under bf16/fp16 the Linear
  // weights are stored in that dtype once instead of autocast casting them on every forward pass,
  // the attention projections are packed instead of joined on every pass, and the bf16 and
  // float32 weights are prepacked for oneDNN's kernels unless --unpacked-weights.
  std::unique_ptr<atune::FrozenLinearWeightsPrepacked> inference_cover;
  if (infer) {
    inference_cover = atune::set_up_for_inference(*model, device, precision, o.prepacked_weights,
                                                  atune::PrepackedDtypes::kBFloat16AndFloat32);
  }
  if (!o.first_position_only) {
    model->set_evaluation_last_layer(atune::LastLayerOutput::kAllPositions);
  }
  if (o.train_first_position_only) {
    model->set_training_last_layer(atune::LastLayerOutput::kFirstPosition);
  }
  // As a TrainingEngine trains under bf16/fp16: the frozen Linear weights stored in that dtype.
  std::optional<atune::FrozenLinearWeightsInDtype> frozen_weights;
  if (!infer && mode != "forward" && o.frozen_weights_in_dtype) {
    frozen_weights.emplace(*model, precision);
  }
  std::optional<atune::FrozenProjectionsPacked> packed_projections;
  if (!infer && mode != "forward" && o.packed_projections) packed_projections.emplace(*model);
  // As a TrainingEngine keeps them: the frozen bf16 weights prepacked.
  std::optional<atune::FrozenLinearWeightsPrepacked> prepacked_weights;
  if (!infer && mode != "forward" && o.prepacked_weights) prepacked_weights.emplace(*model);
  model->bert->encoder->set_gradient_checkpointing(o.gradient_checkpointing);
  model->bert->encoder->set_recompute_attention_probabilities(o.recompute_attention_probabilities);
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
  std::vector<std::pair<torch::Tensor, torch::Tensor>> batches;
  if (dev_set) {
    batches = dev_batches(o, config.vocab_size, mode == "infer-dev-maxpad" ? o.seq : 0,
                          mode == "infer-dev-dynamic", device);
  }

#ifdef ADAPTERTUNE_WITH_CUDA
  if (device.is_cuda()) {
    synchronize(device);
    c10::cuda::CUDACachingAllocator::emptyCache();
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
  }
#endif
  Result r;
  r.mode = mode;
  r.examples = dev_set ? static_cast<int64_t>(o.lengths.size()) : o.batch;
  TraceRecorder trace(o.profile, device);
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    if (step == o.warmup) trace.start();
    synchronize(device);
    auto start = std::chrono::steady_clock::now();
    if (mode == "forward" || infer) {
      c10::InferenceMode inference;  // as Predictor and eval run
      atune::AutocastGuard autocast(device, precision);
      if (dev_set) {
        for (const auto& [ids, ids_mask] : batches) model(ids, ids_mask);
      } else if (several && preset == "parallel") {
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
      if (step >= o.warmup) r.times_ms.push_back(ms);
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
    if (step >= o.warmup) r.times_ms.push_back(ms);
  }
  trace.stop();
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
  const auto forward_flops = [&](int64_t rows, int64_t width) {
    return static_cast<double>(rows * width) *
           (2 * linear + 4.0 * static_cast<double>(o.layers * width * o.hidden));
  };
  double forward = forward_flops(o.batch, o.seq);
  if (dev_set) {  // the padded batches' work, padding included
    forward = 0;
    for (const auto& batch : batches)
      forward += forward_flops(batch.first.size(0), batch.first.size(1));
  }
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
    const bool tuned_malloc = !o.system_malloc && atune::tune_cpu_allocator();
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

    const double rss_start_mib = proc_status_mib("VmRSS");
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
                                                  "infer-separate-drop",
                                                  "infer-dev-dynamic",
                                                  "infer-dev-inorder",
                                                  "infer-dev-maxpad",
                                                  "gemm",
                                                  "gemm-input-grad",
                                                  "gemm-weight-grad"};
      if (known.count(mode) == 0) {
        throw atune::Error("unknown mode " + mode +
                           " (full, head, forward, [infer-]houlsby|pfeiffer[-drop], "
                           "infer-parallel|separate[-drop], infer-dev-dynamic|inorder|maxpad, "
                           "gemm[-input-grad|-weight-grad])");
      }
      Result r = run_mode(o, mode, config, device, precision);
      std::vector<double> sorted = r.times_ms;
      std::sort(sorted.begin(), sorted.end());
      r.median_ms = sorted[sorted.size() / 2];
      r.min_ms = sorted.front();
      results.push_back(r);
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
                "min ms", "examples/s", "TFLOP/s", "vs full", "peak MiB");
    for (const auto& r : results) {
      const double examples_per_s = static_cast<double>(r.examples) / (r.median_ms / 1000.0);
      char ratio[32] = "-";
      if (full_ms > 0) std::snprintf(ratio, sizeof ratio, "%.3f", r.median_ms / full_ms);
      char peak[32] = "-";
      if (r.peak_mib >= 0) std::snprintf(peak, sizeof peak, "%.0f", r.peak_mib);
      std::printf("%-19s %12lld %10.2f %10.2f %12.0f %10.2f %12s %10s\n", r.mode.c_str(),
                  static_cast<long long>(r.trainable), r.median_ms, r.min_ms, examples_per_s,
                  r.useful_flops / (r.median_ms / 1000.0) / 1e12, ratio, peak);
      if (o.json) {
        std::string times;
        for (double ms : r.times_ms) times += (times.empty() ? "" : ",") + std::to_string(ms);
        std::printf(
            "{\"impl\":\"adaptertune\",\"mode\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\","
            "\"median_ms\":%.4f,\"min_ms\":%.4f,\"times_ms\":[%s],\"trainable\":%lld,"
            "\"total\":%lld,\"examples\":%lld,\"tflops\":%.4f,\"peak_mib\":%s,"
            "\"vmhwm_mib\":%.1f,\"rss_start_mib\":%.1f,\"threads\":%d,\"tuned_malloc\":%s,"
            "\"cpu_allocator\":\"%s\"}\n",
            r.mode.c_str(), o.device.c_str(), o.precision.c_str(), r.median_ms, r.min_ms,
            times.c_str(), static_cast<long long>(r.trainable), static_cast<long long>(r.total),
            static_cast<long long>(r.examples), r.useful_flops / (r.median_ms / 1000.0) / 1e12,
            r.peak_mib >= 0 ? std::to_string(r.peak_mib).c_str() : "null", proc_status_mib("VmHWM"),
            rss_start_mib, torch::get_num_threads(), tuned_malloc ? "true" : "false",
            atune::cpu_allocator());
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "adaptertune_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
