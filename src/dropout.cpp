#include "dropout.h"

#include <algorithm>
#include <mutex>
#include <type_traits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "bfloat16_bits.h"
#include "parallel_loops.h"
#include "splitmix64.h"
#include "vector_clones.h"

namespace adaptertune {
namespace detail {
namespace {

// Each element's keep bit comes from splitmix64() over its index: two keep decisions per value,
// and no state between elements, so any thread can compute any element's bit.
// The hash and the mask are the step's element-wise hot spot after the matrix products, and
// baseline x86-64 has no 64-bit vector multiply for the hash: both loops are vector clones.

// Pairs handled per block: the hashes of a block stay in the L1 cache between the two loops.
constexpr int64_t kBlockPairs = 512;

// bits[2k] and bits[2k+1] are the low and high halves of the hash of pair `first_pair + k`.
ADAPTERTUNE_VECTOR_CLONES
void hash_pairs(uint64_t seed, uint64_t first_pair, int64_t pairs, uint32_t* bits) {
  for (int64_t k = 0; k < pairs; ++k) {
    const uint64_t hash = splitmix64(seed, first_pair + static_cast<uint64_t>(k));
    bits[2 * k] = static_cast<uint32_t>(hash);
    bits[2 * k + 1] = static_cast<uint32_t>(hash >> 32);
  }
}

ADAPTERTUNE_VECTOR_CLONES
void mask_float(const float* in, float* out, int64_t count, const uint32_t* bits, uint32_t keep_max,
                float scale) {
  for (int64_t i = 0; i < count; ++i) out[i] = bits[i] <= keep_max ? in[i] * scale : 0.0f;
}

// bfloat16 as its bits (bfloat16_bits.h), so the result has the same bits as the generic loop's
// static_cast<c10::BFloat16>(float(x) * scale).
ADAPTERTUNE_VECTOR_CLONES
void mask_bfloat16(const uint16_t* in, uint16_t* out, int64_t count, const uint32_t* bits,
                   uint32_t keep_max, float scale) {
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t result = round_to_bfloat16(widen_bfloat16(in[i]) * scale);
    out[i] = bits[i] <= keep_max ? result : static_cast<uint16_t>(0);
  }
}

}  // namespace

at::Tensor apply_hashed_dropout_mask(const at::Tensor& input, double p, uint64_t seed,
                                     int64_t first_element) {
  if (!input.device().is_cpu() || !input.is_contiguous() ||
      !at::isFloatingType(input.scalar_type())) {
    throw Error("dropout: expected a contiguous floating-point CPU tensor, got " +
                std::string(input.toString()) + (input.is_contiguous() ? "" : " (not contiguous)"));
  }
  if (!(p > 0 && p < 1)) throw Error("dropout: p must be in (0, 1), got " + format_number(p));
  if (first_element < 0) {
    throw Error("dropout: the first element's index must not be negative, got " +
                std::to_string(first_element));
  }
  // Element i is kept when its 32 bits of hash are below (1-p) * 2^32, probability 1-p to within
  // 2^-32: at most keep_below - 1, which is below 2^32.
  const uint64_t keep_below = static_cast<uint64_t>((1.0 - p) * 4294967296.0);
  at::Tensor output = at::empty_like(input);
  if (keep_below == 0) return output.zero_();  // 1-p under 2^-32: nothing is kept
  const auto keep_max = static_cast<uint32_t>(std::min<uint64_t>(keep_below - 1, UINT32_MAX));
  const int64_t n = input.numel();
  // Pair slot k holds the hash of pair `first_pair + k`: the elements 2k - odd and 2k + 1 - odd
  // of `input` (where they exist), so that an odd first element takes its pair's high half.
  const auto first_pair = static_cast<uint64_t>(first_element / 2);
  const int64_t odd = first_element % 2;
  const int64_t slots = (odd + n + 1) / 2;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "dropout", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    using compute_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const auto scale = static_cast<compute_t>(1.0 / (1.0 - p));
    // Elements [first, first + count) with their hashes in `bits`.
    auto apply = [&](int64_t first, int64_t count, const uint32_t* bits) {
      if constexpr (std::is_same_v<scalar_t, float>) {
        // reinterpret_cast: outside a template both branches are compiled for every type.
        mask_float(reinterpret_cast<const float*>(in + first),
                   reinterpret_cast<float*>(out + first), count, bits, keep_max,
                   static_cast<float>(scale));
      } else if constexpr (std::is_same_v<scalar_t, at::BFloat16>) {
        static_assert(sizeof(at::BFloat16) == sizeof(uint16_t));
        mask_bfloat16(reinterpret_cast<const uint16_t*>(in + first),
                      reinterpret_cast<uint16_t*>(out + first), count, bits, keep_max,
                      static_cast<float>(scale));
      } else {
        for (int64_t i = 0; i < count; ++i) {
          out[first + i] =
              bits[i] <= keep_max
                  ? static_cast<scalar_t>(static_cast<compute_t>(in[first + i]) * scale)
                  : static_cast<scalar_t>(0);
        }
      }
    };
    at::parallel_for(0, slots, 1 << 14, [&](int64_t begin, int64_t end) {
      uint32_t bits[2 * kBlockPairs];
      for (int64_t block = begin; block < end; block += kBlockPairs) {
        const int64_t block_pairs = std::min(kBlockPairs, end - block);
        hash_pairs(seed, first_pair + static_cast<uint64_t>(block), block_pairs, bits);
        const int64_t first = std::max<int64_t>(2 * block - odd, 0);
        const int64_t last = std::min(2 * (block + block_pairs) - odd, n);
        apply(first, last - first, bits + (first - (2 * block - odd)));
      }
    });
  });
  return output;
}

