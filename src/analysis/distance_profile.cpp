// Distance bins, per-head distance profiles and their streaming observer (see distance_profile.hpp).
#include "analysis/distance_profile.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/error.hpp"

namespace ropescope::analysis {

DistanceBins::DistanceBins(long exact_limit, long max_distance, const std::vector<long>& upper_edges)
    : exact_limit_(exact_limit) {
  // Bins 0 .. min(exact_limit, max_distance+1)-1 hold one distance each; then
  // [edge_i, edge_{i+1} - 1] for consecutive edges, the last closed at max_distance.
  for (long d = 0; d < std::min(exact_limit, max_distance + 1); ++d) lo_.push_back(d), hi_.push_back(d);
  std::vector<long> edges{exact_limit};
  for (long e : upper_edges)
    if (e > edges.back() && e <= max_distance) edges.push_back(e);
  if (exact_limit <= max_distance) {
    for (std::size_t i = 0; i < edges.size(); ++i) {
      lo_.push_back(edges[i]);
      hi_.push_back(i + 1 < edges.size() ? edges[i + 1] - 1 : max_distance);
    }
  }
  table_.resize(max_distance + 1);
  for (int b = 0; b < size(); ++b)
    for (long d = lo_[b]; d <= hi_[b]; ++d) table_[d] = b;
}

DistanceBins DistanceBins::log_spaced(long exact_limit, long max_distance, int per_decade) {
  if (exact_limit < 1) throw ArgumentError(fmt::format("exact distance limit must be >= 1, got {}", exact_limit));
  if (per_decade < 1) throw ArgumentError(fmt::format("bins per decade must be >= 1, got {}", per_decade));
  if (max_distance < 0) throw ArgumentError(fmt::format("largest distance must be >= 0, got {}", max_distance));
  std::vector<long> edges;
  for (int k = 1;; ++k) {
    // ceil with a small guard so that exact powers (e.g. 10 * 10^1) are not pushed up by rounding.
    double edge = std::ceil(static_cast<double>(exact_limit) * std::pow(10.0, static_cast<double>(k) / per_decade) - 1e-9);
    if (edge > static_cast<double>(max_distance)) break;
    edges.push_back(static_cast<long>(edge));
  }
  return DistanceBins(exact_limit, max_distance, edges);
}

DistanceBins DistanceBins::from_edges(long exact_limit, long max_distance, const std::vector<long>& edges) {
  if (exact_limit < 1) throw ArgumentError(fmt::format("exact distance limit must be >= 1, got {}", exact_limit));
  if (max_distance < 0) throw ArgumentError(fmt::format("largest distance must be >= 0, got {}", max_distance));
  long previous = exact_limit;
  for (long e : edges) {
    if (e <= previous)
      throw ArgumentError(fmt::format("bin edges must be strictly increasing and above the exact limit {}; {} follows {}",
                                      exact_limit, e, previous));
    previous = e;
  }
  return DistanceBins(exact_limit, max_distance, edges);
}

DistanceProfile::DistanceProfile(int bins, std::vector<long> beyond_thresholds)
    : prob_sum(bins, 0.0), score_sum(bins, 0.0), count(bins, 0), score_count(bins, 0), beyond(std::move(beyond_thresholds)),
      mass_sum(beyond.size(), 0.0) {
  for (std::size_t i = 0; i < beyond.size(); ++i)
    if (beyond[i] < 0 || (i > 0 && beyond[i] <= beyond[i - 1]))
      throw std::invalid_argument("distance thresholds must be >= 0 and strictly increasing");
}

void DistanceProfile::add_rows(const DistanceBins& bins, const float* probabilities, const float* scores, long q_begin,
                               long q_end, long stride) {
  const int thresholds = static_cast<int>(beyond.size());
  for (long t = q_begin; t < q_end; ++t) {
    const float* p = probabilities + (t - q_begin) * stride;
    const float* z = scores + (t - q_begin) * stride;
    // Keys s = 0 .. t in memory order, so the distance D = t - s falls from t to 0.
    // `far` is then the mass at distances >= D; thresholds are visited from the
    // largest down, each recorded when D reaches it (those above t add nothing).
    int j = thresholds - 1;
    while (j >= 0 && beyond[j] > t) --j;
    double far = 0, distance = 0, entropy = 0;
    for (long s = 0; s <= t; ++s) {
      const long D = t - s;
      const double pv = p[s];
      const int b = bins.bin_of(D);
      prob_sum[b] += pv;
      ++count[b];
      if (z[s] != -std::numeric_limits<float>::infinity()) {
        score_sum[b] += z[s];
        ++score_count[b];
      }
      distance += pv * static_cast<double>(D);
      if (pv > 0) entropy -= pv * std::log(pv);
      far += pv;
      if (j >= 0 && beyond[j] == D) mass_sum[j--] += far;
    }
    distance_sum += distance;
    entropy_sum += entropy;
    ++queries;
  }
}

DistanceProfile& DistanceProfile::operator+=(const DistanceProfile& other) {
  if (other.prob_sum.size() != prob_sum.size() || other.beyond != beyond)
    throw std::invalid_argument("cannot merge distance profiles with different bins or thresholds");
  for (std::size_t b = 0; b < prob_sum.size(); ++b) {
    prob_sum[b] += other.prob_sum[b];
    score_sum[b] += other.score_sum[b];
    count[b] += other.count[b];
    score_count[b] += other.score_count[b];
  }
  for (std::size_t i = 0; i < mass_sum.size(); ++i) mass_sum[i] += other.mass_sum[i];
  distance_sum += other.distance_sum;
  entropy_sum += other.entropy_sum;
  queries += other.queries;
  return *this;
}

namespace {
double ratio(double sum, double n) { return n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN(); }
}  // namespace

double DistanceProfile::mean_prob(int bin) const { return ratio(prob_sum[bin], static_cast<double>(count[bin])); }
double DistanceProfile::mean_score(int bin) const { return ratio(score_sum[bin], static_cast<double>(score_count[bin])); }
double DistanceProfile::mean_distance() const { return ratio(distance_sum, static_cast<double>(queries)); }
double DistanceProfile::entropy() const { return ratio(entropy_sum, static_cast<double>(queries)); }
double DistanceProfile::mass_beyond(std::size_t i) const { return ratio(mass_sum[i], static_cast<double>(queries)); }

ProfileObserver::ProfileObserver(const DistanceBins& bins, std::vector<long> beyond, int layers, int heads, int sequences)
    : bins_(bins), layers_(layers), heads_(heads), sequences_(sequences),
      profiles_(static_cast<std::size_t>(sequences) * layers * heads, DistanceProfile(bins.size(), beyond)) {
  // Slot edges: every bin's lower edge and every threshold inside the range.
  std::vector<long> edges;
  for (int b = 0; b < bins_.size(); ++b) edges.push_back(bins_.lo(b));
  for (long x : beyond)
    if (x <= bins_.max_distance()) edges.push_back(x);
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  request_.slots = static_cast<int>(edges.size());
  request_.slot_of_distance.resize(bins_.max_distance() + 1);
  for (int k = 0; k < request_.slots; ++k) {
    const long end = k + 1 < request_.slots ? edges[k + 1] : bins_.max_distance() + 1;
    for (long D = edges[k]; D < end; ++D) request_.slot_of_distance[D] = k;
    bin_of_slot_.push_back(bins_.bin_of(edges[k]));
  }
  for (long x : beyond)
    first_slot_beyond_.push_back(x <= bins_.max_distance() ? request_.slot_of_distance[x] : request_.slots);
}

DistanceProfile& ProfileObserver::profile(int sequence, int layer, int head) {
  if (sequence < 0 || sequence >= sequences_ || layer < 0 || layer >= layers_ || head < 0 || head >= heads_)
    throw std::out_of_range(fmt::format("attention block (sequence {}, layer {}, head {}) outside the profile's {} x {} x {}",
                                        sequence, layer, head, sequences_, layers_, heads_));
  return profiles_[(static_cast<std::size_t>(sequence) * layers_ + layer) * heads_ + head];
}

void ProfileObserver::on_block(const backend::AttentionBlock& block) {
  auto& p = profile(block.sequence, block.layer, block.head.index);
  if (block.k_end - 1 > bins_.max_distance())
    throw std::out_of_range(fmt::format("attention block reaches distance {}, beyond the bins' largest {}", block.k_end - 1,
                                        bins_.max_distance()));
  p.add_rows(bins_, block.probabilities, block.scores, block.q_begin, block.q_end, block.k_end);
}

void ProfileObserver::on_distance_sums(const backend::DistanceSums& sums) {
  auto& p = profile(sums.sequence, sums.layer, sums.head.index);
  if (sums.prob_sum.size() != static_cast<std::size_t>(request_.slots) || sums.score_sum.size() != sums.prob_sum.size())
    throw std::invalid_argument(fmt::format("distance sums have {} slots, the request {}", sums.prob_sum.size(),
                                            request_.slots));
  if (sums.T < 1 || sums.T - 1 > bins_.max_distance())
    throw std::out_of_range(fmt::format("a sequence of {} tokens reaches distance {}, beyond the bins' largest {}", sums.T,
                                        sums.T - 1, bins_.max_distance()));
  for (int k = 0; k < request_.slots; ++k) {
    p.prob_sum[bin_of_slot_[k]] += sums.prob_sum[k];
    p.score_sum[bin_of_slot_[k]] += sums.score_sum[k];
  }
  // Pairs at distance D in a sequence of T tokens: T - D (queries D .. T-1),
  // sum over D = lo .. hi; under a window W only those at D < W have a score.
  auto pairs_in = [&](std::int64_t lo, std::int64_t hi) {
    return hi < lo ? std::int64_t{0} : (hi - lo + 1) * sums.T - (lo + hi) * (hi - lo + 1) / 2;
  };
  for (int b = 0; b < bins_.size() && bins_.lo(b) < sums.T; ++b) {
    const std::int64_t lo = bins_.lo(b), hi = std::min<std::int64_t>(bins_.hi(b), sums.T - 1);
    p.count[b] += pairs_in(lo, hi);
    p.score_count[b] += pairs_in(lo, sums.window > 0 ? std::min<std::int64_t>(hi, sums.window - 1) : hi);
  }
  for (std::size_t j = 0; j < first_slot_beyond_.size(); ++j)
    for (int k = first_slot_beyond_[j]; k < request_.slots; ++k) p.mass_sum[j] += sums.prob_sum[k];
  p.distance_sum += sums.distance_sum;
  p.entropy_sum += sums.entropy_sum;
  p.queries += sums.T;
}

DistanceProfile ProfileObserver::result(int layer, int head) const {
  DistanceProfile merged = profiles_.at(static_cast<std::size_t>(layer) * heads_ + head);
  for (int s = 1; s < sequences_; ++s)
    merged += profiles_[(static_cast<std::size_t>(s) * layers_ + layer) * heads_ + head];
  // Sums are finite for any finite attention; a NaN or infinity here would surface as null means or a zero entropy.
  auto require_finite = [&](double value, const std::string& what) {
    if (!std::isfinite(value))
      throw Error(fmt::format("distance profile of layer {} head {}: the {} is {} (the attention probabilities or "
                              "scores held NaN or infinity)",
                              layer, head, what, value));
  };
  for (int b = 0; b < bins_.size(); ++b) {
    require_finite(merged.prob_sum[b], fmt::format("probability sum of bin {} ({} .. {})", b, bins_.lo(b), bins_.hi(b)));
    require_finite(merged.score_sum[b], fmt::format("score sum of bin {} ({} .. {})", b, bins_.lo(b), bins_.hi(b)));
  }
  for (std::size_t i = 0; i < merged.mass_sum.size(); ++i)
    require_finite(merged.mass_sum[i], fmt::format("mass beyond {}", merged.beyond[i]));
  require_finite(merged.distance_sum, "attention-distance sum");
  require_finite(merged.entropy_sum, "entropy sum");
  return merged;
}

ProfileAggregate aggregate(const std::vector<const DistanceProfile*>& profiles) {
  ProfileAggregate a;
  a.heads = static_cast<int>(profiles.size());
  if (profiles.empty()) return a;
  const int bins = static_cast<int>(profiles[0]->prob_sum.size());
  const std::size_t thresholds = profiles[0]->beyond.size();
  a.mean_prob.assign(bins, 0.0);
  a.mean_score.assign(bins, 0.0);
  a.mass_beyond.assign(thresholds, 0.0);
  // Scores: mean over the heads that have visible pairs in the bin (a windowed layer's heads have none beyond it).
  std::vector<int> scored(bins, 0);
  for (const auto* p : profiles)
    for (int b = 0; b < bins; ++b) scored[b] += p->score_count[b] > 0;
  for (const auto* p : profiles) {
    for (int b = 0; b < bins; ++b) {
      a.mean_prob[b] += p->mean_prob(b) / a.heads;
      if (p->score_count[b] > 0) a.mean_score[b] += p->mean_score(b) / scored[b];
    }
    a.mean_distance += p->mean_distance() / a.heads;
    a.entropy += p->entropy() / a.heads;
    for (std::size_t i = 0; i < thresholds; ++i) a.mass_beyond[i] += p->mass_beyond(i) / a.heads;
  }
  for (int b = 0; b < bins; ++b)
    if (!scored[b]) a.mean_score[b] = std::numeric_limits<double>::quiet_NaN();
  return a;
}

}  // namespace ropescope::analysis
