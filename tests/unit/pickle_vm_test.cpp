// The restricted unpickler on crafted byte streams: state dicts as torch.save writes them,
// refused globals (by GLOBAL, STACK_GLOBAL, INST), refused REDUCEs and opcodes, malformed
// and truncated streams (every prefix and single-byte corruption must fail cleanly).
#include <gtest/gtest.h>

#include "io/pickle_vm.h"
#include "torch_bin_builders.h"

using namespace ballast;
using namespace ballast::io::pickle;
using ballast::test::Pickle;
using ballast::test::TensorSpec;

namespace {

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

Result<uint32_t> run(Unpickler& up, const std::string& bytes) {
  size_t pos = 0;
  return up.load(span_of(bytes), pos);
}

std::string error_of(const std::string& bytes) {
  Unpickler up("model/pytorch_model.bin");
  auto r = run(up, bytes);
  EXPECT_FALSE(r.ok()) << "expected a refusal";
  return r.ok() ? "" : r.status().message();
}

// os.system("touch x") as Python's pickle writes it at protocol 2 (GLOBAL) and 4 (STACK_GLOBAL).
std::string reduce_call_global(const std::string& module, const std::string& name) {
  Pickle p;
  p.proto(2).global(module, name).mark().str("touch /tmp/ballast_pwned").op('t').op('R').stop();
  return p.b;
}
std::string reduce_call_stack_global(const std::string& module, const std::string& name) {
  Pickle p;
  p.proto(4).op(0x95).raw(std::string(8, '\0'));  // FRAME
  p.op(0x8c).op(static_cast<uint8_t>(module.size())).raw(module).op(0x94);
  p.op(0x8c).op(static_cast<uint8_t>(name.size())).raw(name).op(0x94).op(0x93).op(0x94);
  p.op(0x8c).op(3).raw("1+1").op(0x94).op(0x85).op(0x94).op('R').op(0x94).stop();
  return p.b;
}

}  // namespace

