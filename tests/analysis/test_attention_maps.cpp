// Attention-map recording: the kept window equals the forward pass's own maps
// (square and full-row windows, across query blocks, probabilities, scores and
// virtual imaginary scores); map labels come from the head layout; bad
// requests are ArgumentErrors naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../cpu/forward_fixtures.hpp"
#include "analysis/attention_maps.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"

using namespace ropescope;
using ropescope::testing::random_tokens;
using analysis::AttentionMapRecorder;
using analysis::MapRequest;

namespace {

class Tee : public backend::AttentionObserver {
 public:
  Tee(AttentionMapRecorder& a, backend::AttentionObserver& b) : a_(a), b_(b) {}
  bool wants_virtual_imaginary() const override { return a_.wants_virtual_imaginary(); }
  void on_block(const backend::AttentionBlock& block) override {
    if (a_.observes(block.layer, block.head.index)) a_.on_block(block);
    b_.on_block(block);
  }

 private:
  AttentionMapRecorder& a_;
  backend::AttentionObserver& b_;
};

MapRequest request_of(std::vector<int> layers, std::vector<int> heads = {}, long start = 0, long length = 16) {
  MapRequest r;
  r.layers = std::move(layers);
  r.heads = std::move(heads);
  r.start = start;
  r.length = length;
  return r;
}

std::string error_of(const model::Model& m, const MapRequest& r, long tokens) {
  try {
    AttentionMapRecorder rec(m, r, tokens);
  } catch (const ArgumentError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AttentionMaps, WindowEqualsTheForwardsOwnMaps) {
  struct Case {
    const char* model;
    long start, length;
    bool full_rows, virtual_imaginary;
  };
  for (const Case& c : {Case{"ec", 5, 11, false, false}, Case{"ec", 5, 11, true, false}, Case{"eh", 0, 16, false, false},
                        Case{"rope", 9, 7, true, true}}) {
    SCOPED_TRACE(::testing::Message() << c.model << " start " << c.start << " length " << c.length << " full "
                                      << c.full_rows);
    auto model = ropescope::testing::load_test_model(std::string("tests/data/models/") + c.model);
    cpu::CpuBackend backend(model, cpu::CpuOptions{4});  // the window spans several query blocks
    const long T = c.start + c.length;
    MapRequest request = request_of({1, 0}, {}, c.start, c.length);
    request.full_rows = c.full_rows;
    request.scores = true;
    request.virtual_imaginary = c.virtual_imaginary;
    AttentionMapRecorder rec(*model, request, T);
    rec.allocate();
    ropescope::testing::MapRecorder full(T, c.virtual_imaginary);
    Tee tee(rec, full);
    backend::ForwardOptions options;
    options.observer = &tee;
    backend.forward({random_tokens(T, 256, 11)}, options);

    const int heads = model->layout.attention_heads;
    ASSERT_EQ(rec.maps().size(), 2u * heads);
    const long rows = rec.request().rows(), cols = rec.request().columns(), k0 = rec.request().key_begin();
    EXPECT_EQ(cols, c.full_rows ? T : c.length);
    for (std::size_t i = 0; i < rec.maps().size(); ++i) {
      const auto& entry = rec.maps()[i];
      // requested layer order (1 then 0), heads in layout order with the layout's labels
      EXPECT_EQ(entry.layer, i < static_cast<std::size_t>(heads) ? 1 : 0);
      const auto expected = model->layout.head(static_cast<int>(i % heads));
      EXPECT_EQ(entry.head.index, expected.index);
      EXPECT_EQ(entry.head.kind, expected.kind);
      EXPECT_EQ(entry.head.query_head, expected.query_head);
      EXPECT_EQ(entry.head.kv_head, expected.kv_head);
      const auto& m = full.at(0, entry.layer, entry.head.index);
      for (long r = 0; r < rows; ++r)
        for (long j = 0; j < cols; ++j) {
          const long t = c.start + r, s = k0 + j;
          const std::size_t at = (i * rows + r) * cols + j;
          if (s > t) {  // future key: masked
            EXPECT_EQ(rec.probabilities()[at], 0.0f);
            EXPECT_TRUE(std::isinf(rec.scores()[at]) && rec.scores()[at] < 0);
            continue;
          }
          ASSERT_EQ(rec.probabilities()[at], m.probabilities[t * T + s]) << "map " << i << " t " << t << " s " << s;
          ASSERT_EQ(rec.scores()[at], m.scores[t * T + s]);
          if (c.virtual_imaginary) {
            ASSERT_EQ(rec.virtual_imaginary()[at], m.virtual_imaginary[t * T + s]);
          }
        }
    }
    if (c.full_rows) {  // full rows hold whole softmax rows
      for (long r = 0; r < rows; ++r) {
        double sum = 0;
        for (long j = 0; j < cols; ++j) sum += rec.probabilities()[r * cols + j];
        EXPECT_NEAR(sum, 1.0, 1e-5);
      }
    }
  }
}

TEST(AttentionMaps, ManifestOrderFollowsTheRequest) {
  auto model = ropescope::testing::load_test_model("tests/data/models/ec");
  AttentionMapRecorder rec(*model, request_of({0}, {3, 0}, 0, 4), 10);
  ASSERT_EQ(rec.maps().size(), 2u);
  EXPECT_EQ(rec.maps()[0].head.index, 3);
  EXPECT_EQ(rec.maps()[0].head.kind, model::HeadKind::imaginary);
  EXPECT_EQ(rec.maps()[1].head.kind, model::HeadKind::real);
  EXPECT_TRUE(rec.observes(0, 3));
  EXPECT_FALSE(rec.observes(1, 3));
  EXPECT_FALSE(rec.observes(0, 1));
  EXPECT_EQ(rec.bytes_needed(), 2u * 4 * 4 * 4);
  MapRequest wide_request = request_of({}, {}, 100, 50);
  wide_request.full_rows = wide_request.scores = true;
  AttentionMapRecorder wide(*model, wide_request, 150);
  EXPECT_EQ(wide.bytes_needed(), 2ull * 8 * 50 * 150 * 4 * 2);
}

TEST(AttentionMaps, BadRequestsNameTheProblem) {
  auto ec = ropescope::testing::load_test_model("tests/data/models/ec");
  auto rope = ropescope::testing::load_test_model("tests/data/models/rope");
  EXPECT_NE(error_of(*ec, request_of({2}), 100).find("layer 2 does not exist"), std::string::npos);
  EXPECT_NE(error_of(*ec, request_of({}, {8}), 100).find("head 8 does not exist"), std::string::npos);
  EXPECT_NE(error_of(*ec, request_of({}, {-1}), 100).find("head -1"), std::string::npos);
  EXPECT_NE(error_of(*ec, request_of({0, 0}), 100).find("given twice"), std::string::npos);
  EXPECT_NE(error_of(*ec, request_of({}, {}, 90, 16), 100).find("the input has 100"), std::string::npos);
  EXPECT_NE(error_of(*ec, request_of({}, {}, 0, 0), 100).find("length: must be >= 1, got 0"), std::string::npos);
  MapRequest virtual_request = request_of({});
  virtual_request.virtual_imaginary = true;
  EXPECT_NE(error_of(*ec, virtual_request, 100).find("vanilla RoPE"), std::string::npos);
  EXPECT_EQ(error_of(*rope, virtual_request, 100), "");
}
