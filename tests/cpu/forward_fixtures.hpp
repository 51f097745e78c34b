// Shared helpers of the CPU forward tests: loading a committed model, reading
// the PyTorch reference fixtures (tests/reference/make_fixtures.py), and an
// observer that keeps full attention maps of chosen heads.
#pragma once

#include <cstring>
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

}  // namespace ropescope::testing
