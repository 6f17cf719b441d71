#include "onednn_linear.h"

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>

#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "adaptertune/precision.h"
#include "shape_check.h"

#ifdef ADAPTERTUNE_WITH_ONEDNN
#include <dnnl.hpp>
#endif

namespace adaptertune {

bool onednn_linear_built() {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  return true;
#else
  return false;
#endif
}

bool onednn_linear_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!onednn_linear_built() || !x.defined() || !weight.defined()) return false;
  auto plain_float = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.layout() == at::kStrided && t.scalar_type() == at::kFloat;
  };
  if (!plain_float(x) || !plain_float(weight) || weight.dim() != 2 || !weight.is_contiguous())
    return false;
  if (bias.defined() && (!plain_float(bias) || bias.dim() != 1 || !bias.is_contiguous() ||
                         bias.size(0) != weight.size(0)))
    return false;
  if (x.dim() == 0 || x.size(-1) != weight.size(1) || x.numel() == 0 || weight.numel() == 0)
    return false;
  return matmul_dtype(x.device(), at::kFloat) == at::kFloat;
}

#ifdef ADAPTERTUNE_WITH_ONEDNN
namespace {

// A [rows, cols] float32 matrix in memory: element (r, c) at data[r * row_stride + c * col_stride].
struct Matrix {
  const float* data;
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
};

Matrix matrix_of(const at::Tensor& t) {
  return {t.data_ptr<float>(), t.size(0), t.size(1), t.stride(0), t.stride(1)};
}

Matrix transposed(const Matrix& m) {
  return {m.data, m.cols, m.rows, m.col_stride, m.row_stride};
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool row_major(const Matrix& m) {
  return m.col_stride == 1;
}

dnnl::memory::desc descriptor(const Matrix& m) {
  return dnnl::memory::desc({m.rows, m.cols}, dnnl::memory::data_type::f32,
                            {m.row_stride, m.col_stride});
}

// The same with the dimensions and the leading stride left to run time.
dnnl::memory::desc runtime_descriptor(bool is_row_major) {
  constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;
  return dnnl::memory::desc(
      {kRuntime, kRuntime}, dnnl::memory::data_type::f32,
      is_row_major ? dnnl::memory::dims{kRuntime, 1} : dnnl::memory::dims{1, kRuntime});
}

// A primitive serves every shape: its dimensions and leading strides are given at run time
// (DNNL_RUNTIME_DIM_VAL), and only the operands' orientations and the bias make it differ. One
// primitive per shape (oneDNN's brgemm kernels) compiled a new kernel for every batch length that
// dynamic padding makes, and oneDNN's primitive cache, which LibTorch shares, kept them all: an
// SST-2 dev pass at the main job's shape reached 376-390 MB resident instead of 285, and a
// server's stream of shapes would grow it further.
// The primitive for these operand orientations, made once per thread. oneDNN manages its scratch
// memory (scratchpad_mode::library): with sizes given at run time, the size a primitive reports
// when it is made does not bound what it uses when it runs, and a buffer of that size given to it
// (scratchpad_mode::user) was overrun, corrupting the heap.
const dnnl::matmul& primitive_for(bool a_row_major, bool b_row_major, bool with_bias) {
  thread_local std::array<dnnl::matmul, 8> made;
  dnnl::matmul& primitive =
      made[(a_row_major ? 1 : 0) | (b_row_major ? 2 : 0) | (with_bias ? 4 : 0)];
  if (primitive) return primitive;
  const auto bias =
      with_bias ? dnnl::memory::desc({1, DNNL_RUNTIME_DIM_VAL}, dnnl::memory::data_type::f32,
                                     dnnl::memory::dims{DNNL_RUNTIME_DIM_VAL, 1})
                : dnnl::memory::desc();
  const auto a = runtime_descriptor(a_row_major);
  const auto b = runtime_descriptor(b_row_major);
  const auto c = runtime_descriptor(true);
#if DNNL_VERSION_MAJOR >= 3
  primitive = dnnl::matmul(dnnl::matmul::primitive_desc(cpu_engine(), a, b, bias, c));
#else
  primitive =
      dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, bias, c), cpu_engine()));
