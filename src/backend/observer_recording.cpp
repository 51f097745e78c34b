// Observer calls kept, replayed and carried as bytes (see observer_recording.hpp).
#include "backend/observer_recording.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "core/error.hpp"

namespace ropescope::backend {

void ObserverRecording::on_block(const AttentionBlock& block) {
  Kept k;
  k.is_block = true;
  k.block = block;
  const std::size_t n = static_cast<std::size_t>(block.q_end - block.q_begin) * static_cast<std::size_t>(block.k_end);
  k.scores.assign(block.scores, block.scores + n);
  k.probabilities.assign(block.probabilities, block.probabilities + n);
  if (block.virtual_imaginary_scores) k.virtual_scores.assign(block.virtual_imaginary_scores, block.virtual_imaginary_scores + n);
  const std::lock_guard lock(mutex_);
  kept_.push_back(std::move(k));
}

void ObserverRecording::on_distance_sums(const DistanceSums& sums) {
  Kept k;
  k.sums = sums;
  k.prob_sum.assign(sums.prob_sum.begin(), sums.prob_sum.end());
  k.score_sum.assign(sums.score_sum.begin(), sums.score_sum.end());
  const std::lock_guard lock(mutex_);
  kept_.push_back(std::move(k));
}

void ObserverRecording::hand_on(Kept& k, AttentionObserver& into) {
  if (k.is_block) {
    k.block.scores = k.scores.data();
    k.block.probabilities = k.probabilities.data();
    k.block.virtual_imaginary_scores = k.virtual_scores.empty() ? nullptr : k.virtual_scores.data();
    into.on_block(k.block);
  } else {
    k.sums.prob_sum = k.prob_sum;
    k.sums.score_sum = k.score_sum;
    into.on_distance_sums(k.sums);
  }
}

void ObserverRecording::replay(AttentionObserver& into) {
  for (auto& k : kept_) hand_on(k, into);
  kept_.clear();
}

void ObserverRecording::replay_in_sequence_order(AttentionObserver& into) {
  auto sequence = [](const Kept& k) { return k.is_block ? k.block.sequence : k.sums.sequence; };
  std::stable_sort(kept_.begin(), kept_.end(), [&](const Kept& a, const Kept& b) { return sequence(a) < sequence(b); });
  for (auto& k : kept_) {
    k.block.sequence = k.sums.sequence = 0;
    hand_on(k, into);
  }
  kept_.clear();
}

// ---- bytes ---------------------------------------------------------------------
// A recording: the magic "RSOBS001", the call count (u64), then per call a
// kind byte (1 block, 2 sums), the head's numbers, and the call's fields and
// arrays (each array as a u64 count and its elements).

namespace {

constexpr std::string_view kMagic = "RSOBS001";

struct Writer {
  std::vector<std::byte> out;
  template <class T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  template <class T>
  void put_array(std::span<const T> values) {
    put(static_cast<std::uint64_t>(values.size()));
    const auto* p = reinterpret_cast<const std::byte*>(values.data());
    out.insert(out.end(), p, p + values.size_bytes());
  }
};

struct Reader {
  std::span<const std::byte> in;
  const std::string& from;
  std::size_t at = 0;
  void need(std::size_t bytes) const {
    if (bytes > in.size() - at)
      throw FormatError(fmt::format("observer calls from {}: {} bytes end at byte {}, {} more were expected", from,
                                    in.size(), at, bytes));
  }
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_array() {
    const auto n = get<std::uint64_t>();
    if (n > (in.size() - at) / sizeof(T))
      throw FormatError(fmt::format("observer calls from {}: an array of {} values at byte {} runs past the end ({} "
                                    "bytes)",
                                    from, n, at, in.size()));
    std::vector<T> v(n);
    std::memcpy(v.data(), in.data() + at, n * sizeof(T));
    at += n * sizeof(T);
    return v;
  }
};

void put_head(Writer& w, int sequence, int layer, const model::AttentionHead& h) {
  for (int v : {sequence, layer, h.index, h.query_head, static_cast<int>(h.kind), h.kv_head}) w.put(static_cast<std::int32_t>(v));
}

void get_head(Reader& r, int& sequence, int& layer, model::AttentionHead& h) {
  sequence = r.get<std::int32_t>();
  layer = r.get<std::int32_t>();
  h.index = r.get<std::int32_t>();
  h.query_head = r.get<std::int32_t>();
  h.kind = static_cast<model::HeadKind>(r.get<std::int32_t>());
  h.kv_head = r.get<std::int32_t>();
}

}  // namespace

std::vector<std::byte> ObserverRecording::to_bytes() const {
  Writer w;
  for (char c : kMagic) w.put(c);
  w.put(static_cast<std::uint64_t>(kept_.size()));
  for (const auto& k : kept_) {
    w.put(static_cast<std::uint8_t>(k.is_block ? 1 : 2));
    if (k.is_block) {
      const auto& b = k.block;
      put_head(w, b.sequence, b.layer, b.head);
      for (long v : {b.q_begin, b.q_end, b.k_end}) w.put(static_cast<std::int64_t>(v));
      w.put_array(std::span<const float>(k.scores));
      w.put_array(std::span<const float>(k.probabilities));
      w.put_array(std::span<const float>(k.virtual_scores));
    } else {
      const auto& s = k.sums;
      put_head(w, s.sequence, s.layer, s.head);
      w.put(static_cast<std::int64_t>(s.T));
      w.put(static_cast<std::int64_t>(s.window));
      w.put(s.distance_sum);
      w.put(s.entropy_sum);
      w.put_array(std::span<const double>(k.prob_sum));
      w.put_array(std::span<const double>(k.score_sum));
    }
  }
  return std::move(w.out);
}

void ObserverRecording::from_bytes(std::span<const std::byte> bytes, const std::string& from) {
  Reader r{bytes, from};
  r.need(kMagic.size());
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0)
    throw FormatError(fmt::format("observer calls from {}: the bytes do not start with {}", from, kMagic));
  r.at = kMagic.size();
  const auto calls = r.get<std::uint64_t>();
  std::vector<Kept> read;
  for (std::uint64_t c = 0; c < calls; ++c) {
    Kept k;
    const auto kind = r.get<std::uint8_t>();
    if (kind == 1) {
      k.is_block = true;
      auto& b = k.block;
      get_head(r, b.sequence, b.layer, b.head);
      b.q_begin = r.get<std::int64_t>();
      b.q_end = r.get<std::int64_t>();
      b.k_end = r.get<std::int64_t>();
      k.scores = r.get_array<float>();
      k.probabilities = r.get_array<float>();
      k.virtual_scores = r.get_array<float>();
      const auto n = static_cast<std::size_t>(std::max(0L, b.q_end - b.q_begin)) * static_cast<std::size_t>(std::max(0L, b.k_end));
      if (k.scores.size() != n || k.probabilities.size() != n || (!k.virtual_scores.empty() && k.virtual_scores.size() != n))
        throw FormatError(fmt::format("observer calls from {}: call {} is a block of {} x {} with arrays of {}, {} "
                                      "and {} values",
                                      from, c, b.q_end - b.q_begin, b.k_end, k.scores.size(), k.probabilities.size(),
                                      k.virtual_scores.size()));
    } else if (kind == 2) {
      auto& s = k.sums;
      get_head(r, s.sequence, s.layer, s.head);
      s.T = r.get<std::int64_t>();
      s.window = r.get<std::int64_t>();
      s.distance_sum = r.get<double>();
      s.entropy_sum = r.get<double>();
      k.prob_sum = r.get_array<double>();
      k.score_sum = r.get_array<double>();
      if (k.prob_sum.size() != k.score_sum.size())
        throw FormatError(fmt::format("observer calls from {}: call {} has {} probability and {} score sums", from, c,
                                      k.prob_sum.size(), k.score_sum.size()));
    } else {
      throw FormatError(fmt::format("observer calls from {}: call {} is of kind {} (1 block, 2 sums)", from, c, kind));
    }
    read.push_back(std::move(k));
  }
  if (r.at != bytes.size())
    throw FormatError(fmt::format("observer calls from {}: {} bytes left after {} calls", from, bytes.size() - r.at, calls));
  const std::lock_guard lock(mutex_);
  for (auto& k : read) kept_.push_back(std::move(k));
}

}  // namespace ropescope::backend
