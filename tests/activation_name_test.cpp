#include "adaptertune/activation_name.h"

#include <gtest/gtest.h>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

TEST(ActivationName, EveryActivationReadsBackFromItsName) {
  for (Activation activation : {Activation::kGelu, Activation::kGeluTanh, Activation::kRelu,
                                Activation::kSilu, Activation::kTanh, Activation::kIdentity}) {
    EXPECT_EQ(parse_activation(activation_name(activation), "test"), activation)
        << activation_name(activation);
  }
}

TEST(ActivationName, ReadsHuggingFaceAndAdapterHubSpellingsInAnyCase) {
  EXPECT_EQ(parse_activation("GELU", "test"), Activation::kGelu);
  EXPECT_EQ(parse_activation("gelu_pytorch_tanh", "test"), Activation::kGeluTanh);
  EXPECT_EQ(parse_activation("gelu_fast", "test"), Activation::kGeluTanh);
  EXPECT_EQ(parse_activation("swish", "test"), Activation::kSilu);
  EXPECT_EQ(parse_activation("identity", "test"), Activation::kIdentity);
  EXPECT_ERROR_CONTAINS(parse_activation("mish", "config.json: hidden_act"),
                        "config.json: hidden_act: unknown activation \"mish\" (expected gelu");
}

}  // namespace
}  // namespace adaptertune
