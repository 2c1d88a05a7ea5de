// The restricted pickle VM: opcodes of protocols 2-5 that torch.save output uses (plus the
// protocol-0/1 forms of the same containers), the allow-list of globals, and the three
// "calls" a state dict makes, interpreted as record builders.
#include "io/pickle_vm.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>

namespace ballast::io::pickle {

namespace {

const StorageType kStorageTypes[] = {
    {"FloatStorage", "float32", DType::kF32, 4},   {"HalfStorage", "float16", DType::kF16, 2},
    {"BFloat16Storage", "bfloat16", DType::kBF16, 2}, {"DoubleStorage", "float64", std::nullopt, 8},
    {"LongStorage", "int64", std::nullopt, 8},     {"IntStorage", "int32", std::nullopt, 4},
    {"ShortStorage", "int16", std::nullopt, 2},    {"CharStorage", "int8", std::nullopt, 1},
    {"ByteStorage", "uint8", std::nullopt, 1},     {"BoolStorage", "bool", std::nullopt, 1},
};

// Globals a plain torch.save(model.state_dict()) emits. Everything else is refused.
struct AllowedGlobal {
  const char* module;
  const char* name;
  Callable callable;
};
const AllowedGlobal kAllowed[] = {
    {"collections", "OrderedDict", Callable::kOrderedDict},
    {"torch._utils", "_rebuild_tensor_v2", Callable::kRebuildTensorV2},
    {"torch._utils", "_rebuild_parameter", Callable::kRebuildParameter},
};

// Opcodes (pickletools names).
enum : uint8_t {
  MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', NONE = 'N', NEWTRUE = 0x88, NEWFALSE = 0x89,
  BININT = 'J', BININT1 = 'K', BININT2 = 'M', LONG1 = 0x8a, BINFLOAT = 'G',
  BINUNICODE = 'X', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINSTRING = 'T', SHORT_BINSTRING = 'U',
  BINBYTES = 'B', SHORT_BINBYTES = 'C', BINBYTES8 = 0x8e,
  EMPTY_TUPLE = ')', TUPLE = 't', TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87,
  EMPTY_LIST = ']', APPEND = 'a', APPENDS = 'e', LIST = 'l', EMPTY_DICT = '}', SETITEM = 's',
  SETITEMS = 'u', DICT = 'd', GLOBAL = 'c', STACK_GLOBAL = 0x93, INST = 'i', REDUCE = 'R', BUILD = 'b',
  BINPERSID = 'Q', BINPUT = 'q', LONG_BINPUT = 'r', MEMOIZE = 0x94, BINGET = 'h', LONG_BINGET = 'j',
  PROTO = 0x80, FRAME = 0x95,
};

std::string hex_byte(uint8_t b) {
  char buf[32];
  if (b >= 0x21 && b < 0x7f)
    std::snprintf(buf, sizeof buf, "0x%02x ('%c')", b, b);
  else
    std::snprintf(buf, sizeof buf, "0x%02x", b);
  return buf;
}

}  // namespace

const StorageType* find_storage_type(const std::string& name) {
  for (const auto& t : kStorageTypes)
    if (name == t.name) return &t;
  return nullptr;
}

const char* Unpickler::kind_name(Kind k) {
  static const char* const kNames[] = {"None", "bool",  "int",    "int",   "float",          "str",   "bytes",
                                       "tuple", "list", "dict",   "global", "storage", "tensor"};
  return kNames[static_cast<int>(k)];
}

std::string Unpickler::describe(uint32_t idx) const {
  const Obj& o = objs_[idx];
  if (o.kind == Kind::kGlobal) return "'" + o.s + "'";
  const std::string k = kind_name(o.kind);
  return (k == "int" ? "an " : "a ") + k;
}

Status Unpickler::fail(const std::string& msg) const {
  return error(ErrorCode::kFormatError, source_ + ": pickle byte " + std::to_string(op_pos_) + ": " + msg);
}

Status Unpickler::refuse_global(const std::string& module, const std::string& name) const {
  return error(ErrorCode::kFormatError, source_ + ": refusing to load: pickle global '" + module + "." + name +
                                            "' is not part of a PyTorch state dict");
}

uint32_t Unpickler::push_new(Obj o) {
  objs_.push_back(std::move(o));
  const auto idx = static_cast<uint32_t>(objs_.size() - 1);
  stack_.push_back(idx);
  return idx;
}

Result<uint32_t> Unpickler::top() const {
  if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) return fail("stack underflow");
  return stack_.back();
}

