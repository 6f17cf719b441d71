#include "onednn_products.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "adaptertune/layers/activation.h"
#include "adaptertune/precision.h"
#include "shape_check.h"

#ifdef ADAPTERTUNE_WITH_ONEDNN
#include <dnnl.hpp>
#endif

namespace adaptertune {

bool onednn_built() {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  return true;
#else
  return false;
#endif
}

namespace {

// An operand as the errors name it: its shape and dtype.
std::string operand_string(const at::Tensor& t) {
  return t.defined() ? detail::shape_string(t) + " " + c10::toString(t.scalar_type())
                     : std::string("(none)");
}

// The shape of `x W^T + b`: x's, with the weight's rows as its last dimension.
std::vector<int64_t> linear_result_shape(const at::Tensor& x, const at::Tensor& weight) {
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  return shape;
}

}  // namespace

#ifdef ADAPTERTUNE_WITH_ONEDNN
namespace {

dnnl::memory::data_type dnnl_type(at::ScalarType type) {
  return type == at::kBFloat16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

// A [rows, cols] matrix of float32 or bfloat16 in memory: element (r, c) at
// data[r * row_stride + c * col_stride].
struct Matrix {
  const void* data;
  int64_t rows;
  int64_t cols;
  int64_t row_stride;
  int64_t col_stride;
  dnnl::memory::data_type type;
};

Matrix matrix_of(const at::Tensor& t) {
  return {t.data_ptr(), t.size(0), t.size(1), t.stride(0), t.stride(1), dnnl_type(t.scalar_type())};
}

Matrix transposed(const Matrix& m) {
  return {m.data, m.cols, m.rows, m.col_stride, m.row_stride, m.type};
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

dnnl::memory memory_at(const dnnl::memory::desc& desc, const void* data) {
  return dnnl::memory(desc, cpu_engine(), const_cast<void*>(data));
}

// A matmul's primitive descriptor on the CPU engine; `bias` may be empty (no bias). oneDNN 3
// dropped the operation descriptor that version 2 builds it from.
dnnl::matmul::primitive_desc matmul_primitive_desc(
    const dnnl::memory::desc& a, const dnnl::memory::desc& b, const dnnl::memory::desc& bias,
    const dnnl::memory::desc& c, const dnnl::primitive_attr& attributes = dnnl::primitive_attr()) {
#if DNNL_VERSION_MAJOR >= 3
  return dnnl::matmul::primitive_desc(cpu_engine(), a, b, bias, c, attributes);
#else
  return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, bias, c), attributes, cpu_engine());
#endif
}

bool row_major(const Matrix& m) {
  return m.col_stride == 1;
}

dnnl::memory::desc descriptor(const Matrix& m) {
  return dnnl::memory::desc({m.rows, m.cols}, m.type, {m.row_stride, m.col_stride});
}

// The same with the dimensions and the leading stride left to run time.
dnnl::memory::desc runtime_descriptor(bool is_row_major, dnnl::memory::data_type type) {
  constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;
  return dnnl::memory::desc(
      {kRuntime, kRuntime}, type,
      is_row_major ? dnnl::memory::dims{kRuntime, 1} : dnnl::memory::dims{1, kRuntime});
}

// A float's bits, for the primitive caches' keys.
int64_t bits_of(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return static_cast<int64_t>(bits);
}

// The operands of `x W^T + b` as a oneDNN product takes them: x as a dense [rows, in] matrix, and
// all three in `dtype`, cast as autocast casts at::linear's (one stored in it is not copied).
struct LinearOperands {
  at::Tensor x2d;
  at::Tensor weight;
  at::Tensor bias;  // undefined for none
};

LinearOperands linear_operands(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, at::ScalarType dtype) {
  return {x.reshape({-1, weight.size(1)}).to(dtype).contiguous(), weight.to(dtype),
          bias.defined() ? bias.to(dtype) : bias};
}

// What a product does to its float32 sums after adding the bias, inside the product (oneDNN
// post-ops, one pass over the result instead of one per step): the activation, then a scale, then
// the additions of whole matrices shaped as the result.
struct Epilogue {
  explicit Epilogue(Activation applied = Activation::kIdentity) : activation(applied) {}

  Activation activation;
  float scale = 1.f;
  std::vector<Matrix> addends;

