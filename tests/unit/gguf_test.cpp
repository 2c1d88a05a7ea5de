// GGUF reader: a crafted well-formed file parses; every malformed header field gives a
// FormatError naming the file and field, never a crash or a read past the end.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/gguf.h"

using namespace ballast;

namespace {

struct Builder {
  std::vector<uint8_t> b;
  template <class T>
  void pod(T v) {
    auto* p = reinterpret_cast<uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
  }
};

// One F32 tensor "w" of shape [4, 2] with the given data offset.
std::vector<uint8_t> make_gguf(uint64_t tensor_offset = 0, uint32_t version = 3, uint64_t n_kv = 2) {
  Builder g;
  g.pod<uint32_t>(0x46554747);
  g.pod<uint32_t>(version);
  g.pod<uint64_t>(1);     // tensors
  g.pod<uint64_t>(n_kv);  // kv
  g.str("general.architecture");
  g.pod<uint32_t>(8);
  g.str("llama");
  g.str("tokenizer.ggml.tokens");
  g.pod<uint32_t>(9);
  g.pod<uint32_t>(8);
  g.pod<uint64_t>(2);
  g.str("a");
  g.str("b");
  g.str("w");
  g.pod<uint32_t>(2);
  g.pod<uint64_t>(4);
  g.pod<uint64_t>(2);
  g.pod<uint32_t>(0);  // F32
  g.pod<uint64_t>(tensor_offset);
  while (g.b.size() % 32) g.b.push_back(0);
  for (int i = 0; i < 8; ++i) g.pod<float>(static_cast<float>(i));
  return g.b;
}

std::string write_tmp(const std::vector<uint8_t>& bytes, const std::string& name) {
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return path;
}

}  // namespace

TEST(Gguf, ParsesWellFormedFile) {
  auto path = write_tmp(make_gguf(), "ok.gguf");
  auto r = io::GgufFile::open(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto& g = *r.value();
  EXPECT_EQ(g.architecture(), "llama");
  ASSERT_NE(g.get_strings("tokenizer.ggml.tokens"), nullptr);
  EXPECT_EQ(g.get_strings("tokenizer.ggml.tokens")->at(1), "b");
  const auto* t = g.tensor("w");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<uint64_t>{4, 2}));
  float v[8];
  std::memcpy(v, t->data, sizeof v);
  EXPECT_EQ(v[7], 7.0f);
}

TEST(Gguf, TensorOffsetPastEndIsAClearError) {
  auto path = write_tmp(make_gguf(1 << 20), "offset.gguf");
  auto r = io::GgufFile::open(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kFormatError);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_NE(r.status().message().find("'w offset'"), std::string::npos);
  EXPECT_NE(r.status().message().find("past the end"), std::string::npos);
}

TEST(Gguf, EveryTruncationFailsCleanly) {
  auto full = make_gguf();
  for (size_t n = 0; n + 1 < full.size(); ++n) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    auto r = io::GgufFile::open(write_tmp(cut, "cut.gguf"));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.status().code(), n == 0 ? ErrorCode::kFormatError : ErrorCode::kFormatError);
  }
}

TEST(Gguf, BadMagicVersionAndCounts) {
  auto bad = make_gguf();
  bad[0] = 'X';
  auto r = io::GgufFile::open(write_tmp(bad, "magic.gguf"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("magic"), std::string::npos);
  r = io::GgufFile::open(write_tmp(make_gguf(0, 7), "version.gguf"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unsupported GGUF version 7"), std::string::npos);
  r = io::GgufFile::open(write_tmp(make_gguf(0, 3, 1ull << 60), "kv.gguf"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("metadata_kv_count"), std::string::npos);
}

TEST(Gguf, RandomCorruptionNeverCrashes) {
  auto full = make_gguf();
  uint32_t seed = 1;
  for (int i = 0; i < 2000; ++i) {
    auto c = full;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1664525u + 1013904223u;
      c[seed % c.size()] = static_cast<uint8_t>(seed >> 24);
    }
    auto r = io::GgufFile::open(write_tmp(c, "fuzz.gguf"));
    if (r.ok()) {
      for (const auto& t : r.value()->tensors())
        EXPECT_TRUE(r.value()->file()->contains(t.data - r.value()->file()->data(), t.nbytes));
    }
  }
}