#endif
  return primitive;
}

// out[m, n] = a[m, k] b[k, n] (+ bias[n]), out contiguous.
void multiply(const Matrix& a, const Matrix& b, const float* bias, float* out) {
  const Matrix result{out, a.rows, b.cols, b.cols, 1};
  try {
    const dnnl::matmul& product = primitive_for(row_major(a), row_major(b), bias != nullptr);
    const dnnl::engine& engine = cpu_engine();
    thread_local dnnl::stream stream(engine);
    auto memory = [&](const dnnl::memory::desc& desc, const void* data) {
      return dnnl::memory(desc, engine, const_cast<void*>(data));
    };
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, memory(descriptor(a), a.data)},
                                               {DNNL_ARG_WEIGHTS, memory(descriptor(b), b.data)},
                                               {DNNL_ARG_DST, memory(descriptor(result), out)}};
    if (bias != nullptr) {
      args.emplace(DNNL_ARG_BIAS, memory(descriptor(Matrix{bias, 1, b.cols, b.cols, 1}), bias));
    }
    product.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN matrix product [" + std::to_string(a.rows) + ", " + std::to_string(a.cols) +
                "] x [" + std::to_string(b.rows) + ", " + std::to_string(b.cols) +
                "] failed: " + e.what());
  }
}

// [rows, in] x [out, in]^T (+ bias) -> [rows, out].
at::Tensor forward_product(const at::Tensor& x2d, const at::Tensor& weight,
                           const at::Tensor& bias) {
  at::Tensor out = at::empty({x2d.size(0), weight.size(0)}, x2d.options());
  multiply(matrix_of(x2d), transposed(matrix_of(weight)),
           bias.defined() ? bias.data_ptr<float>() : nullptr, out.data_ptr<float>());
  return out;
}

struct OneDnnLinearFunction : public torch::autograd::Function<OneDnnLinearFunction> {
  // The bias is optional: an undefined tensor cannot be an input of an autograd function.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x2d,
                            const at::Tensor& weight, const c10::optional<at::Tensor>& bias) {
    // Only what a wanted gradient needs stays alive: the input for the weight's gradient, the
    // weight for the input's (a frozen layer's input is not kept for a gradient nobody wants).
    ctx->save_for_backward(
        {weight.requires_grad() ? x2d : at::Tensor(), x2d.requires_grad() ? weight : at::Tensor()});
    ctx->saved_data["bias"] = bias.has_value();
    return forward_product(x2d, weight, bias.value_or(at::Tensor()));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x2d = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0) && weight.defined()) {
      grad_x = at::empty({grad.size(0), weight.size(1)}, grad.options());
      multiply(matrix_of(grad), matrix_of(weight), nullptr, grad_x.data_ptr<float>());
    }
    if (ctx->needs_input_grad(1) && x2d.defined()) {
      grad_weight = at::empty({grad.size(1), x2d.size(1)}, grad.options());
      multiply(transposed(matrix_of(grad)), matrix_of(x2d), nullptr, grad_weight.data_ptr<float>());
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) grad_bias = grad.sum(0);
    return {grad_x, grad_weight, grad_bias};
  }
};

}  // namespace
#endif

at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!onednn_linear_applies(x, weight, bias)) {
    auto shape = [](const at::Tensor& t) {
      return t.defined() ? detail::shape_string(t) : std::string("(none)");
    };
    throw Error(
        "onednn_linear: needs float32 CPU tensors, a contiguous weight and x's last "
        "dimension equal to the weight's columns, in a build with oneDNN; got x " +
        shape(x) + ", weight " + shape(weight));
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  const int64_t in_features = weight.size(1);
  const at::Tensor x2d = x.reshape({-1, in_features}).contiguous();
  std::vector<int64_t> out_shape = x.sizes().vec();
  out_shape.back() = weight.size(0);
  const bool records_graph =
      at::GradMode::is_enabled() &&
      (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  at::Tensor out =
      records_graph
          ? OneDnnLinearFunction::apply(
                x2d, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt)
          : forward_product(x2d, weight, bias);
  return out.view(out_shape);
#else
  return at::Tensor();
#endif
}

}  // namespace adaptertune