  // The post-op index of the first addition (oneDNN numbers every post-op).
  int first_addend_index() const {
    return (activation != Activation::kIdentity ? 1 : 0) + (scale != 1.f ? 1 : 0);
  }
};

// An element-wise post-op (oneDNN 3 dropped the scale that version 2 puts first).
void append_eltwise(dnnl::post_ops& operations, dnnl::algorithm algorithm, float alpha,
                    float beta) {
#if DNNL_VERSION_MAJOR >= 3
  operations.append_eltwise(algorithm, alpha, beta);
#else
  operations.append_eltwise(1.f, algorithm, alpha, beta);
#endif
}

// The post-ops of `epilogue`, or no attributes at all for an empty one.
dnnl::primitive_attr epilogue_attributes(const Epilogue& epilogue) {
  dnnl::primitive_attr attributes;
  dnnl::post_ops operations;
  auto append = [&operations](dnnl::algorithm algorithm, float alpha, float beta) {
    append_eltwise(operations, algorithm, alpha, beta);
  };
  switch (epilogue.activation) {
    case Activation::kGelu:
      append(dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      break;
    case Activation::kGeluTanh:
      append(dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
      break;
    case Activation::kRelu:
      append(dnnl::algorithm::eltwise_relu, 0.f, 0.f);  // alpha 0: no slope below zero
      break;
    case Activation::kSilu:
      append(dnnl::algorithm::eltwise_swish, 1.f, 0.f);  // x sigmoid(alpha x)
      break;
    case Activation::kTanh:
      append(dnnl::algorithm::eltwise_tanh, 0.f, 0.f);
      break;
    case Activation::kIdentity:
      break;
  }
  if (epilogue.scale != 1.f) append(dnnl::algorithm::eltwise_linear, epilogue.scale, 0.f);
  for (const Matrix& addend : epilogue.addends) {
    operations.append_binary(dnnl::algorithm::binary_add, descriptor(addend));
  }
  if (operations.len() > 0) attributes.set_post_ops(operations);
  return attributes;
}

constexpr size_t kActivationCount = static_cast<size_t>(Activation::kIdentity) + 1;

// A float32 primitive serves every shape: its dimensions and leading strides are given at run
// time (DNNL_RUNTIME_DIM_VAL), and only the operands' orientations, the bias and the activation
// make it differ. One primitive per shape (oneDNN's brgemm kernels) compiled a new kernel for every
// batch length that dynamic padding makes, and oneDNN's primitive cache, which LibTorch shares,
// kept them all: a float32 SST-2 dev pass at the main job's shape reached 376-390 MB resident
// instead of 285, and a server's stream of shapes would grow it further. (Products of prepacked
// weights are the exception: shaped_primitive(), bounded per thread.)
//
// The primitive for these operand orientations and activation (applied inside), made once per
// thread. oneDNN manages its scratch memory (scratchpad_mode::library): with sizes given at run
// time, the size a primitive reports when it is made does not bound what it uses when it runs,
// and a buffer of that size given to it (scratchpad_mode::user) was overrun, corrupting the heap.
const dnnl::matmul& primitive_for(bool a_row_major, bool b_row_major, bool with_bias,
                                  Activation activation) {
  thread_local std::array<dnnl::matmul, 8 * kActivationCount> made;
  dnnl::matmul& primitive =
      made[((a_row_major ? 1 : 0) | (b_row_major ? 2 : 0) | (with_bias ? 4 : 0)) +
           8 * static_cast<size_t>(activation)];
  if (primitive) return primitive;
  constexpr auto kFloat32 = dnnl::memory::data_type::f32;
  const auto bias = with_bias ? dnnl::memory::desc({1, DNNL_RUNTIME_DIM_VAL}, kFloat32,
                                                   dnnl::memory::dims{DNNL_RUNTIME_DIM_VAL, 1})
                              : dnnl::memory::desc();
  primitive = dnnl::matmul(matmul_primitive_desc(
      runtime_descriptor(a_row_major, kFloat32), runtime_descriptor(b_row_major, kFloat32), bias,
      runtime_descriptor(true, kFloat32), epilogue_attributes(Epilogue{activation})));
  return primitive;
}

// The primitive for exactly these operands' shapes and strides (bfloat16, and float32 products
// of prepacked weights). oneDNN's per-shape kernels beat its run-time-sized ones on bfloat16
// products at the main job's shape (and LibTorch makes per-shape ones too, so oneDNN's shared
// cache holds no more kernels than before); each thread keeps at most kShapedPrimitives of them,
// forgetting all when full, so a server's stream of batch shapes costs a primitive's making now
// and then, not memory without end.
constexpr size_t kShapedPrimitives = 256;

// A per-shape product and the layout it reads its weights in: `b`'s own (strided) one, or, for
// prepacked weights, the blocked layout oneDNN's kernels multiply, which it otherwise makes from
// `b` inside every call.
struct ShapedProduct {
  dnnl::matmul product;
  dnnl::memory::desc weights;
};

const ShapedProduct& shaped_primitive(const Matrix& a, const Matrix& b, const Matrix& result,
                                      bool with_bias, const Epilogue& epilogue,
                                      bool prepacked_weights) {
  thread_local std::map<std::array<int64_t, 9>, ShapedProduct> made;
  // The addends are dense like the result (onednn_linear_add_applies()): their dtypes and count
  // are all that tells two epilogues with the same activation and scale apart.
  int64_t addend_types = 0;
  for (const Matrix& addend : epilogue.addends) {
    addend_types = addend_types * 4 + 1 + (addend.type == dnnl::memory::data_type::bf16 ? 1 : 0);
  }
  const std::array<int64_t, 9> key{a.rows,
                                   a.cols,
                                   b.cols,
                                   a.row_stride,
                                   a.col_stride,
                                   prepacked_weights ? -1 : b.row_stride,
                                   prepacked_weights ? -1 : b.col_stride,
                                   (with_bias ? 1 : 0) | (static_cast<int64_t>(a.type) << 1) |
                                       (static_cast<int64_t>(result.type) << 8) |
                                       (static_cast<int64_t>(epilogue.activation) << 16) |
                                       (addend_types << 24),
                                   bits_of(epilogue.scale)};
  // (Prepacked weights get strides -1 in the key: no plain operand has them.)
  auto found = made.find(key);
  if (found != made.end()) return found->second;
  if (made.size() >= kShapedPrimitives) made.clear();
  const auto bias =
      with_bias ? descriptor(Matrix{nullptr, 1, b.cols, b.cols, 1, a.type}) : dnnl::memory::desc();
  const dnnl::memory::desc weights =
      prepacked_weights
          ? dnnl::memory::desc({b.rows, b.cols}, b.type, dnnl::memory::format_tag::any)
          : descriptor(b);
  const auto description = matmul_primitive_desc(descriptor(a), weights, bias, descriptor(result),
                                                 epilogue_attributes(epilogue));
  return made.emplace(key, ShapedProduct{dnnl::matmul(description), description.weights_desc()})
      .first->second;
}

// ---- Weights prepacked for oneDNN's kernels (FrozenLinearWeightsPrepacked) ----

// A weight matrix in the layout a product's kernels read, and the weight's version counter when
// it was laid out so.
struct PackedMatrix {
  int64_t version;
  dnnl::memory::desc layout;
  dnnl::memory memory;  // owns its buffer
};

// The storages that FrozenLinearWeightsPrepacked instances cover (each as often as covered) and
// the packed copies of the matrices read from them. Products on several threads (a server) may
// look up and pack at once, hence the lock; a copy in use stays alive through its shared pointer
// even if its storage stops being covered meanwhile.
class PrepackRegistry {
 public:
  static PrepackRegistry& instance() {
    static PrepackRegistry registry;
    return registry;
  }

  void cover(const c10::StorageImpl* storage) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (covered_[storage]++ == 0) ++covered_count_;
  }

  void uncover(const c10::StorageImpl* storage) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = covered_.find(storage);
    if (found == covered_.end() || --found->second > 0) return;
    covered_.erase(found);
    --covered_count_;
    for (auto it = packed_.begin(); it != packed_.end();) {
      it = std::get<0>(it->first) == storage ? packed_.erase(it) : std::next(it);
    }
  }

  bool covers(const at::Tensor& weight) {
    if (covered_count_.load() == 0) return false;  // no scope alive: no lock on every product
    std::lock_guard<std::mutex> lock(mutex_);
    return covered_.count(weight.storage().unsafeGetStorageImpl()) > 0;
  }

  // `b` (a matrix read from `weight`'s storage) in `layout`: the copy made before, or a new one
  // where there is none, the weight was written to since (its version counter moved), or the
  // product wants another layout. Null where the storage is not covered (any more).
  std::shared_ptr<const PackedMatrix> packed(const at::Tensor& weight, const Matrix& b,
                                             const dnnl::memory::desc& layout) {
    const c10::StorageImpl* storage = weight.storage().unsafeGetStorageImpl();
    std::lock_guard<std::mutex> lock(mutex_);
    if (covered_.count(storage) == 0) return nullptr;
    std::shared_ptr<const PackedMatrix>& slot =
        packed_[{storage, b.data, b.rows, b.cols, b.row_stride, b.col_stride}];
    const int64_t version = static_cast<int64_t>(weight._version());
    if (!slot || slot->version != version || slot->layout != layout) {
      dnnl::memory memory(layout, cpu_engine());
      dnnl::memory plain = memory_at(descriptor(b), b.data);
      dnnl::reorder(plain, memory).execute(cpu_stream(), plain, memory);
      cpu_stream().wait();
      slot = std::make_shared<const PackedMatrix>(PackedMatrix{version, layout, memory});
    }
    return slot;
  }

  int64_t copies() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(packed_.size());
  }