TEST(PickleVm, StateDictWithTiedStorageAndOffsets) {
  // wte (4, 2) and lm_head share storage '0'; bias is 3 elements at offset 5 of storage '1'.
  const std::string bytes = test::state_dict_pickle({
      {"wte", "HalfStorage", "0", 8, 0, {4, 2}, {2, 1}},
      {"lm_head", "HalfStorage", "0", 8, 0, {4, 2}, {2, 1}},
      {"bias", "BFloat16Storage", "1", 10, 5, {3}, {1}},
  });
  Unpickler up("f.bin");
  auto r = run(up, bytes);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Obj& d = up.at(r.value());
  ASSERT_EQ(d.kind, Kind::kDict);
  ASSERT_EQ(d.items.size(), 6u);
  EXPECT_EQ(up.at(d.items[0]).s, "wte");
  const Obj& wte = up.at(d.items[1]);
  const Obj& head = up.at(d.items[3]);
  const Obj& bias = up.at(d.items[5]);
  ASSERT_EQ(wte.kind, Kind::kTensor);
  EXPECT_EQ(wte.shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(wte.stride, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(wte.items[0], head.items[0]) << "tied tensors must share one storage object";
  EXPECT_EQ(up.at(wte.items[0]).storage_type->dtype, DType::kF16);
  EXPECT_EQ(bias.i, 5);
  EXPECT_EQ(up.at(bias.items[0]).storage_type->dtype, DType::kBF16);
  EXPECT_EQ(up.at(bias.items[0]).i, 10);
  ASSERT_EQ(up.storages().size(), 2u);
  EXPECT_EQ(up.storages().count("1"), 1u);
}

TEST(PickleVm, RebuildParameterAndMetadataBuild) {
  // torch.save of parameters: _rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict());
  // state_dict()._metadata arrives as BUILD with a dict.
  Pickle p;
  p.proto(2).ordered_dict().mark().str("w").global("torch._utils", "_rebuild_parameter").mark();
  p.raw(test::tensor_items({{"", "FloatStorage", "0", 4, 0, {4}, {1}}}).substr(5));  // drop the key
  p.op(0x88).ordered_dict().op('t').op('R').op('u');
  p.op('}').str("_metadata").op('}').op('s').op('b').stop();
  Unpickler up("f.bin");
  auto r = run(up, p.b);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const Obj& d = up.at(r.value());
  ASSERT_EQ(d.items.size(), 2u);
  EXPECT_EQ(up.at(d.items[1]).kind, Kind::kTensor);
  EXPECT_EQ(up.at(d.items[1]).shape, (std::vector<int64_t>{4}));
}

TEST(PickleVm, RefusesForeignGlobalsByName) {
  const std::string want = "model/pytorch_model.bin: refusing to load: pickle global '";
  const std::string tail = "' is not part of a PyTorch state dict";
  EXPECT_EQ(error_of(reduce_call_global("posix", "system")), want + "posix.system" + tail);
  EXPECT_EQ(error_of(reduce_call_global("subprocess", "Popen")), want + "subprocess.Popen" + tail);
  EXPECT_EQ(error_of(reduce_call_stack_global("builtins", "eval")), want + "builtins.eval" + tail);
  EXPECT_EQ(error_of(reduce_call_stack_global("os", "system")), want + "os.system" + tail);
  // Near misses of allowed names are foreign too.
  EXPECT_EQ(error_of(reduce_call_global("torch", "load")), want + "torch.load" + tail);
  EXPECT_EQ(error_of(reduce_call_global("torch._utils", "_rebuild_qtensor")), want + "torch._utils._rebuild_qtensor" + tail);
  EXPECT_EQ(error_of(reduce_call_global("collections", "defaultdict")), want + "collections.defaultdict" + tail);
  // INST names its class inline and instantiates it.
  Pickle inst;
  inst.proto(2).mark().str("id").raw("iposix\nsystem\n").stop();
  EXPECT_EQ(error_of(inst.b), want + "posix.system" + tail);
  // Refused at the GLOBAL itself, even if never called.
  Pickle unused;
  unused.proto(2).global("builtins", "exec").op('0').none().stop();
  EXPECT_EQ(error_of(unused.b), want + "builtins.exec" + tail);
}

TEST(PickleVm, RefusesReduceOfAnythingButTheAllowedFunctions) {
  Pickle storage_call;  // torch.FloatStorage(8): allowed as a type tag, never as a call
  storage_call.proto(2).global("torch", "FloatStorage").mark().integer(8).op('t').op('R').stop();
  EXPECT_NE(error_of(storage_call.b).find("REDUCE calls 'torch.FloatStorage'"), std::string::npos);
  Pickle str_call;
  str_call.proto(2).str("posix.system").op(')').op('R').stop();
  EXPECT_NE(error_of(str_call.b).find("REDUCE calls a str"), std::string::npos);
  Pickle od_args;  // OrderedDict(5)
  od_args.proto(2).global("collections", "OrderedDict").mark().integer(5).op('t').op('R').stop();
  EXPECT_NE(error_of(od_args.b).find("OrderedDict argument is an int"), std::string::npos);
  Pickle bad_tensor;  // _rebuild_tensor_v2 with a str for a storage
  bad_tensor.proto(2).global("torch._utils", "_rebuild_tensor_v2").mark().str("x").integer(0).ints({1}).ints({1});
  bad_tensor.op(0x89).ordered_dict().op('t').op('R').stop();
  EXPECT_NE(error_of(bad_tensor.b).find("_rebuild_tensor_v2: storage is a str"), std::string::npos);
}

TEST(PickleVm, RefusesUnknownOpcodes) {
  for (int code : {0x81 /*NEWOBJ*/, 0x92 /*NEWOBJ_EX*/, int('o') /*OBJ*/, int('P') /*PERSID*/, 0x82 /*EXT1*/, int('S'), 0x00, 0xff}) {
    Pickle p;
    p.proto(2).op(static_cast<uint8_t>(code)).stop();
    EXPECT_NE(error_of(p.b).find("pickle byte 2: opcode 0x"), std::string::npos) << int(code);
  }
  Pickle newobj;
  newobj.proto(2).op(0x81).stop();
  EXPECT_EQ(error_of(newobj.b), "model/pytorch_model.bin: pickle byte 2: opcode 0x81 is not used by PyTorch state dicts");
  Pickle proto6;
  proto6.proto(6).none().stop();
  EXPECT_NE(error_of(proto6.b).find("protocol 6"), std::string::npos);
}

TEST(PickleVm, MalformedStreams) {
  Pickle underflow;
  underflow.proto(2).op('R').stop();
  EXPECT_NE(error_of(underflow.b).find("stack underflow"), std::string::npos);
  Pickle below_mark;  // a pop may not reach below the last MARK
  below_mark.proto(2).none().mark().op('0').stop();
  EXPECT_NE(error_of(below_mark.b).find("stack underflow"), std::string::npos);
  Pickle memo;
  memo.proto(2).op('h').op(5).stop();
  EXPECT_NE(error_of(memo.b).find("memo key 5 was never stored"), std::string::npos);
  Pickle no_mark;
  no_mark.proto(2).none().op('t').stop();
  EXPECT_NE(error_of(no_mark.b).find("no MARK"), std::string::npos);
  Pickle append_to_dict;
  append_to_dict.proto(2).op('}').none().op('a').stop();
  EXPECT_NE(error_of(append_to_dict.b).find("APPEND(S) on a dict"), std::string::npos);
  Pickle pid;  // persistent id that is not a storage tuple
  pid.proto(2).str("storage").op('Q').stop();
  EXPECT_NE(error_of(pid.b).find("persistent id is not"), std::string::npos);
  Pickle two_types;  // storage '0' named as float32 then as float16
  two_types.proto(2).mark().raw(test::tensor_items({{"a", "FloatStorage", "0", 4, 0, {4}, {1}},
                                                    {"b", "HalfStorage", "0", 4, 0, {4}, {1}}}))
      .op('t').stop();
  EXPECT_NE(error_of(two_types.b).find("storage '0' is named twice"), std::string::npos);
  Pickle huge;  // BINUNICODE announcing 4 GB
  huge.proto(2).op('X').raw(std::string("\xff\xff\xff\xff", 4)).raw("abc").stop();
  EXPECT_NE(error_of(huge.b).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x80\x02N", 3)).find("truncated"), std::string::npos);  // no STOP
}

TEST(PickleVm, IntegersAndProtocol4Forms) {
  Pickle p;  // [LONG1 -1, LONG1 2^40, BININT -2, BININT2 65535, FRAME+SHORT_BINUNICODE+MEMOIZE+BINGET]
  p.proto(4).op(0x95).raw(std::string(8, '\0')).op(']').mark();
  p.op(0x8a).op(1).op(0xff).op(0x8a).op(6).raw(std::string("\0\0\0\0\0\x01", 6)).integer(-2).op('M').op(0xff).op(0xff);
  p.op(0x8c).op(2).raw("ab").op(0x94).op('h').op(0).op('e').stop();
  Unpickler up("f.bin");
  auto r = run(up, p.b);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& items = up.at(r.value()).items;
  ASSERT_EQ(items.size(), 6u);
  EXPECT_EQ(up.at(items[0]).i, -1);
  EXPECT_EQ(up.at(items[1]).i, int64_t{1} << 40);
  EXPECT_EQ(up.at(items[2]).i, -2);
  EXPECT_EQ(up.at(items[3]).i, 65535);
  EXPECT_EQ(up.at(items[4]).s, "ab");
  EXPECT_EQ(items[5], items[4]) << "BINGET returns the memoized object itself";
}

// Every prefix of a valid state dict, and every single-byte corruption of it, either
// loads or fails with an error: no crash, no hang, no read past the buffer (ASan build).
TEST(PickleVm, TruncationsAndCorruptionsFailCleanly) {
  const std::string good = test::state_dict_pickle({{"wte", "FloatStorage", "0", 8, 0, {4, 2}, {2, 1}},
                                                    {"lm_head", "FloatStorage", "0", 8, 0, {4, 2}, {2, 1}}});
  for (size_t n = 0; n < good.size(); ++n) {
    Unpickler up("f.bin");
    auto r = run(up, good.substr(0, n));
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes loaded";
  }
  size_t refused = 0;
  for (size_t i = 0; i < good.size(); ++i)
    for (int v : {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, (good[i] ^ 0x20) & 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(v);
      Unpickler up("f.bin");
      refused += !run(up, bad).ok();
    }
  EXPECT_GT(refused, good.size());  // most corruptions are caught by the VM itself
}
