#include "dropout.h"

#include <mutex>
#include <type_traits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"

namespace adaptertune {
namespace detail {
namespace {

// SplitMix64's output function over a counter: a well-mixed 64-bit value per (seed, counter)
// (it passes BigCrush as a sequence), two keep decisions per value, and no state between
// elements, so any thread can compute any element's bit.
inline uint64_t splitmix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

at::Tensor apply_hashed_dropout_mask(const at::Tensor& input, double p, uint64_t seed) {
  if (!input.device().is_cpu() || !input.is_contiguous() ||
      !at::isFloatingType(input.scalar_type())) {
    throw Error("dropout: expected a contiguous floating-point CPU tensor, got " +
                std::string(input.toString()) + (input.is_contiguous() ? "" : " (not contiguous)"));
  }
  if (!(p > 0 && p < 1)) throw Error("dropout: p must be in (0, 1), got " + std::to_string(p));
  // Element i is kept when its 32 bits of hash are below (1-p) * 2^32, probability 1-p to within
  // 2^-32.
  const uint64_t keep_below = static_cast<uint64_t>((1.0 - p) * 4294967296.0);
  at::Tensor output = at::empty_like(input);
  const int64_t n = input.numel();
  const int64_t pairs = (n + 1) / 2;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "dropout", [&] {
    const scalar_t* in = input.data_ptr<scalar_t>();
    scalar_t* out = output.data_ptr<scalar_t>();
    using compute_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const auto s = static_cast<compute_t>(1.0 / (1.0 - p));
    auto keep = [&](uint64_t bits, int64_t i) {
      out[i] = bits < keep_below ? static_cast<scalar_t>(static_cast<compute_t>(in[i]) * s)
                                 : static_cast<scalar_t>(0);
    };
    at::parallel_for(0, pairs, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const uint64_t bits = splitmix64(seed, static_cast<uint64_t>(j));
        keep(bits & 0xFFFFFFFFULL, 2 * j);
        if (2 * j + 1 < n) keep(bits >> 32, 2 * j + 1);
      }
    });
  });
  return output;
}

namespace {

// The mask is never saved: backward applies the same hash, from the seed, to the gradient.
struct HashedDropout : public torch::autograd::Function<HashedDropout> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            double p, int64_t seed) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["seed"] = seed;
    return apply_hashed_dropout_mask(input.contiguous(), p, static_cast<uint64_t>(seed));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const double p = ctx->saved_data["p"].toDouble();
    const auto seed = static_cast<uint64_t>(ctx->saved_data["seed"].toInt());
    return {apply_hashed_dropout_mask(grads[0].contiguous(), p, seed), at::Tensor(), at::Tensor()};
  }
};

uint64_t draw_seed() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(generator)->random64();
}

}  // namespace
}  // namespace detail

at::Tensor hashed_dropout(const at::Tensor& input, double p, bool training) {
  // Checked first, so that every device gets this library's error, not LibTorch's.
  if (!(p >= 0 && p <= 1)) throw Error("dropout: p must be in [0, 1], got " + std::to_string(p));
  if (!training || p == 0) return input;
  if (!input.device().is_cpu() || !at::isFloatingType(input.scalar_type()) || p == 1) {
    return at::dropout(input, p, training);
  }
  return detail::HashedDropout::apply(input, p, static_cast<int64_t>(detail::draw_seed()));
}

}  // namespace adaptertune