 private:
  std::mutex mutex_;
  std::atomic<int64_t> covered_count_{0};
  std::unordered_map<const c10::StorageImpl*, int64_t> covered_;
  std::map<std::tuple<const c10::StorageImpl*, const void*, int64_t, int64_t, int64_t, int64_t>,
           std::shared_ptr<const PackedMatrix>>
      packed_;
};

// result[m, n] = epilogue(a[m, k] b[k, n] (+ bias[n])), `result` dense by rows; `a`, `b` and the
// bias of one dtype (float32: run-time-sized primitives, per-shape ones for a prepacked weight,
// the epilogue's activation only, and the result in that dtype; bfloat16: per-shape primitives, the
// whole epilogue, and the result in bfloat16 or float32).
void multiply(const Matrix& a, const Matrix& b, const void* bias, const Matrix& result,
              const Epilogue& epilogue, const at::Tensor& weight_of_b = at::Tensor()) {
  try {
    const bool bfloat16 = a.type == dnnl::memory::data_type::bf16;
    // `b` read from a covered weight's storage: its prepacked copy, where the product's kernels
    // take one. A float32 product of one then runs a per-shape kernel too: the run-time-sized
    // ones lay the weight out inside every call, which is most of a short request's product (a
    // [16, 3072] x [3072, 768] one 10x slower, docs/benchmarks.md).
    std::shared_ptr<const PackedMatrix> packed;
    const dnnl::matmul* product = nullptr;
    if (weight_of_b.defined() && PrepackRegistry::instance().covers(weight_of_b)) {
      const ShapedProduct& shaped = shaped_primitive(a, b, result, bias != nullptr, epilogue,
                                                     /*prepacked_weights=*/true);
      packed = PrepackRegistry::instance().packed(weight_of_b, b, shaped.weights);
      if (packed) product = &shaped.product;
    }
    if (product == nullptr) {
      product = bfloat16 ? &shaped_primitive(a, b, result, bias != nullptr, epilogue,
                                             /*prepacked_weights=*/false)
                                .product
                         : &primitive_for(row_major(a), row_major(b), bias != nullptr,
                                          epilogue.activation);
    }
    dnnl::stream& stream = cpu_stream();
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, memory_at(descriptor(a), a.data)},
        {DNNL_ARG_WEIGHTS, packed ? packed->memory : memory_at(descriptor(b), b.data)},
        {DNNL_ARG_DST, memory_at(descriptor(result), result.data)}};
    if (bias != nullptr) {
      args.emplace(DNNL_ARG_BIAS,
                   memory_at(descriptor(Matrix{bias, 1, b.cols, b.cols, 1, a.type}), bias));
    }
    int index = epilogue.first_addend_index();
    for (const Matrix& addend : epilogue.addends) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index++) | DNNL_ARG_SRC_1,
                   memory_at(descriptor(addend), addend.data));
    }
    product->execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN matrix product [" + std::to_string(a.rows) + ", " + std::to_string(a.cols) +
                "] x [" + std::to_string(b.rows) + ", " + std::to_string(b.cols) +
                "] failed: " + e.what());
  }
}

