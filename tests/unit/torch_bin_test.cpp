// PyTorch checkpoints on crafted files: zip (plain and zip64) and legacy streams, tensor
// views into shared storages, dtypes, and the errors for broken archives, storages out of
// bounds, strided views, compressed entries and truncation.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "io/torch_bin.h"
#include "io/zip_reader.h"
#include "torch_bin_builders.h"

using namespace ballast;
using test::floats;
using test::TensorSpec;

namespace {

std::vector<float> values(const io::SafeTensor& t) {
  std::vector<float> v(t.nbytes / sizeof(float));
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

// wte (3, 2) and lm_head tied on storage '0'; b = elements 2..3 of storage '1' (offset view).
const std::vector<TensorSpec> kTied = {{"wte", "FloatStorage", "0", 6, 0, {3, 2}, {2, 1}},
                                       {"lm_head", "FloatStorage", "0", 6, 0, {3, 2}, {2, 1}},
                                       {"b", "FloatStorage", "1", 5, 2, {2}, {1}}};
const std::string kS0 = floats({1, 2, 3, 4, 5, 6}), kS1 = floats({10, 11, 12, 13, 14});

std::string tied_zip(bool zip64 = false) {
  return test::stored_zip({{"archive/data.pkl", test::state_dict_pickle(kTied)}, {"archive/byteorder", "little"},
                           {"archive/data/0", kS0}, {"archive/data/1", kS1}, {"archive/version", "3\n"}},
                          zip64);
}

std::string open_error(const std::string& name, const std::string& bytes) {
  auto r = io::TorchBinSet::open_file(test::write_temp(name, bytes));
  EXPECT_FALSE(r.ok()) << name << " loaded";
  return r.ok() ? "" : r.status().message();
}

void expect_tied(const io::TorchBinSet& s) {
  ASSERT_EQ(s.tensors().size(), 3u);
  const auto* wte = s.find("wte");
  const auto* head = s.find("lm_head");
  const auto* b = s.find("b");
  ASSERT_TRUE(wte && head && b);
  EXPECT_EQ(wte->dtype, DType::kF32);
  EXPECT_EQ(wte->shape, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(values(*wte), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(wte->data, head->data) << "tied weights map the same bytes";
  EXPECT_EQ(values(*b), (std::vector<float>{12, 13}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b->data) % alignof(float), 0u);
}

}  // namespace

TEST(TorchBin, ZipArchiveTiedAndOffsetViews) {
  for (bool zip64 : {false, true}) {
    auto r = io::TorchBinSet::open_file(test::write_temp(zip64 ? "tied64.bin" : "tied.bin", tied_zip(zip64)));
    ASSERT_TRUE(r.ok()) << r.status().message();
    expect_tied(*r.value());
  }
}

TEST(TorchBin, LegacyStreamIncludingMisalignedStorages) {
  // The storages follow the pickles wherever they end. Longer keys (3 occurrences each) shift
  // the data by 0, 3, 6, 9 bytes: every residue mod 4 occurs, so misaligned f32 data is read.
  for (int extra = 0; extra < 4; ++extra) {
    const std::string key0(extra + 1, '0');
    std::vector<TensorSpec> t = kTied;
    t[0].key = t[1].key = key0;
    const std::string bytes = test::legacy_stream(test::state_dict_pickle(t, /*legacy_pid=*/true),
                                                  {{key0, 6, kS0}, {"1", 5, kS1}});
    auto r = io::TorchBinSet::open_file(test::write_temp("legacy" + std::to_string(extra) + ".bin", bytes));
    ASSERT_TRUE(r.ok()) << r.status().message();
    expect_tied(*r.value());
  }
}

TEST(TorchBin, Dtypes) {
  const std::string h = std::string("\x00\x3c\x00\x40", 4);  // f16 1.0, 2.0 (also bf16 bit patterns)
  for (auto [type, dtype] : {std::pair{"HalfStorage", DType::kF16}, std::pair{"BFloat16Storage", DType::kBF16}}) {
    auto z = test::stored_zip({{"m/data.pkl", test::state_dict_pickle({{"x", type, "0", 2, 0, {2}, {1}}})},
                               {"m/data/0", h}});
    auto r = io::TorchBinSet::open_file(test::write_temp(std::string(type) + ".bin", z));
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_NE(r.value()->find("x"), nullptr);
    EXPECT_EQ(r.value()->find("x")->dtype, dtype);
    EXPECT_EQ(r.value()->find("x")->nbytes, 4u);
  }
  // int64 buffers are reported, not loaded; a scalar (GPT-2's attn.masked_bias) is one element.
  auto z = test::stored_zip({{"m/data.pkl", test::state_dict_pickle({{"position_ids", "LongStorage", "0", 2, 0, {1, 2}, {2, 1}},
                                                                     {"w", "FloatStorage", "1", 1, 0, {1}, {1}},
                                                                     {"masked_bias", "FloatStorage", "2", 1, 0, {}, {}}})},
                             {"m/data/0", std::string(16, '\0')}, {"m/data/1", floats({7})}, {"m/data/2", floats({-1e4f})}});
  auto r = io::TorchBinSet::open_file(test::write_temp("long.bin", z));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value()->find("position_ids"), nullptr);
  ASSERT_EQ(r.value()->unsupported().count("position_ids"), 1u);
  EXPECT_EQ(r.value()->unsupported().at("position_ids").rfind("int64 in ", 0), 0u);
  EXPECT_NE(r.value()->find("w"), nullptr);
  const auto* scalar = r.value()->find("masked_bias");  // shape (): one element
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(values(*scalar), (std::vector<float>{-1e4f}));
}

TEST(TorchBin, StorageOutOfBoundsAndStrides) {
  auto one = [](TensorSpec t, const std::string& data) {
    return test::stored_zip({{"a/data.pkl", test::state_dict_pickle({t})}, {"a/data/0", data}});
  };
  // Offset 4 + 3 elements in a 6-element storage.
  EXPECT_NE(open_error("oob.bin", one({"w", "FloatStorage", "0", 6, 4, {3}, {1}}, floats({1, 2, 3, 4, 5, 6})))
                .find("tensor 'w': elements [4, +3) lie outside storage '0' of 6 elements"),
            std::string::npos);
  // The pickle claims 6 elements, the record holds 4.
  EXPECT_NE(open_error("short.bin", one({"w", "FloatStorage", "0", 6, 0, {6}, {1}}, floats({1, 2, 3, 4})))
                .find("storage '0' holds 16 bytes, the pickle says 6 x 4 (truncated?)"),
            std::string::npos);
  // A transposed view (3, 2) with strides (1, 3) would be mis-read as row-major.
  EXPECT_NE(open_error("strided.bin", one({"w", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}}, floats({1, 2, 3, 4, 5, 6})))
                .find("tensor 'w': stride (1, 3) of shape (3, 2) is not contiguous"),
            std::string::npos);
  // Size-1 dims may carry any stride (torch writes such views); empty tensors are fine.
  auto ok = io::TorchBinSet::open_file(test::write_temp(
      "unit.bin", test::stored_zip({{"a/data.pkl", test::state_dict_pickle({{"w", "FloatStorage", "0", 6, 0, {1, 6}, {99, 1}},
                                                                             {"e", "FloatStorage", "0", 6, 6, {0, 4}, {4, 1}}})},
                                    {"a/data/0", floats({1, 2, 3, 4, 5, 6})}})));
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok.value()->find("e")->nbytes, 0u);
  // A storage the pickle uses but the archive lacks.
  EXPECT_NE(open_error("nodata.bin", test::stored_zip({{"a/data.pkl", test::state_dict_pickle({{"w", "FloatStorage", "7", 1, 0, {1}, {1}}})}}))
                .find("storage '7' has no record a/data/7"),
            std::string::npos);
}

