#include "adaptertune/layers/pooler.h"

namespace adaptertune {

BertPoolerImpl::BertPoolerImpl(const BertConfig& config) {
  dense = register_module("dense", torch::nn::Linear(config.hidden_size, config.hidden_size));
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& hidden) {
  return at::tanh(dense(hidden.select(1, 0)));
}

}  // namespace adaptertune