// out[m, n] = activation(a[m, k] b[k, n] (+ bias[n])), out dense by rows, in a's dtype.
// `weight_of_b`: the weight `b` is read from, where a prepacked copy of it may serve.
void multiply(const Matrix& a, const Matrix& b, const void* bias, void* out,
              Activation activation = Activation::kIdentity,
              const at::Tensor& weight_of_b = at::Tensor()) {
  multiply(a, b, bias, Matrix{out, a.rows, b.cols, b.cols, 1, a.type}, Epilogue{activation},
           weight_of_b);
}

// activation([rows, in] x [out, in]^T (+ bias)) -> [rows, out].
at::Tensor forward_product(const at::Tensor& x2d, const at::Tensor& weight, const at::Tensor& bias,
                           Activation activation = Activation::kIdentity) {
  at::Tensor out = at::empty({x2d.size(0), weight.size(0)}, x2d.options());
  multiply(matrix_of(x2d), transposed(matrix_of(weight)),
           bias.defined() ? bias.data_ptr() : nullptr, out.data_ptr(), activation, weight);
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
      multiply(matrix_of(grad), matrix_of(weight), nullptr, grad_x.data_ptr());
    }
    if (ctx->needs_input_grad(1) && x2d.defined()) {
      grad_weight = at::empty({grad.size(1), x2d.size(1)}, grad.options());
      multiply(transposed(matrix_of(grad)), matrix_of(x2d), nullptr, grad_weight.data_ptr());
    }
    if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) grad_bias = grad.sum(0);
    return {grad_x, grad_weight, grad_bias};
  }
};

// ---- Batched products: [B, H, M, K] x [B, H, K, N] -> [B, H, M, N] ----

// Whether the matrices of a 4-D operand are stored by rows (unit stride in the last dimension)
// rather than by columns (unit stride in the one before). A dimension of size 1 may have any
// stride; it counts as a unit one.
bool rows_unit(const at::Tensor& t) {
  return t.size(3) == 1 || t.stride(3) == 1;
}

// Whether oneDNN can read (or write) `t` in place: its matrices stored by rows or by columns,
// without overlapping, and no batch dimension of stride 0 (an expanded tensor).
bool plain_for_onednn(const at::Tensor& t) {
  const bool by_rows = rows_unit(t);
  if (!by_rows && !(t.size(2) == 1 || t.stride(2) == 1)) return false;
  const int64_t outer = by_rows ? 2 : 3;  // the dimension of the leading stride
  const int64_t unit = by_rows ? 3 : 2;
  if (t.size(outer) > 1 && t.stride(outer) < t.size(unit)) return false;
  for (int64_t dim = 0; dim < 2; ++dim) {
    if (t.size(dim) > 1 && t.stride(dim) <= 0) return false;
  }
  return true;
}

// `t`'s strides as oneDNN is told them: those of size-1 dimensions replaced by ones that fit the
// layout the primitive was made for (unit stride where it expects one, a leading stride no smaller
// than the rows), since LibTorch leaves them arbitrary.
dnnl::memory::dims strides_for_onednn(const at::Tensor& t) {
  dnnl::memory::dims strides(t.strides().begin(), t.strides().end());
  const bool by_rows = rows_unit(t);
  const int64_t unit = by_rows ? 3 : 2;
  const int64_t outer = by_rows ? 2 : 3;
  strides[unit] = 1;
  if (t.size(outer) == 1) strides[outer] = std::max<int64_t>(t.size(unit), 1);
  for (int64_t dim = 0; dim < 2; ++dim) {
    if (t.size(dim) == 1) strides[dim] = t.numel();
  }
  return strides;
}

dnnl::memory::desc batched_descriptor(const at::Tensor& t) {
  return dnnl::memory::desc(dnnl::memory::dims(t.sizes().begin(), t.sizes().end()),
                            dnnl_type(t.scalar_type()), strides_for_onednn(t));
}

