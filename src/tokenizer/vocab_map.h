// Compact open-addressing hash tables for vocabularies: string -> id (keys live in one
// arena, so loading 262k tokens costs one allocation pass) and (id, id) -> merge.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ballast::tokenizer {

inline uint64_t hash_bytes(std::string_view s) {
  // FNV-1a variant over 8-byte words, finished with a multiply-xorshift.
  uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  if (i < s.size()) std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 32);
}

class StringIdMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }
  // Inserts or overwrites.
  void set(std::string_view key, int32_t id) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    uint64_t h = hash_bytes(key);
    uint64_t head = head_of(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.off = uint32_t(arena_.size());
        s.len = uint32_t(key.size());
        s.hash = uint32_t(h);
        s.id = id;
        s.head = head;
        arena_.append(key);
        ++size_;
        return;
      }
      if (same(s, key, uint32_t(h), head)) {
        s.id = id;
        return;
      }
    }
  }
  std::optional<int32_t> get(std::string_view key) const {
    if (slots_.empty()) return std::nullopt;
    uint64_t h = hash_bytes(key);
    uint64_t head = head_of(key);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.id < 0) return std::nullopt;
      if (same(s, key, uint32_t(h), head)) return s.id;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t off = 0, len = 0, hash = 0;
    int32_t id = -1;
    uint64_t head = 0;  // first 8 key bytes: short keys compare without touching the arena
  };
  static uint64_t head_of(std::string_view k) {
    uint64_t h = 0;
    std::memcpy(&h, k.data(), k.size() < 8 ? k.size() : 8);
    return h;
  }
  bool same(const Slot& s, std::string_view key, uint32_t h, uint64_t head) const {
    return s.hash == h && s.len == key.size() && s.head == head &&
           (key.size() <= 8 || std::memcmp(arena_.data() + s.off + 8, key.data() + 8, key.size() - 8) == 0);
  }
  void rehash(size_t cap) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    size_t mask = cap - 1;
    for (auto& s : old) {
      if (s.id < 0) continue;
      uint64_t h = hash_bytes(std::string_view(arena_.data() + s.off, s.len));
      size_t i = h & mask;
      while (slots_[i].id >= 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
};

struct MergeInfo {
  int32_t rank = -1;
  int32_t new_id = -1;
};

class MergeMap {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap > keys_.size()) rehash(cap);
  }
  void set(int32_t a, int32_t b, MergeInfo info) {
    if ((size_ + 1) * 2 > keys_.size()) rehash(keys_.empty() ? 16 : keys_.size() * 2);
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = mix(k) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == kEmpty) {
        keys_[i] = k;
        vals_[i] = info;
        ++size_;
        return;
      }
      if (keys_[i] == k) {
        vals_[i] = info;
        return;
      }
    }
  }
  const MergeInfo* get(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    uint64_t k = key(a, b);
    size_t mask = keys_.size() - 1;
    for (size_t i = mix(k) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
  }
  void rehash(size_t cap) {
    std::vector<uint64_t> ok;
    std::vector<MergeInfo> ov;
    ok.swap(keys_);
    ov.swap(vals_);
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, MergeInfo{});
    size_t mask = cap - 1;
    for (size_t j = 0; j < ok.size(); ++j) {
      if (ok[j] == kEmpty) continue;
      size_t i = mix(ok[j]) & mask;
      while (keys_[i] != kEmpty) i = (i + 1) & mask;
      keys_[i] = ok[j];
      vals_[i] = ov[j];
    }
  }
  std::vector<uint64_t> keys_;
  std::vector<MergeInfo> vals_;
  size_t size_ = 0;
};

}  // namespace ballast::tokenizer