namespace {

// The mask is never saved: backward applies the same hash, from the seed, to the gradient.
struct HashedDropout : public torch::autograd::Function<HashedDropout> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            double p, int64_t seed, int64_t first_element) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["first_element"] = first_element;
    return apply_hashed_dropout_mask(input.contiguous(), p, static_cast<uint64_t>(seed),
                                     first_element);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    const int64_t first_element = ctx->saved_data["first_element"].toInt();
    return {apply_hashed_dropout_mask(grads[0].contiguous(), p, seed, first_element), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

// hashed_dropout(probs) @ values, keeping probs (softmax keeps them too) and values rather than
// the dropped probabilities. Backward rebuilds the product from the recomputed dropped
// probabilities and differentiates that, so the gradients are batched_matmul()'s own, written in
// the operands' memory order, then the mask is applied to the probabilities' gradient as
// HashedDropout's backward does (after the cast back to their dtype, as autograd's order was).
struct HashedDropoutMatmul : public torch::autograd::Function<HashedDropoutMatmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& probs,
                            const at::Tensor& values, double p, int64_t seed, int64_t first_element,
                            int64_t order) {
    const at::Tensor dropped = apply_hashed_dropout_mask(
        probs.contiguous(), p, static_cast<uint64_t>(seed), first_element);
    const at::Tensor context =
        batched_matmul(dropped, values, static_cast<BatchedProductOrder>(order));
    ctx->save_for_backward({probs, values});
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    ctx->saved_data["first_element"] = first_element;
    ctx->saved_data["order"] = order;
    ctx->saved_data["dtype"] = static_cast<int64_t>(context.scalar_type());
    return context;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& probs = saved[0];
    const at::Tensor& values = saved[1];
    const double p = ctx->saved_data["p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    const int64_t first_element = ctx->saved_data["first_element"].toInt();
    const auto order = static_cast<BatchedProductOrder>(ctx->saved_data["order"].toInt());
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    const bool probs_grad = ctx->needs_input_grad(0);
    const bool values_grad = ctx->needs_input_grad(1);
    // The operands as the forward product saw them: in its dtype, so that no autocast state
    // (absent or present in backward) casts them again.
    const at::Tensor dropped = apply_hashed_dropout_mask(probs.contiguous(), p, seed, first_element)
                                   .to(dtype)
                                   .detach()
                                   .requires_grad_(probs_grad);
    const at::Tensor values_cast = values.to(dtype).detach().requires_grad_(values_grad);
    std::vector<at::Tensor> wanted;
    if (probs_grad) wanted.push_back(dropped);
    if (values_grad) wanted.push_back(values_cast);
    if (wanted.empty())
      return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    at::Tensor context;
    {
      at::AutoGradMode enable_grad(true);
      context = batched_matmul(dropped, values_cast, order);
    }
    const auto product_grads = torch::autograd::grad({context}, wanted, {grads[0]});
    at::Tensor probs_gradient, values_gradient;
    size_t next = 0;
    if (probs_grad) {
      probs_gradient = apply_hashed_dropout_mask(
          product_grads[next++].to(probs.scalar_type()).contiguous(), p, seed, first_element);
    }
    if (values_grad) values_gradient = product_grads[next].to(values.scalar_type());
    return {probs_gradient, values_gradient, at::Tensor(),
            at::Tensor(),   at::Tensor(),    at::Tensor()};
  }
};