// A batched product's primitive for one dtype and the operands' orientations, with every
// dimension and stride given at run time (see primitive_for()). The result is stored by rows:
// oneDNN 2.6 has only reference loops for a result stored by columns.
dnnl::matmul::primitive_desc batched_primitive_desc(dnnl::memory::data_type type, bool a_rows,
                                                    bool b_rows) {
  constexpr auto kRuntime = DNNL_RUNTIME_DIM_VAL;
  auto runtime = [&](bool by_rows) {
    return dnnl::memory::desc({kRuntime, kRuntime, kRuntime, kRuntime}, type,
                              by_rows ? dnnl::memory::dims{kRuntime, kRuntime, kRuntime, 1}
                                      : dnnl::memory::dims{kRuntime, kRuntime, 1, kRuntime});
  };
  return matmul_primitive_desc(runtime(a_rows), runtime(b_rows), dnnl::memory::desc(),
                               runtime(true));
}

// Made once per thread, as primitive_for().
const dnnl::matmul& batched_primitive_for(at::ScalarType type, bool a_rows, bool b_rows) {
  thread_local std::array<dnnl::matmul, 8> made;
  dnnl::matmul& primitive =
      made[(type == at::kBFloat16 ? 4 : 0) | (a_rows ? 1 : 0) | (b_rows ? 2 : 0)];
  if (!primitive) primitive = dnnl::matmul(batched_primitive_desc(dnnl_type(type), a_rows, b_rows));
  return primitive;
}

// Whether oneDNN multiplies `type` on this CPU with compiled kernels: where it has none (bfloat16
// without AVX-512), it falls back to reference loops far slower than at::matmul.
bool has_fast_kernels(at::ScalarType type) {
  auto probe = [](dnnl::memory::data_type t) {
    try {
      // Every orientation of the operands has the same implementation.
      return std::string(batched_primitive_desc(t, true, true).impl_info_str()).rfind("ref", 0) !=
             0;
    } catch (const dnnl::error&) {
      return false;
    }
  };
  static const bool float32 = probe(dnnl::memory::data_type::f32);
  static const bool bfloat16 = probe(dnnl::memory::data_type::bf16);
  return type == at::kBFloat16 ? bfloat16 : float32;
}

// c = a @ b, all three [B, H, *, *] views that plain_for_onednn() accepts.
void batched_multiply(const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
  // A result stored by columns is the transpose of one stored by rows: c^T = b^T a^T.
  if (!rows_unit(c)) {
    batched_multiply(b.transpose(2, 3), a.transpose(2, 3), c.transpose(2, 3));
    return;
  }
  try {
    const dnnl::matmul& product =
        batched_primitive_for(a.scalar_type(), rows_unit(a), rows_unit(b));
    dnnl::stream& stream = cpu_stream();
    product.execute(stream, {{DNNL_ARG_SRC, memory_at(batched_descriptor(a), a.data_ptr())},
                             {DNNL_ARG_WEIGHTS, memory_at(batched_descriptor(b), b.data_ptr())},
                             {DNNL_ARG_DST, memory_at(batched_descriptor(c), c.data_ptr())}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN batched product " + detail::shape_string(a) + " x " +
                detail::shape_string(b) + " failed: " + e.what());
  }
}

at::Tensor plain_or_copy(const at::Tensor& t) {
  return plain_for_onednn(t) ? t : t.contiguous();
}

// An uninitialised tensor of these sizes whose dimensions lie in memory in the order of `strides`
// (largest first), densely: a gradient laid out as its operand was, so the views that made the
// operand (the heads split out of the projections' output) give it back without a copy.
at::Tensor empty_in_memory_order(const std::vector<int64_t>& sizes,
                                 const std::vector<int64_t>& strides,
                                 const at::TensorOptions& options) {
  std::vector<int64_t> order(sizes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return strides[x] > strides[y]; });
  std::vector<int64_t> dense_sizes, inverse(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    dense_sizes.push_back(sizes[static_cast<size_t>(order[i])]);
    inverse[static_cast<size_t>(order[i])] = static_cast<int64_t>(i);
  }
  at::Tensor result = at::empty(dense_sizes, options).permute(inverse);
  return plain_for_onednn(result) ? result : at::empty(sizes, options);
}

at::Tensor batched_forward(const at::Tensor& a, const at::Tensor& b, BatchedProductOrder order) {
  const int64_t batch = a.size(0), heads = a.size(1), rows = a.size(2), cols = b.size(3);
  const at::Tensor c = order == BatchedProductOrder::kRowsFirst
                           ? at::empty({batch, rows, heads, cols}, a.options()).transpose(1, 2)
                           : at::empty({batch, heads, rows, cols}, a.options());
  batched_multiply(a, b, c);
  return c;
}

struct OneDnnBatchedMatmulFunction : public torch::autograd::Function<OneDnnBatchedMatmulFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                            const at::Tensor& b, int64_t order) {
    // Each operand only where the other's gradient needs it; their layouts always, for the
    // gradients'.
    ctx->save_for_backward(
        {b.requires_grad() ? a : at::Tensor(), a.requires_grad() ? b : at::Tensor()});
    ctx->saved_data["a_sizes"] = a.sizes().vec();
    ctx->saved_data["a_strides"] = a.strides().vec();
    ctx->saved_data["b_sizes"] = b.sizes().vec();
    ctx->saved_data["b_strides"] = b.strides().vec();
    return batched_forward(a, b, static_cast<BatchedProductOrder>(order));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& a = saved[0];
    const at::Tensor& b = saved[1];
    const at::Tensor grad = plain_or_copy(grads[0]);
    auto gradient_like = [&](const char* operand) {
      const std::string name(operand);
      return empty_in_memory_order(ctx->saved_data[name + "_sizes"].toIntVector(),
                                   ctx->saved_data[name + "_strides"].toIntVector(),
                                   grad.options());
    };
    at::Tensor grad_a, grad_b;
    if (ctx->needs_input_grad(0) && b.defined()) {
      grad_a = gradient_like("a");
      batched_multiply(grad, b.transpose(2, 3), grad_a);  // dA = dC B^T
    }
    if (ctx->needs_input_grad(1) && a.defined()) {
      grad_b = gradient_like("b");
      batched_multiply(a.transpose(2, 3), grad, grad_b);  // dB = A^T dC
    }
    return {grad_a, grad_b, at::Tensor()};
  }
};

