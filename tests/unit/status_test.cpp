// Status/Result basics.
#include <gtest/gtest.h>
#include "core/status.h"
using namespace ballast;
static Result<int> half(int x) {
  if (x % 2) return error(ErrorCode::kInvalidArgument, "odd");
  return x / 2;
}
static Result<int> quarter(int x) {
  BALLAST_ASSIGN_OR_RETURN(int h, half(x));
  return half(h);
}
TEST(Status, PropagatesErrors) {
  EXPECT_EQ(quarter(8).value(), 2);
  auto r = quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "odd");
}
