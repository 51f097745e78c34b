// BPE model (see bpe.hpp); follows tokenizers/src/models/bpe/{model,word}.rs.
#include "tokenizer/bpe.hpp"

#include <fmt/format.h>

#include <queue>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace ropescope::tokenizer {

Bpe::Bpe(BpeConfig config, const std::string& where)
    : unk_token_(std::move(config.unk_token)),
      prefix_(std::move(config.continuing_subword_prefix)),
      suffix_(std::move(config.end_of_word_suffix)),
      fuse_unk_(config.fuse_unk),
      byte_fallback_(config.byte_fallback),
      ignore_merges_(config.ignore_merges) {
  vocab_.reserve(config.vocab.size());
  for (const auto& [token, id] : config.vocab) vocab_.assign(token, id);
  std::size_t prefix_length = prefix_ ? prefix_->size() : 0;
  merges_.reserve(config.merges.size());
  std::string merged;
  for (std::size_t rank = 0; rank < config.merges.size(); ++rank) {
    const auto& [a, b] = config.merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (!ia || !ib)
      throw FormatError(fmt::format("{}.merges[{}]: '{}' is not in the vocabulary", where, rank, !ia ? a : b));
    if (b.size() < prefix_length || b.compare(0, prefix_length, *prefix_) != 0)
      throw FormatError(fmt::format("{}.merges[{}]: '{}' does not start with the continuing_subword_prefix", where,
                                    rank, b));
    merged.assign(a).append(b, prefix_length);
    auto im = vocab_.find(merged);
    if (!im)
      throw FormatError(fmt::format("{}.merges[{}]: the merged token '{}' is not in the vocabulary", where, rank, merged));
    merges_.assign(*ia, *ib, std::uint32_t(rank), *im);
  }
  for (int b = 0; b < 256; ++b) {
    auto id = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = id ? std::int64_t(*id) : -1;
  }
}

std::optional<std::uint32_t> Bpe::token_to_id(std::string_view token) const { return vocab_.find(token); }

void Bpe::tokenize(std::string_view piece, std::vector<std::uint32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (auto id = vocab_.find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  merge_word(piece, out);
}

namespace {

struct Symbol {
  std::uint32_t id;
  int prev, next;
  bool removed;
};

struct Merge {
  std::uint32_t rank, new_id;
  int pos;
  // std::priority_queue pops the largest: the lowest rank, then the leftmost position.
  bool operator<(const Merge& other) const {
    if (rank != other.rank) return rank > other.rank;
    return pos > other.pos;
  }
};

}  // namespace

void Bpe::merge_word(std::string_view word, std::vector<std::uint32_t>& out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](std::uint32_t id) {
    int index = int(symbols.size());
    symbols.push_back({id, index - 1, -1, false});
    if (index > 0) symbols[index - 1].next = index;
  };
  std::optional<std::uint32_t> pending_unk;
  std::optional<std::uint32_t> unk_id;
  if (unk_token_) unk_id = vocab_.find(*unk_token_);
  std::string with_affixes;
  std::size_t pos = 0;
  while (pos < word.size()) {
    std::size_t length = utf8_length(static_cast<unsigned char>(word[pos]));
    bool is_first = pos == 0, is_last = pos + length >= word.size();
    std::string_view unit = word.substr(pos, length);
    if ((!is_first && prefix_) || (is_last && suffix_)) {
      with_affixes.clear();
      if (!is_first && prefix_) with_affixes += *prefix_;
      with_affixes += unit;
      if (is_last && suffix_) with_affixes += *suffix_;
      unit = with_affixes;
    }
    pos += length;
    if (auto id = vocab_.find(unit)) {
      if (pending_unk) {
        add(*pending_unk);
        pending_unk.reset();
      }
      add(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : unit) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        // As in HF, a pending unk is not flushed before byte-fallback tokens.
        for (char c : unit) add(std::uint32_t(byte_ids_[static_cast<unsigned char>(c)]));
        continue;
      }
    }
    if (unk_token_) {
      if (!unk_id) throw Error(fmt::format("the unk_token '{}' is not in the vocabulary", *unk_token_));
      if (pending_unk && !fuse_unk_) add(*pending_unk);
      pending_unk = *unk_id;
    }
    // Without unk_token the character is dropped, as HF does.
  }
  if (pending_unk) add(*pending_unk);

  auto find_merge = [&](std::uint32_t left, std::uint32_t right) { return merges_.find(left, right); };
  std::priority_queue<Merge> queue;
  for (int i = 0; i + 1 < int(symbols.size()); ++i)
    if (auto* m = find_merge(symbols[i].id, symbols[i + 1].id)) queue.push({m->first, m->second, i});
  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol& current = symbols[top.pos];
    if (current.removed || current.next == -1) continue;
    Symbol& right = symbols[current.next];
    auto* m = find_merge(current.id, right.id);
    if (!m || m->second != top.new_id) continue;  // stale entry
    current.id = top.new_id;
    right.removed = true;
    current.next = right.next;
    if (right.next != -1) symbols[right.next].prev = top.pos;
    if (current.prev != -1)
      if (auto* mp = find_merge(symbols[current.prev].id, current.id)) queue.push({mp->first, mp->second, current.prev});
    if (current.next != -1)
      if (auto* mn = find_merge(current.id, symbols[current.next].id)) queue.push({mn->first, mn->second, top.pos});
  }
  for (const Symbol& s : symbols)
    if (!s.removed) out.push_back(s.id);
}

}  // namespace ropescope::tokenizer