// ---- Attention probabilities: softmax(scale q k^T + mask) in bfloat16 ----

// The two primitives for one shape of the attention's operands: the scores' product (float32
// result, the scale and the mask as post-ops) and the softmax that rounds them to bfloat16.
struct AttentionPrimitives {
  dnnl::matmul scores;
  dnnl::primitive softmax;
  dnnl::memory::desc scores_desc;         // float32, dense
  dnnl::memory::desc probabilities_desc;  // bfloat16, dense
};

dnnl::primitive softmax_to(const dnnl::memory::desc& source, const dnnl::memory::desc& result) {
#if DNNL_VERSION_MAJOR >= 3
  return dnnl::softmax_forward(
      dnnl::softmax_forward::primitive_desc(cpu_engine(), dnnl::prop_kind::forward_inference,
                                            dnnl::algorithm::softmax_accurate, source, result, 3));
#else
  return dnnl::softmax_v2_forward(dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, source, result, 3),
      cpu_engine()));
#endif
}

// Per shape and strides, as shaped_primitive() (the post-ops need the mask's shape), at most
// kShapedPrimitives per thread.
const AttentionPrimitives& attention_primitives(const at::Tensor& q, const at::Tensor& k_t,
                                                const at::Tensor& mask, float scale) {
  thread_local std::map<std::vector<int64_t>, AttentionPrimitives> made;
  std::vector<int64_t> key;
  for (const at::Tensor* operand : {&q, &k_t}) {
    for (int64_t size : operand->sizes()) key.push_back(size);
    for (int64_t stride : strides_for_onednn(*operand)) key.push_back(stride);
  }
  key.push_back(mask.defined() ? 1 + static_cast<int64_t>(mask.scalar_type()) : 0);
  if (mask.defined()) key.push_back(mask.size(2));  // [B, 1, 1, N] or [B, 1, M, N]
  key.push_back(bits_of(scale));
  auto found = made.find(key);
  if (found != made.end()) return found->second;
  if (made.size() >= kShapedPrimitives) made.clear();
  const dnnl::memory::dims dims{q.size(0), q.size(1), q.size(2), k_t.size(3)};
  const dnnl::memory::desc scores(dims, dnnl::memory::data_type::f32,
                                  dnnl::memory::format_tag::abcd);
  const dnnl::memory::desc probabilities(dims, dnnl::memory::data_type::bf16,
                                         dnnl::memory::format_tag::abcd);
  dnnl::post_ops operations;
  append_eltwise(operations, dnnl::algorithm::eltwise_linear, scale, 0.f);
  if (mask.defined()) {
    operations.append_binary(dnnl::algorithm::binary_add, batched_descriptor(mask));
  }
  dnnl::primitive_attr attributes;
  attributes.set_post_ops(operations);
  AttentionPrimitives primitives{
      dnnl::matmul(matmul_primitive_desc(batched_descriptor(q), batched_descriptor(k_t),
                                         dnnl::memory::desc(), scores, attributes)),
      softmax_to(scores, probabilities), scores, probabilities};
  return made.emplace(std::move(key), std::move(primitives)).first->second;
}

}  // namespace
#endif

namespace {

// Whether a product through onednn_linear() would have to record an autograd graph.
bool records_graph(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
}

// Whether oneDNN has compiled bfloat16 kernels on this CPU (see has_fast_kernels()).
bool bf16_kernels_available() {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  return has_fast_kernels(at::kBFloat16);
#else
  return false;
#endif
}

}  // namespace

bool onednn_linear_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!onednn_built() || !x.defined() || !weight.defined()) return false;
  auto plain = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.layout() == at::kStrided &&
           (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16);
  };
  if (!plain(x) || !plain(weight) || weight.dim() != 2 || !weight.is_contiguous()) return false;
  if (bias.defined() &&
      (!plain(bias) || bias.dim() != 1 || !bias.is_contiguous() || bias.size(0) != weight.size(0)))
    return false;
  if (x.dim() == 0 || x.size(-1) != weight.size(1) || x.numel() == 0 || weight.numel() == 0)
    return false;
  // Autocast's dtype is never float32, so a product of float32 tensors runs in another exactly
  // while autocast is on.
  const bool autocast = matmul_dtype(x.device(), at::kFloat) != at::kFloat;
  const at::ScalarType dtype = matmul_dtype(x.device(), x.scalar_type());
  // Without autocast the operands must agree, as at::linear requires.
  if (!autocast &&
      (weight.scalar_type() != dtype || (bias.defined() && bias.scalar_type() != dtype)))
    return false;
  if (dtype == at::kFloat) return !autocast;
  return dtype == at::kBFloat16 && bf16_kernels_available();
}

