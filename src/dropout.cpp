#include "dropout.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <type_traits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "vector_clones.h"

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

// bfloat16 as its bits: widened to float, scaled, and rounded back to the nearest even as
// c10::BFloat16 rounds (a NaN becomes the quiet NaN 0x7FC0), so the result has the same bits as
// the generic loop's static_cast<c10::BFloat16>(float(x) * scale).
ADAPTERTUNE_VECTOR_CLONES
void mask_bfloat16(const uint16_t* in, uint16_t* out, int64_t count, const uint32_t* bits,
                   uint32_t keep_max, float scale) {
  for (int64_t i = 0; i < count; ++i) {
    uint32_t word = static_cast<uint32_t>(in[i]) << 16;
    float value;
    std::memcpy(&value, &word, sizeof value);
    value *= scale;
    std::memcpy(&word, &value, sizeof word);
    const auto rounded = static_cast<uint16_t>((word + 0x7FFFu + ((word >> 16) & 1u)) >> 16);
    const uint16_t result = value != value ? static_cast<uint16_t>(0x7FC0) : rounded;
    out[i] = bits[i] <= keep_max ? result : static_cast<uint16_t>(0);
  }
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
  // 2^-32: at most keep_below - 1, which is below 2^32.
  const uint64_t keep_below = static_cast<uint64_t>((1.0 - p) * 4294967296.0);
  at::Tensor output = at::empty_like(input);
  if (keep_below == 0) return output.zero_();  // 1-p under 2^-32: nothing is kept
  const auto keep_max = static_cast<uint32_t>(std::min<uint64_t>(keep_below - 1, UINT32_MAX));
  const int64_t n = input.numel();
  const int64_t pairs = (n + 1) / 2;
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
    at::parallel_for(0, pairs, 1 << 14, [&](int64_t begin, int64_t end) {
      uint32_t bits[2 * kBlockPairs];
      for (int64_t block = begin; block < end; block += kBlockPairs) {
        const int64_t block_pairs = std::min(kBlockPairs, end - block);
        hash_pairs(seed, static_cast<uint64_t>(block), block_pairs, bits);
        apply(2 * block, std::min(2 * block_pairs, n - 2 * block), bits);
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