TEST(TorchBin, BrokenArchives) {
  const std::string good = tied_zip();
  EXPECT_NE(open_error("notzip.bin", "hello world, not a checkpoint").find("not a PyTorch checkpoint"), std::string::npos);
  EXPECT_NE(open_error("nopkl.bin", test::stored_zip({{"a/other", "x"}})).find("without a <name>/data.pkl"),
            std::string::npos);
  EXPECT_NE(open_error("deflate.bin", test::stored_zip({{"a/data.pkl", test::state_dict_pickle(kTied)}}, false, 8))
                .find("compressed (method 8)"),
            std::string::npos);
  EXPECT_NE(open_error("big.bin", test::stored_zip({{"a/data.pkl", test::state_dict_pickle({})}, {"a/byteorder", "big"}}))
                .find("byteorder record is 'big'"),
            std::string::npos);
  EXPECT_NE(open_error("cut.bin", good.substr(0, good.size() - 30)).find("no end-of-central-directory record"),
            std::string::npos);
  // Every truncation and many corruptions fail with an error (or still load): never a crash.
  for (size_t n = 4; n < good.size(); n += 3) (void)io::TorchBinSet::open_file(test::write_temp("t.bin", good.substr(0, n)));
  for (size_t i = 0; i < good.size(); i += 2) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xA5);
    (void)io::TorchBinSet::open_file(test::write_temp("c.bin", bad));
  }
  // Not a state dict: the root is a list; an entry is not a tensor.
  EXPECT_NE(open_error("list.bin", test::stored_zip({{"a/data.pkl", test::Pickle().proto(2).op(']').stop().b}}))
                .find("the pickle holds a list, not a state dict"),
            std::string::npos);
  EXPECT_NE(open_error("notensor.bin", test::stored_zip({{"a/data.pkl", test::Pickle().proto(2).op('}').str("k").integer(3).op('s').stop().b}}))
                .find("state dict entry 'k' is a int, not a tensor"),
            std::string::npos);
}