at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         Activation activation) {
  if (!onednn_linear_applies(x, weight, bias)) {
    throw Error(
        "onednn_linear: needs CPU tensors, a contiguous weight and x's last dimension equal to the "
        "weight's columns, in a build with oneDNN: float32 outside autocast, or bfloat16 (under "
        "autocast or all operands bfloat16) without gradients and with oneDNN kernels for it on "
        "this CPU; got x " +
        operand_string(x) + ", weight " + operand_string(weight) + ", bias " +
        operand_string(bias));
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  RECORD_FUNCTION("adaptertune::onednn_linear", std::vector<c10::IValue>());
  // The dtype the product runs in; under autocast every operand is cast to it, as autocast casts
  // at::linear's (a weight stored in it already is not copied).
  const LinearOperands in =
      linear_operands(x, weight, bias, matmul_dtype(x.device(), x.scalar_type()));
  const std::vector<int64_t> out_shape = linear_result_shape(x, weight);
  if (!records_graph(x, weight, bias)) {
    // Fused under InferenceMode only (a Predictor, evaluation): elsewhere a pass without gradients
    // (gradient checkpointing's first run, AdapterDrop's cached frozen layers) must give the bits
    // that the same pass with gradients gives, and fusing moves a bfloat16 rounding.
    if (c10::InferenceMode::is_enabled())
      return forward_product(in.x2d, in.weight, in.bias, activation).view(out_shape);
    return apply_activation(activation,
                            forward_product(in.x2d, in.weight, in.bias).view(out_shape));
  }
  const at::Tensor out = OneDnnLinearFunction::apply(
      in.x2d, in.weight, in.bias.defined() ? c10::optional<at::Tensor>(in.bias) : c10::nullopt);
  return apply_activation(activation, out.view(out_shape));
#else
  return at::Tensor();
#endif
}

bool onednn_linear_add_applies(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, const std::vector<at::Tensor>& addends) {
  if (!c10::InferenceMode::is_enabled() || !onednn_linear_applies(x, weight, bias) ||
      matmul_dtype(x.device(), x.scalar_type()) != at::kBFloat16) {
    return false;
  }
  const std::vector<int64_t> out_shape = linear_result_shape(x, weight);
  for (const at::Tensor& addend : addends) {
    if (!addend.defined() || !addend.device().is_cpu() || addend.layout() != at::kStrided ||
        (addend.scalar_type() != at::kFloat && addend.scalar_type() != at::kBFloat16) ||
        addend.sizes() != at::IntArrayRef(out_shape) || !addend.is_contiguous()) {
      return false;
    }
  }
  return true;
}

at::Tensor onednn_linear_add(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             double scale, const std::vector<at::Tensor>& addends) {
  if (!onednn_linear_add_applies(x, weight, bias, addends)) {
    std::string given;
    for (const at::Tensor& addend : addends) given += ", addend " + operand_string(addend);
    throw Error(
        "onednn_linear_add: needs c10::InferenceMode, a product that onednn_linear() runs in "
        "bfloat16, and contiguous float32 or bfloat16 CPU addends shaped as its result; got x " +
        operand_string(x) + ", weight " + operand_string(weight) + ", bias " +
        operand_string(bias) + given);
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  RECORD_FUNCTION("adaptertune::onednn_linear_add", std::vector<c10::IValue>());
  const LinearOperands in = linear_operands(x, weight, bias, at::kBFloat16);
  // The result's dtype is LibTorch's promotion of the unfused sum's operands: float32 where an
  // addend is.
  bool float32 = false;
  Epilogue epilogue;
  epilogue.scale = static_cast<float>(scale);
  for (const at::Tensor& addend : addends) {
    float32 = float32 || addend.scalar_type() == at::kFloat;
    epilogue.addends.push_back(matrix_of(addend.view({-1, weight.size(0)})));
  }
  at::Tensor out = at::empty({in.x2d.size(0), weight.size(0)},
                             x.options().dtype(float32 ? at::kFloat : at::kBFloat16));
  multiply(matrix_of(in.x2d), transposed(matrix_of(in.weight)),
           in.bias.defined() ? in.bias.data_ptr() : nullptr, matrix_of(out), epilogue, in.weight);
  return out.view(linear_result_shape(x, weight));
#else
  return at::Tensor();
#endif
}

bool onednn_batched_matmul_applies(const at::Tensor& a, const at::Tensor& b) {
  if (!onednn_built() || !a.defined() || !b.defined() || a.dim() != 4 || b.dim() != 4) return false;
  if (!a.device().is_cpu() || !b.device().is_cpu() || a.layout() != at::kStrided ||
      b.layout() != at::kStrided || a.scalar_type() != b.scalar_type())
    return false;
  if (a.scalar_type() != at::kFloat && a.scalar_type() != at::kBFloat16) return false;
  if (a.size(0) != b.size(0) || a.size(1) != b.size(1) || a.size(3) != b.size(2) ||
      a.numel() == 0 || b.numel() == 0)
    return false;
#ifdef ADAPTERTUNE_WITH_ONEDNN
  return has_fast_kernels(a.scalar_type());
#else
  return false;
#endif
}

at::Tensor onednn_batched_matmul(const at::Tensor& a, const at::Tensor& b,
                                 BatchedProductOrder order) {
  if (!onednn_batched_matmul_applies(a, b)) {
    throw Error(
        "onednn_batched_matmul: needs [B, H, M, K] and [B, H, K, N] CPU tensors of one dtype, "
        "float32 or bfloat16 (with oneDNN kernels for it on this CPU), in a build with oneDNN; "
        "got " +
        operand_string(a) + " and " + operand_string(b));
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  RECORD_FUNCTION("adaptertune::onednn_batched_matmul", std::vector<c10::IValue>());
  const at::Tensor a_plain = plain_or_copy(a);
  const at::Tensor b_plain = plain_or_copy(b);
  const bool records_graph = at::GradMode::is_enabled() && (a.requires_grad() || b.requires_grad());
  return records_graph
             ? OneDnnBatchedMatmulFunction::apply(a_plain, b_plain, static_cast<int64_t>(order))
             : batched_forward(a_plain, b_plain, order);
#else
  return at::Tensor();
#endif
}

bool onednn_attention_probabilities_applies(const at::Tensor& q, const at::Tensor& k_t,
                                            const at::Tensor& mask) {
  if (!c10::InferenceMode::is_enabled() || q.scalar_type() != at::kBFloat16 ||
      !onednn_batched_matmul_applies(q, k_t)) {
    return false;
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  if (!plain_for_onednn(q) || !plain_for_onednn(k_t)) return false;
  if (!mask.defined()) return true;
  return mask.device().is_cpu() && mask.layout() == at::kStrided &&
         (mask.scalar_type() == at::kFloat || mask.scalar_type() == at::kBFloat16) &&
         mask.dim() == 4 && mask.is_contiguous() && mask.size(0) == q.size(0) &&
         mask.size(1) == 1 && (mask.size(2) == 1 || mask.size(2) == q.size(2)) &&
         mask.size(3) == k_t.size(3);
#else
  return false;
#endif
}

at::Tensor onednn_attention_probabilities(const at::Tensor& q, const at::Tensor& k_t,
                                          const at::Tensor& mask, double scale) {
  if (!onednn_attention_probabilities_applies(q, k_t, mask)) {
    throw Error(
        "onednn_attention_probabilities: needs c10::InferenceMode, bfloat16 [B, H, M, K] and "
        "[B, H, K, N] CPU operands that oneDNN reads in place, and a contiguous float32 or "
        "bfloat16 mask [B, 1, 1 or M, N] or none; got " +
        operand_string(q) + ", " + operand_string(k_t) + " and mask " + operand_string(mask));
  }
#ifdef ADAPTERTUNE_WITH_ONEDNN
  RECORD_FUNCTION("adaptertune::onednn_attention_probabilities", std::vector<c10::IValue>());
  const at::Tensor scores =
      at::empty({q.size(0), q.size(1), q.size(2), k_t.size(3)}, q.options().dtype(at::kFloat));
  at::Tensor probabilities = at::empty(scores.sizes(), q.options());
  try {
    const AttentionPrimitives& primitives =
        attention_primitives(q, k_t, mask, static_cast<float>(scale));
    dnnl::stream& stream = cpu_stream();
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, memory_at(batched_descriptor(q), q.data_ptr())},
        {DNNL_ARG_WEIGHTS, memory_at(batched_descriptor(k_t), k_t.data_ptr())},
        {DNNL_ARG_DST, memory_at(primitives.scores_desc, scores.data_ptr())}};
    if (mask.defined()) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1,
                   memory_at(batched_descriptor(mask), mask.data_ptr()));
    }
    primitives.scores.execute(stream, args);
    primitives.softmax.execute(
        stream,
        {{DNNL_ARG_SRC, memory_at(primitives.scores_desc, scores.data_ptr())},
         {DNNL_ARG_DST, memory_at(primitives.probabilities_desc, probabilities.data_ptr())}});
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN attention probabilities " + detail::shape_string(q) + " x " +
                detail::shape_string(k_t) + " failed: " + e.what());
  }
  return probabilities;
