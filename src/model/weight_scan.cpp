// The non-finite weight scan (see weight_scan.hpp): chunks of every tensor are
// checked in parallel (OpenMP); within a chunk, blocks are first tested with a
// branch-free OR over the exponent bits (vectorised), and only a block that
// fails is searched element by element. The first bad element is that of the
// first tensor in order, whatever the threads' timing.
#include "model/weight_scan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/error.hpp"
#include "io/strict_json.hpp"

namespace ropescope::model {

namespace {

constexpr std::uint64_t kNone = std::numeric_limits<std::uint64_t>::max();

// First index in [begin, end) of an array of U whose exponent bits (kExponent) are all set: NaN or infinity.
template <class U, U kExponent>
std::uint64_t first_all_ones_exponent(const std::byte* p, std::uint64_t begin, std::uint64_t end) noexcept {
  constexpr std::uint64_t kBlock = 2048;
  for (std::uint64_t b = begin; b < end; b += kBlock) {
    const std::uint64_t e = std::min(end, b + kBlock);
    unsigned bad = 0;
    for (std::uint64_t i = b; i < e; ++i) {
      U v;
      std::memcpy(&v, p + i * sizeof(U), sizeof(U));
      bad |= static_cast<unsigned>((v & kExponent) == kExponent);
    }
    if (!bad) continue;
    for (std::uint64_t i = b; i < e; ++i) {
      U v;
      std::memcpy(&v, p + i * sizeof(U), sizeof(U));
      if ((v & kExponent) == kExponent) return i;
    }
  }
  return kNone;
}

// first_non_finite over elements [begin, end); kNone when all are finite.
std::uint64_t first_in_range(const std::byte* p, io::Dtype dtype, std::uint64_t begin, std::uint64_t end) noexcept {
  switch (dtype) {
    case io::Dtype::BF16: return first_all_ones_exponent<std::uint16_t, 0x7f80>(p, begin, end);
    case io::Dtype::F16: return first_all_ones_exponent<std::uint16_t, 0x7c00>(p, begin, end);
    case io::Dtype::F32: return first_all_ones_exponent<std::uint32_t, 0x7f800000u>(p, begin, end);
    case io::Dtype::F64: return first_all_ones_exponent<std::uint64_t, 0x7ff0000000000000ull>(p, begin, end);
    default: return kNone;  // integer and 8-bit float types: nothing to scan here (the model refuses them at load)
  }
}

std::string coordinates(std::uint64_t index, const std::vector<std::uint64_t>& shape) {
  std::vector<std::uint64_t> at(shape.size());
  for (std::size_t i = shape.size(); i-- > 0;) {
    at[i] = shape[i] ? index % shape[i] : 0;
    index = shape[i] ? index / shape[i] : 0;
  }
  return fmt::format("[{}]", fmt::join(at, ", "));
}

}  // namespace

std::optional<std::uint64_t> first_non_finite(std::span<const std::byte> bytes, io::Dtype dtype) {
  const std::uint64_t n = bytes.size() / io::dtype_size(dtype);
  const std::uint64_t i = first_in_range(bytes.data(), dtype, 0, n);
  if (i == kNone) return std::nullopt;
  return i;
}

void check_finite(const std::vector<io::TensorView>& tensors) {
  // Chunks of at most kChunk elements over all tensors, in order.
  constexpr std::uint64_t kChunk = std::uint64_t{1} << 20;
  struct Chunk {
    std::size_t tensor;
    std::uint64_t begin, end;
  };
  std::vector<Chunk> chunks;
  std::uint64_t bytes = 0;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const std::uint64_t n = tensors[t].bytes().size() / io::dtype_size(tensors[t].dtype());
    for (std::uint64_t b = 0; b < n; b += kChunk) chunks.push_back({t, b, std::min(n, b + kChunk)});
    bytes += tensors[t].bytes().size();
  }
  // The first chunk (in order) holding a bad element, and that element; later chunks stop being scanned once
  // an earlier one has failed.
  std::atomic<long> first_chunk{static_cast<long>(chunks.size())};
  std::vector<std::uint64_t> found(chunks.size(), kNone);
  // A small model (under 32 MB: a few milliseconds on one core at ~10 GB/s) is not worth waking threads for.
#pragma omp parallel for schedule(dynamic) if (bytes > (std::uint64_t{32} << 20))
  for (long c = 0; c < static_cast<long>(chunks.size()); ++c) {
    if (c > first_chunk.load(std::memory_order_relaxed)) continue;
    const Chunk& k = chunks[c];
    const auto& t = tensors[k.tensor];
    found[c] = first_in_range(t.bytes().data(), t.dtype(), k.begin, k.end);
    if (found[c] == kNone) continue;
    long seen = first_chunk.load(std::memory_order_relaxed);
    while (c < seen && !first_chunk.compare_exchange_weak(seen, c, std::memory_order_relaxed)) {
    }
  }
  const long c = first_chunk.load();
  if (c == static_cast<long>(chunks.size())) return;
  const io::TensorView& t = tensors[chunks[c].tensor];
  const std::uint64_t i = found[c];
  const float value = io::load_as_float(t.bytes().data(), t.dtype(), i);
  throw FormatError(fmt::format(
      "{}: tensor {} holds a non-finite weight ({}) at element {} (index {} of shape [{}]); a checkpoint with NaN or "
      "infinite weights cannot give meaningful results (a corrupt file, or an overflow when it was saved)",
      t.file().string(), io::json_quoted(t.name()), std::isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf", i,
      coordinates(i, t.shape()), fmt::join(t.shape(), ", ")));
}

}  // namespace ropescope::model