Result<uint32_t> Unpickler::pop() {
  BALLAST_ASSIGN_OR_RETURN(uint32_t v, top());
  stack_.pop_back();
  return v;
}

Result<std::vector<uint32_t>> Unpickler::pop_mark() {
  if (marks_.empty()) return fail("no MARK on the stack");
  const size_t m = marks_.back();
  marks_.pop_back();
  std::vector<uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
  stack_.resize(m);
  return items;
}

Status Unpickler::read(size_t n, const uint8_t** p) {
  if (n > bytes_.size() - pos_) return fail("truncated: needs " + std::to_string(n) + " more bytes");
  *p = bytes_.data() + pos_;
  pos_ += n;
  return Status();
}

Result<uint64_t> Unpickler::read_le(int n) {
  const uint8_t* p = nullptr;
  BALLAST_RETURN_IF_ERROR(read(n, &p));
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Result<std::string> Unpickler::read_line() {
  const size_t start = pos_;
  while (pos_ < bytes_.size() && bytes_[pos_] != '\n') {
    if (pos_ - start > 256) return fail("global name longer than 256 bytes");
    ++pos_;
  }
  if (pos_ == bytes_.size()) return fail("truncated: unterminated global name");
  return std::string(reinterpret_cast<const char*>(bytes_.data() + start), pos_++ - start);
}

Status Unpickler::push_global(const std::string& module, const std::string& name) {
  Obj g;
  g.kind = Kind::kGlobal;
  g.s = module + "." + name;
  if (module == "torch" && (g.storage_type = find_storage_type(name))) {
    g.callable = Callable::kStorageType;
    push_new(std::move(g));
    return Status();
  }
  for (const auto& a : kAllowed)
    if (module == a.module && name == a.name) {
      g.callable = a.callable;
      push_new(std::move(g));
      return Status();
    }
  return refuse_global(module, name);
}

Status Unpickler::memo_put(uint64_t key) {
  BALLAST_ASSIGN_OR_RETURN(uint32_t v, top());
  memo_[key] = v;
  return Status();
}

Status Unpickler::memo_get(uint64_t key) {
  auto it = memo_.find(key);
  if (it == memo_.end()) return fail("memo key " + std::to_string(key) + " was never stored");
  stack_.push_back(it->second);
  return Status();
}

Status Unpickler::set_items(uint32_t dict, const std::vector<uint32_t>& kv) {
  if (objs_[dict].kind != Kind::kDict) return fail("SETITEM(S) on " + describe(dict));
  if (kv.size() % 2) return fail("SETITEMS with an odd number of items");
  auto& items = objs_[dict].items;
  items.insert(items.end(), kv.begin(), kv.end());
  return Status();
}

Status Unpickler::append_items(uint32_t list, const std::vector<uint32_t>& v) {
  if (objs_[list].kind != Kind::kList) return fail("APPEND(S) on " + describe(list));
  auto& items = objs_[list].items;
  items.insert(items.end(), v.begin(), v.end());
  return Status();
}

Result<std::vector<int64_t>> Unpickler::int_tuple(uint32_t idx, const char* what) const {
  const Obj& o = objs_[idx];
  if (o.kind != Kind::kTuple)
    return fail(std::string("_rebuild_tensor_v2: ") + what + " is " + describe(idx) + ", not a tuple");
  std::vector<int64_t> v;
  for (uint32_t e : o.items) {
    if (objs_[e].kind != Kind::kInt || objs_[e].i < 0)
      return fail(std::string("_rebuild_tensor_v2: ") + what + " holds " + describe(e) + ", not a size");
    v.push_back(objs_[e].i);
  }
  return v;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
Result<uint32_t> Unpickler::rebuild_tensor(const std::vector<uint32_t>& a) {
  if (a.size() != 6 && a.size() != 7)
    return fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
  if (objs_[a[0]].kind != Kind::kStorage) return fail("_rebuild_tensor_v2: storage is " + describe(a[0]));
  if (objs_[a[1]].kind != Kind::kInt || objs_[a[1]].i < 0)
    return fail("_rebuild_tensor_v2: storage_offset is " + describe(a[1]));
  Obj t;
  t.kind = Kind::kTensor;
  t.i = objs_[a[1]].i;
  t.items = {a[0]};
  BALLAST_ASSIGN_OR_RETURN(t.shape, int_tuple(a[2], "size"));
  BALLAST_ASSIGN_OR_RETURN(t.stride, int_tuple(a[3], "stride"));
  if (t.shape.size() != t.stride.size()) return fail("_rebuild_tensor_v2: size and stride differ in length");
  if (objs_[a[5]].kind != Kind::kDict || !objs_[a[5]].items.empty())
    return fail("_rebuild_tensor_v2: backward_hooks is not an empty dict");
  push_new(std::move(t));
  return static_cast<uint32_t>(objs_.size() - 1);
}

Status Unpickler::reduce() {
  BALLAST_ASSIGN_OR_RETURN(uint32_t args_idx, pop());
  BALLAST_ASSIGN_OR_RETURN(uint32_t fn, pop());
  const Obj& f = objs_[fn];
  if (f.kind != Kind::kGlobal || f.callable == Callable::kStorageType)
    return fail("REDUCE calls " + describe(fn) +
                "; a state dict only calls OrderedDict, _rebuild_tensor_v2 and _rebuild_parameter");
  if (objs_[args_idx].kind != Kind::kTuple) return fail("REDUCE arguments are " + describe(args_idx));
  const std::vector<uint32_t> args = objs_[args_idx].items;
  switch (f.callable) {
    case Callable::kOrderedDict: {
      Obj d;
      d.kind = Kind::kDict;
      if (args.size() > 1) return fail("OrderedDict takes at most 1 argument");
      if (args.size() == 1) {  // protocol 0/1: OrderedDict([[key, value], ...])
        if (objs_[args[0]].kind != Kind::kList) return fail("OrderedDict argument is " + describe(args[0]));
        for (uint32_t pair : objs_[args[0]].items) {
          const Obj& p = objs_[pair];
          if ((p.kind != Kind::kList && p.kind != Kind::kTuple) || p.items.size() != 2)
            return fail("OrderedDict item is not a (key, value) pair");
          d.items.insert(d.items.end(), p.items.begin(), p.items.end());
        }
      }
      push_new(std::move(d));
      return Status();
    }
    case Callable::kRebuildTensorV2:
      return rebuild_tensor(args).status();
    case Callable::kRebuildParameter:  // (data, requires_grad, backward_hooks): the data is the tensor
      if (args.size() != 3 || objs_[args[0]].kind != Kind::kTensor)
        return fail("_rebuild_parameter expects (tensor, requires_grad, backward_hooks)");
      stack_.push_back(args[0]);
      return Status();
    case Callable::kStorageType:
      break;
  }
  return fail("REDUCE of an unknown callable");
}

// BUILD sets an object's state. A state dict's only state is its `_metadata` attribute
// (module versions), which is ignored.
Status Unpickler::build() {
  BALLAST_ASSIGN_OR_RETURN(uint32_t state, pop());
  BALLAST_ASSIGN_OR_RETURN(uint32_t target, top());
  if (objs_[target].kind != Kind::kDict) return fail("BUILD on " + describe(target) + " (only dicts take state)");
  if (objs_[state].kind != Kind::kDict && objs_[state].kind != Kind::kNone)
    return fail("BUILD with " + describe(state) + " as state");
  return Status();
}

// ('storage', torch.<T>Storage, key, location, numel[, (view_key, offset, view_numel) | None])
Status Unpickler::persistent_id() {
  BALLAST_ASSIGN_OR_RETURN(uint32_t pid, pop());
  const Obj& p = objs_[pid];
  auto is_text = [&](uint32_t i) { return objs_[i].kind == Kind::kStr || objs_[i].kind == Kind::kBytes; };
  if (p.kind != Kind::kTuple || p.items.size() < 5 || p.items.size() > 6 || !is_text(p.items[0]) ||
      objs_[p.items[0]].s != "storage")
    return fail("persistent id is not a ('storage', type, key, location, numel) tuple");
  const std::vector<uint32_t> it = p.items;  // objs_ may grow below: copy, no references
  if (objs_[it[1]].kind != Kind::kGlobal || objs_[it[1]].callable != Callable::kStorageType)
    return fail("persistent id: storage type is " + describe(it[1]));
  const StorageType* type = objs_[it[1]].storage_type;
  if (!is_text(it[2]) || !is_text(it[3])) return fail("persistent id: key and location must be strings");
  const int64_t numel = objs_[it[4]].i;
  if (objs_[it[4]].kind != Kind::kInt || numel < 0 || numel > std::numeric_limits<int64_t>::max() / type->elem_bytes)
    return fail("persistent id: storage size is " + describe(it[4]));
  const std::string key = objs_[it[2]].s;
  auto found = storages_.find(key);
  if (found == storages_.end()) {
    Obj s;
    s.kind = Kind::kStorage;
    s.s = key;
    s.i = numel;
    s.storage_type = type;
    objs_.push_back(std::move(s));
    found = storages_.emplace(key, static_cast<uint32_t>(objs_.size() - 1)).first;
  }
  const Obj& root = objs_[found->second];
  if (root.storage_type != type || root.i != numel)
    return fail("storage '" + key + "' is named twice with different types or sizes");
  if (it.size() == 5 || objs_[it[5]].kind == Kind::kNone) {
    stack_.push_back(found->second);
    return Status();
  }
  // Legacy storage view: elements [offset, offset + view_numel) of the root storage.
  const Obj& v = objs_[it[5]];
  if (v.kind != Kind::kTuple || v.items.size() != 3 || objs_[v.items[1]].kind != Kind::kInt ||
      objs_[v.items[2]].kind != Kind::kInt)
    return fail("persistent id: view metadata is not (key, offset, size)");
  const int64_t off = objs_[v.items[1]].i, n = objs_[v.items[2]].i;
  if (off < 0 || n < 0 || off > root.i || n > root.i - off)
    return fail("storage view [" + std::to_string(off) + ", +" + std::to_string(n) + ") lies outside storage '" +
                key + "' of " + std::to_string(root.i) + " elements");
  Obj s = root;
  s.view_offset = off;
  s.i = n;
  push_new(std::move(s));
  return Status();
}

Result<uint32_t> Unpickler::load(std::span<const uint8_t> bytes, size_t& pos) {
  bytes_ = bytes;
  pos_ = pos;
  stack_.clear();
  marks_.clear();
  memo_.clear();
  while (true) {
    if (objs_.size() >= std::numeric_limits<uint32_t>::max() - 1) return fail("too many objects");
    op_pos_ = pos_;
    const uint8_t* p = nullptr;
    BALLAST_RETURN_IF_ERROR(read(1, &p));
    if (*p == STOP) break;
    BALLAST_RETURN_IF_ERROR(op(*p));
  }
  BALLAST_ASSIGN_OR_RETURN(uint32_t result, pop());
  pos = pos_;
  return result;
}

Status Unpickler::push_seq(Kind k, std::vector<uint32_t> items) {
  Obj o;
  o.kind = k;
  o.items = std::move(items);
  push_new(std::move(o));
  return Status();
}

Result<std::vector<uint32_t>> Unpickler::pop_n(size_t n) {
  std::vector<uint32_t> v(n);
  for (size_t i = n; i-- > 0;) {
    BALLAST_ASSIGN_OR_RETURN(v[i], pop());
  }
  return v;
}

// Stack, containers, memo, globals and calls; everything else is a literal.
Status Unpickler::op(uint8_t code) {
  switch (code) {
    case MARK: marks_.push_back(stack_.size()); return Status();
    case POP: return pop().status();
    case POP_MARK: return pop_mark().status();
    case EMPTY_TUPLE: return push_seq(Kind::kTuple, {});
    case TUPLE1: case TUPLE2: case TUPLE3: {
      BALLAST_ASSIGN_OR_RETURN(auto v, pop_n(code - TUPLE1 + 1));
      return push_seq(Kind::kTuple, std::move(v));
    }
    case TUPLE: case LIST: {
      BALLAST_ASSIGN_OR_RETURN(auto v, pop_mark());
      return push_seq(code == TUPLE ? Kind::kTuple : Kind::kList, std::move(v));
    }
    case EMPTY_LIST: return push_seq(Kind::kList, {});
    case EMPTY_DICT: return push_seq(Kind::kDict, {});
    case DICT: {
      BALLAST_ASSIGN_OR_RETURN(auto v, pop_mark());
      BALLAST_RETURN_IF_ERROR(push_seq(Kind::kDict, {}));
      return set_items(stack_.back(), v);
    }
    case APPEND: case SETITEM: {
      BALLAST_ASSIGN_OR_RETURN(auto v, pop_n(code == APPEND ? 1 : 2));
      BALLAST_ASSIGN_OR_RETURN(uint32_t target, top());
      return code == APPEND ? append_items(target, v) : set_items(target, v);
    }
    case APPENDS: case SETITEMS: {
      BALLAST_ASSIGN_OR_RETURN(auto v, pop_mark());
      BALLAST_ASSIGN_OR_RETURN(uint32_t target, top());
      return code == APPENDS ? append_items(target, v) : set_items(target, v);
    }
    case GLOBAL: case INST: {
      BALLAST_ASSIGN_OR_RETURN(std::string module, read_line());
      BALLAST_ASSIGN_OR_RETURN(std::string name, read_line());
      if (code == INST) return refuse_global(module, name);  // INST instantiates: never in a state dict
      return push_global(module, name);
    }
    case STACK_GLOBAL: {
      BALLAST_ASSIGN_OR_RETURN(auto mn, pop_n(2));
      if (objs_[mn[0]].kind != Kind::kStr || objs_[mn[1]].kind != Kind::kStr)
        return fail("STACK_GLOBAL needs two strings");
      const std::string module = objs_[mn[0]].s, name = objs_[mn[1]].s;
      return push_global(module, name);
    }
    case REDUCE: return reduce();
    case BUILD: return build();
    case BINPERSID: return persistent_id();
    case BINPUT: case LONG_BINPUT: {
      BALLAST_ASSIGN_OR_RETURN(uint64_t k, read_le(code == BINPUT ? 1 : 4));
      return memo_put(k);
    }
    case MEMOIZE: return memo_put(memo_.size());
    case BINGET: case LONG_BINGET: {
      BALLAST_ASSIGN_OR_RETURN(uint64_t k, read_le(code == BINGET ? 1 : 4));
      return memo_get(k);
    }
    default: return op_literal(code);
  }
}

// Protocol and frame markers, None, booleans, integers, floats, strings, bytes.
Status Unpickler::op_literal(uint8_t code) {
  const uint8_t* p = nullptr;
  Obj o;
  switch (code) {
    case PROTO: {
      BALLAST_ASSIGN_OR_RETURN(uint64_t v, read_le(1));
      return v <= 5 ? Status() : fail("pickle protocol " + std::to_string(v) + " is newer than 5");
    }
    case FRAME: return read(8, &p);  // frames only group bytes: the whole pickle is in memory
    case NONE: break;
    case NEWTRUE: case NEWFALSE:
      o.kind = Kind::kBool;
      o.i = code == NEWTRUE;
      break;
    case BININT: case BININT1: case BININT2: {
      BALLAST_ASSIGN_OR_RETURN(uint64_t v, read_le(code == BININT ? 4 : code == BININT1 ? 1 : 2));
      o.kind = Kind::kInt;
      o.i = code == BININT ? static_cast<int32_t>(static_cast<uint32_t>(v)) : static_cast<int64_t>(v);
      break;
    }
    case LONG1: {  // n-byte little-endian two's complement
      BALLAST_ASSIGN_OR_RETURN(uint64_t n, read_le(1));
      BALLAST_RETURN_IF_ERROR(read(n, &p));
      if (n > 8) {  // only the legacy format's magic number is this large
        o.kind = Kind::kBigInt;
        o.s.assign(reinterpret_cast<const char*>(p), n);
        break;
      }
      uint64_t v = 0;
      for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
      if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
      o.kind = Kind::kInt;
      o.i = static_cast<int64_t>(v);
      break;
    }
    case BINFLOAT: {
      BALLAST_RETURN_IF_ERROR(read(8, &p));
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian
      o.kind = Kind::kFloat;
      o.f = std::bit_cast<double>(bits);
      break;
    }
    case BINUNICODE: case BINSTRING: case SHORT_BINUNICODE: case SHORT_BINSTRING: case BINUNICODE8:
    case BINBYTES: case SHORT_BINBYTES: case BINBYTES8: {
      const bool bytes = code == BINBYTES || code == SHORT_BINBYTES || code == BINBYTES8;
      const bool is8 = code == BINUNICODE8 || code == BINBYTES8;
      const bool is1 = code == SHORT_BINUNICODE || code == SHORT_BINSTRING || code == SHORT_BINBYTES;
      BALLAST_ASSIGN_OR_RETURN(uint64_t n, read_le(is8 ? 8 : is1 ? 1 : 4));
      if (code == BINSTRING && n > 0x7FFFFFFF) return fail("negative string length");
      BALLAST_RETURN_IF_ERROR(read(n, &p));
      o.kind = bytes ? Kind::kBytes : Kind::kStr;  // Python 2 str (BINSTRING) is text here
      o.s.assign(reinterpret_cast<const char*>(p), n);
      break;
    }
    default:
      return fail("opcode " + hex_byte(code) + " is not used by PyTorch state dicts");
  }
  push_new(std::move(o));
  return Status();
}

}  // namespace ballast::io::pickle
