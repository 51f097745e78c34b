// Open-addressing hash maps for the tokenizer's hot lookups: token string ->
// id (strings kept in one arena) and merge pair -> (rank, merged id). Far
// fewer cache misses than std::unordered_map's nodes, for both loading
// (hundreds of thousands of inserts) and encoding.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ropescope::tokenizer {

inline std::uint64_t hash_bytes(std::string_view s) {
  // FNV-1a over 8-byte words, then a final mix (the keys are short).
  std::uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < s.size(); ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

class StringIdMap {
 public:
  struct Entry {
    std::uint32_t offset, length, id;
  };

  void reserve(std::size_t n) {
    std::size_t size = 16;
    while (size < n * 2) size <<= 1;
    if (size > slots_.size()) rehash(size);
    entries_.reserve(n);
  }
  // Inserts `key`, or gives an existing key the new id (the last id wins).
  void assign(std::string_view key, std::uint32_t id) {
    if ((entries_.size() + 1) * 2 > slots_.size()) rehash(slots_.empty() ? 16 : slots_.size() * 2);
    std::uint64_t h = hash_bytes(key);
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      std::uint64_t slot = slots_[i];
      if (slot == empty) {
        slots_[i] = (h & 0xFFFFFFFF00000000ull) | entries_.size();
        entries_.push_back({std::uint32_t(arena_.size()), std::uint32_t(key.size()), id});
        arena_.append(key);
        return;
      }
      if ((slot >> 32) == (h >> 32) && view(entries_[std::uint32_t(slot)]) == key) {
        entries_[std::uint32_t(slot)].id = id;
        return;
      }
    }
  }
  std::optional<std::uint32_t> find(std::string_view key) const {
    if (slots_.empty()) return std::nullopt;
    std::uint64_t h = hash_bytes(key);
    std::size_t mask = slots_.size() - 1;
    // A slot holds the upper half of its key's hash beside the entry index, so
    // most mismatches are settled without touching the entry.
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      std::uint64_t slot = slots_[i];
      if (slot == empty) return std::nullopt;
      if ((slot >> 32) == (h >> 32)) {
        const Entry& e = entries_[std::uint32_t(slot)];
        if (view(e) == key) return e.id;
      }
    }
  }
  std::size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  std::string_view view(const Entry& e) const { return std::string_view(arena_).substr(e.offset, e.length); }

 private:
  static constexpr std::uint64_t empty = ~0ull;
  void rehash(std::size_t size) {
    slots_.assign(size, empty);
    std::size_t mask = size - 1;
    for (std::uint32_t k = 0; k < entries_.size(); ++k) {
      std::uint64_t h = hash_bytes(view(entries_[k]));
      std::size_t i = h & mask;
      while (slots_[i] != empty) i = (i + 1) & mask;
      slots_[i] = (h & 0xFFFFFFFF00000000ull) | k;
    }
  }
  std::string arena_;
  std::vector<Entry> entries_;
  std::vector<std::uint64_t> slots_;  // (upper 32 bits of the hash) << 32 | entry index, or empty
};

// (left id, right id) -> (rank, merged id).
class PairMap {
 public:
  void reserve(std::size_t n) {
    std::size_t size = 16;
    while (size < n * 2) size <<= 1;
    keys_.assign(size, empty);
    values_.assign(size, {0, 0});
  }
  // Inserts or overwrites (a pair listed twice keeps its last rank). reserve() first.
  void assign(std::uint32_t left, std::uint32_t right, std::uint32_t rank, std::uint32_t merged) {
    std::uint64_t key = (std::uint64_t(left) << 32) | right;
    std::size_t mask = keys_.size() - 1;
    for (std::size_t i = mix(key) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == empty || keys_[i] == key) {
        keys_[i] = key;
        values_[i] = {rank, merged};
        return;
      }
    }
  }
  const std::pair<std::uint32_t, std::uint32_t>* find(std::uint32_t left, std::uint32_t right) const {
    if (keys_.empty()) return nullptr;
    std::uint64_t key = (std::uint64_t(left) << 32) | right;
    std::size_t mask = keys_.size() - 1;
    for (std::size_t i = mix(key) & mask;; i = (i + 1) & mask) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == empty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t empty = ~0ull;  // ids are below 2^31, so no real pair has this key
  static std::uint64_t mix(std::uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
  }
  std::vector<std::uint64_t> keys_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> values_;
};

}  // namespace ropescope::tokenizer
