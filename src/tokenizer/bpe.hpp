// The BPE model of HF tokenizers (models/bpe): vocab, merge ranks, and the
// merge loop of word.rs (a heap of (rank, position) with stale-entry checks),
// with ignore_merges, byte_fallback, unk / fuse_unk and subword prefix / suffix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/flat_map.hpp"

namespace ropescope::tokenizer {

struct BpeConfig {
  std::vector<std::pair<std::string, std::uint32_t>> vocab;  // in file order; a repeated token keeps its last id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::optional<std::string> unk_token, continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};

class Bpe {
 public:
  // Throws FormatError (prefixed by `where`) for a merge whose parts or result
  // are not in the vocabulary, as HF's builder does.
  Bpe(BpeConfig config, const std::string& where);

  // Appends the ids of one pre-tokenized piece to `out` (nothing for an empty piece).
  void tokenize(std::string_view piece, std::vector<std::uint32_t>& out) const;

  const StringIdMap& vocab() const { return vocab_; }
  std::optional<std::uint32_t> token_to_id(std::string_view token) const;
  bool byte_fallback() const { return byte_fallback_; }

 private:
  void merge_word(std::string_view word, std::vector<std::uint32_t>& out) const;

  StringIdMap vocab_;
  PairMap merges_;  // (left id, right id) -> (rank, merged id)
  std::optional<std::string> unk_token_, prefix_, suffix_;
  bool fuse_unk_, byte_fallback_, ignore_merges_;
  std::int64_t byte_ids_[256];  // id of "<0xHH>" or -1
};

}  // namespace ropescope::tokenizer
