#include "adaptertune/format.h"

#include <gtest/gtest.h>

namespace adaptertune {
namespace {

TEST(Format, GroupsDigitsInThrees) {
  EXPECT_EQ(with_commas(0), "0");
  EXPECT_EQ(with_commas(999), "999");
  EXPECT_EQ(with_commas(1000), "1,000");
  EXPECT_EQ(with_commas(11072770), "11,072,770");
  EXPECT_EQ(with_commas(-123), "-123");
  EXPECT_EQ(with_commas(-1234567), "-1,234,567");
}

}  // namespace
}  // namespace adaptertune