TEST(TorchBin, BrokenLegacyStreams) {
  const std::string sd = test::state_dict_pickle(kTied, true);
  EXPECT_NE(open_error("count.bin", test::legacy_stream(sd, {{"0", 5, kS0}, {"1", 5, kS1}}))
                .find("storage '0' at byte"),
            std::string::npos);
  const std::string full = test::legacy_stream(sd, {{"0", 6, kS0}, {"1", 5, kS1}});
  EXPECT_NE(open_error("legacy_cut.bin", full.substr(0, full.size() - 3)).find("runs past the end of the file"),
            std::string::npos);
  EXPECT_NE(open_error("unlisted.bin", test::legacy_stream(sd, {{"0", 6, kS0}})).find("storage '1' has no data"),
            std::string::npos);
  EXPECT_NE(open_error("be.bin", test::legacy_stream(sd, {{"0", 6, kS0}, {"1", 5, kS1}}, false)).find("big-endian"),
            std::string::npos);
  std::string bad_magic = full;
  bad_magic[5] ^= 1;
  EXPECT_NE(open_error("magic.bin", bad_magic).find("legacy magic number"), std::string::npos);
  for (size_t n = 1; n < full.size(); n += 5) (void)io::TorchBinSet::open_file(test::write_temp("lt.bin", full.substr(0, n)));
}

TEST(TorchBin, ShardedIndex) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "torch_bin_sharded";
  std::filesystem::create_directories(dir);
  test::write_temp("torch_bin_sharded/pytorch_model-00001-of-00002.bin",
                   test::stored_zip({{"a/data.pkl", test::state_dict_pickle({kTied[0], kTied[1]})}, {"a/data/0", kS0}}));
  test::write_temp("torch_bin_sharded/pytorch_model-00002-of-00002.bin",
                   test::stored_zip({{"b/data.pkl", test::state_dict_pickle({kTied[2]})}, {"b/data/1", kS1}}));
  test::write_temp("torch_bin_sharded/pytorch_model.bin.index.json",
                   R"({"metadata": {}, "weight_map": {"wte": "pytorch_model-00001-of-00002.bin",
                       "lm_head": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}})");
  auto r = io::TorchBinSet::open_dir(dir.string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  expect_tied(*r.value());
  test::write_temp("torch_bin_sharded/pytorch_model.bin.index.json",
                   R"({"weight_map": {"wte": "pytorch_model-00001-of-00002.bin", "gone": "pytorch_model-00002-of-00002.bin"}})");
  r = io::TorchBinSet::open_dir(dir.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tensor 'gone' not found in pytorch_model-00002-of-00002.bin"), std::string::npos);
}