uint64_t draw_seed() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

// DropoutRows in force on this thread: {first row, rows}, {0, 0} for none.
thread_local std::pair<int64_t, int64_t> dropout_rows{0, 0};

}  // namespace
}  // namespace detail

namespace {

// Checked first, so that every device gets this library's error, not LibTorch's.
void check_dropout_probability(double p) {
  if (!(p >= 0 && p <= 1)) throw Error("dropout: p must be in [0, 1], got " + format_number(p));
}

// Where the mask is hashed: otherwise dropout is the identity or at::dropout.
bool hashes(const at::Tensor& input, double p, bool training) {
  return drops(p, training) && p < 1 && input.device().is_cpu() &&
         at::isFloatingType(input.scalar_type());
}

// The index in the whole batch (DropoutRows) of `input`'s first element.
int64_t first_element_in_batch(const at::Tensor& input) {
  const auto [first_row, rows] = detail::dropout_rows;
  if (rows == 0) return 0;
  if (input.dim() == 0 || input.size(0) != rows) {
    throw Error("dropout: a tensor of shape " + c10::str(input.sizes()) + " dropped where " +
                std::to_string(rows) + " rows of a batch were expected in its first dimension");
  }
  return first_row * (input.numel() / rows);
}

}  // namespace

DropoutRows::DropoutRows(int64_t first_row, int64_t rows) : previous_(detail::dropout_rows) {
  if (first_row < 0 || rows < 0 || (rows == 0 && first_row != 0)) {
    throw Error("dropout: " + std::to_string(rows) + " rows from row " + std::to_string(first_row) +
                " of a batch: expected a first row >= 0 and rows > 0 (or 0 and 0 for none)");
  }
  detail::dropout_rows = {first_row, rows};
}

DropoutRows::~DropoutRows() {
  detail::dropout_rows = previous_;
}

std::pair<int64_t, int64_t> DropoutRows::current() {
  return detail::dropout_rows;
}

at::Tensor hashed_dropout(const at::Tensor& input, double p, bool training) {
  check_dropout_probability(p);
  if (!drops(p, training)) return input;
  if (!hashes(input, p, training)) return at::dropout(input, p, training);
  RECORD_FUNCTION("adaptertune::hashed_dropout", std::vector<c10::IValue>());
  return detail::HashedDropout::apply(input, p, static_cast<int64_t>(detail::draw_seed()),
                                      first_element_in_batch(input));
}

at::Tensor hashed_dropout_matmul(const at::Tensor& probs, const at::Tensor& values, double p,
                                 bool training, BatchedProductOrder order) {
  check_dropout_probability(p);
  if (!hashes(probs, p, training))
    return batched_matmul(hashed_dropout(probs, p, training), values, order);
  RECORD_FUNCTION("adaptertune::hashed_dropout_matmul", std::vector<c10::IValue>());
  return detail::HashedDropoutMatmul::apply(
      probs, values, p, static_cast<int64_t>(detail::draw_seed()), first_element_in_batch(probs),
      static_cast<int64_t>(order));
}

}  // namespace adaptertune