#else
  return at::Tensor();
#endif
}

void cover_with_prepacked_weights(const c10::Storage& storage) {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  PrepackRegistry::instance().cover(storage.unsafeGetStorageImpl());
#else
  (void)storage;
#endif
}

void uncover_prepacked_weights(const c10::Storage& storage) {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  PrepackRegistry::instance().uncover(storage.unsafeGetStorageImpl());
#else
  (void)storage;
#endif
}

int64_t prepacked_weight_copies() {
#ifdef ADAPTERTUNE_WITH_ONEDNN
  return PrepackRegistry::instance().copies();
#else
  return 0;
#endif
}

at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b, BatchedProductOrder order) {
  if (onednn_built() && a.dim() == 4 && b.dim() == 4 && a.device().is_cpu()) {
    // What CPU autocast would multiply: both operands in its dtype.
    const c10::ScalarType dtype = matmul_dtype(a.device(), a.scalar_type());
    const at::Tensor a_cast = a.to(dtype);
    const at::Tensor b_cast = b.to(dtype);
    if (onednn_batched_matmul_applies(a_cast, b_cast))
      return onednn_batched_matmul(a_cast, b_cast, order);
    // The casts are made: autocast finds nothing left to cast in at::matmul.
    return at::matmul(a_cast, b_cast);
  }
  return at::matmul(a, b);
}

}  // namespace adaptertune
