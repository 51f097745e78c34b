// Shared helpers of the CPU forward tests (and the GPU ones): loading a
// committed model, reading the PyTorch reference fixtures
// (tests/reference/make_fixtures.py), an observer that keeps full attention
// maps of chosen heads, and the largest difference between two reports.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "io/safetensors.hpp"

namespace ropescope::testing {

inline std::string source_path(const std::string& relative) { return std::string(ROPESCOPE_SOURCE_DIR) + "/" + relative; }

inline std::shared_ptr<const model::Model> load_test_model(const std::string& relative_dir) {
  return std::make_shared<const model::Model>(model::load_model(source_path(relative_dir)));
}

// T token ids uniform in [0, vocab), reproducible from `seed`.
inline std::vector<std::int32_t> random_tokens(long T, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::int32_t> t(T);
  for (auto& x : t) x = static_cast<std::int32_t>(rng() % vocab);
  return t;
}

// tokens I32 [B, T] of a fixture, as one vector per sequence.
inline std::vector<std::vector<std::int32_t>> fixture_tokens(const io::SafetensorsFile& fixture) {
  io::TensorView t = fixture.tensor("tokens");
  const auto B = t.shape().at(0), T = t.shape().at(1);
  std::vector<std::vector<std::int32_t>> out(B, std::vector<std::int32_t>(T));
  for (std::uint64_t b = 0; b < B; ++b) std::memcpy(out[b].data(), t.bytes().data() + b * T * 4, T * 4);
  return out;
}

// Keeps full [T, T] maps (scores, probabilities, virtual imaginary scores) of
// every head it observes, per (sequence, layer, head).
class MapRecorder : public backend::AttentionObserver {
 public:
  struct Maps {
    std::vector<float> scores, probabilities, virtual_imaginary;
    long T = 0;
  };
  MapRecorder(long T, bool virtual_imaginary) : T_(T), virtual_(virtual_imaginary) {}
  bool wants_virtual_imaginary() const override { return virtual_; }
  void on_block(const backend::AttentionBlock& b) override {
    Maps* m;
    {
      std::lock_guard lock(mutex_);
      m = &maps_[{b.sequence, b.layer, b.head.index}];
      if (m->T == 0) {
        m->T = T_;
        m->scores.assign(T_ * T_, 0.0f);
        m->probabilities.assign(T_ * T_, 0.0f);
        if (virtual_) m->virtual_imaginary.assign(T_ * T_, 0.0f);
      }
    }
    for (long q = b.q_begin; q < b.q_end; ++q)
      for (long k = 0; k < b.k_end; ++k) {
        const std::size_t src = (q - b.q_begin) * b.k_end + k, dst = q * T_ + k;
        m->scores[dst] = b.scores[src];
        m->probabilities[dst] = b.probabilities[src];
        if (virtual_) m->virtual_imaginary[dst] = b.virtual_imaginary_scores[src];
      }
  }
  const Maps& at(int sequence, int layer, int head) const { return maps_.at({sequence, layer, head}); }

 private:
  long T_;
  bool virtual_;
  std::mutex mutex_;
  std::map<std::tuple<int, int, int>, Maps> maps_;
};

// A MapRecorder of layer 0 alone (observes_layer too): a forward read only by
// it runs layer 0 and no further.
class FirstLayerRecorder : public MapRecorder {
 public:
  using MapRecorder::MapRecorder;
  bool observes(int layer, int) const override { return layer == 0; }
  bool observes_layer(int layer) const override { return layer == 0; }
};

// The largest difference between two JSON documents of the same structure,
// |a - b| / max(1, |a|) over their numbers, and where it is ("" and 0 when
// equal; infinity at the first place where the structure differs).
struct JsonDifference {
  double worst = 0;
  std::string where;
};
inline void add_json_difference(const nlohmann::json& a, const nlohmann::json& b, const std::string& path,
                                JsonDifference& d) {
  auto differ = [&] { d = {std::numeric_limits<double>::infinity(), path}; };
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    const double r = std::abs(x - y) / std::max(1.0, std::abs(x));
    if (r > d.worst) d = {r, path};
  } else if (a.is_object() && b.is_object() && a.size() == b.size()) {
    for (const auto& [key, value] : a.items()) {
      if (!b.contains(key)) return differ();
      add_json_difference(value, b[key], path + "/" + key, d);
    }
  } else if (a.is_array() && b.is_array() && a.size() == b.size()) {
    for (std::size_t i = 0; i < a.size(); ++i) add_json_difference(a[i], b[i], fmt::format("{}[{}]", path, i), d);
  } else if (a != b) {
    differ();
  }
}
inline JsonDifference json_difference(const nlohmann::json& a, const nlohmann::json& b) {
  JsonDifference d;
  add_json_difference(a, b, "", d);
  return d;
}

// The same for two CSV texts, cell by cell (numbers as above, text exactly).
inline JsonDifference csv_difference(const std::string& a, const std::string& b) {
  auto cells = [](const std::string& text) {
    std::vector<std::string> out;
    std::string cell;
    for (char c : text) {
      if (c == ',' || c == '\n') {
        out.push_back(cell);
        cell.clear();
      } else {
        cell += c;
      }
    }
    out.push_back(cell);
    return out;
  };
  const auto x = cells(a), y = cells(b);
  JsonDifference d;
  if (x.size() != y.size()) return {std::numeric_limits<double>::infinity(), "the number of cells"};
  for (std::size_t i = 0; i < x.size(); ++i) {
    char *end_x = nullptr, *end_y = nullptr;
    const double u = std::strtod(x[i].c_str(), &end_x), v = std::strtod(y[i].c_str(), &end_y);
    const bool numbers = !x[i].empty() && !y[i].empty() && *end_x == 0 && *end_y == 0;
    const double r = numbers ? std::abs(u - v) / std::max(1.0, std::abs(u))
                             : (x[i] == y[i] ? 0.0 : std::numeric_limits<double>::infinity());
    if (r > d.worst) d = {r, fmt::format("cell {} ('{}' vs '{}')", i, x[i], y[i])};
  }
  return d;
}

}  // namespace ropescope::testing
