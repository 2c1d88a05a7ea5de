// safetensors reader: well-formed, truncated, and inconsistent headers.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "io/safetensors.h"

using namespace ballast;

namespace {
std::string write_st(const std::string& header, size_t data_bytes, const std::string& name) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header;
  std::string data(data_bytes, '\0');
  f << data;
  return path;
}
}  // namespace

TEST(Safetensors, ParsesAndChecksSizes) {
  auto p = write_st(R"({"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}})", 12, "ok.safetensors");
  auto r = io::SafetensorsSet::open_file(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto* t = r.value()->find("a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::kBF16);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{2, 3}));
}

TEST(Safetensors, TruncatedDataIsAClearError) {
  auto p = write_st(R"({"a":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})", 10, "trunc.safetensors");
  auto r = io::SafetensorsSet::open_file(p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kFormatError);
  EXPECT_NE(r.status().message().find(p), std::string::npos);
  EXPECT_NE(r.status().message().find("a.data_offsets"), std::string::npos);
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos);
}

TEST(Safetensors, ShapeDtypeMismatchAndBadHeader) {
  auto p = write_st(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", 8, "mismatch.safetensors");
  auto r = io::SafetensorsSet::open_file(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not match shape"), std::string::npos);
  p = write_st("{not json", 0, "json.safetensors");
  r = io::SafetensorsSet::open_file(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("invalid JSON"), std::string::npos);
  std::string path = ::testing::TempDir() + "short.safetensors";
  std::ofstream(path, std::ios::binary) << "abc";
  r = io::SafetensorsSet::open_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("header_size"), std::string::npos);
}
