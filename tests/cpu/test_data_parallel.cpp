// Data parallel over devices, checked on the CPU: two CPU backends behind
// DataParallelBackend must give the one-backend numbers bit for bit (each
// sequence runs whole on one replica; ppl consumes windows in order), keep the
// batch's sequence numbers in observer calls and errors, and refuse what they
// cannot run. The device list parser is checked here too (CUDA-free).
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "backend/observer_recording.hpp"
#include "analysis/perplexity_report.hpp"
#include "analysis/profile_report.hpp"
#include "backend/data_parallel.hpp"
#include "core/error.hpp"
#include "cpu/cpu_backend.hpp"
#include "engine/engine.hpp"
#include "forward_fixtures.hpp"

namespace {

using namespace ropescope;
using ropescope::testing::load_test_model;

std::unique_ptr<backend::Backend> two_cpu_replicas(const char* dir) {
  auto model = load_test_model(dir);
  std::vector<std::unique_ptr<backend::Backend>> replicas;
  replicas.push_back(std::make_unique<cpu::CpuBackend>(model));
  replicas.push_back(std::make_unique<cpu::CpuBackend>(model));
  return std::make_unique<backend::DataParallelBackend>(std::move(replicas));
}

TEST(DataParallel, PerplexityIsBitwiseTheOneBackendRun) {
  for (const char* dir : {"tests/data/models/rope", "tests/data/models/ec"}) {
    cpu::CpuBackend one(load_test_model(dir));
    auto two = two_cpu_replicas(dir);
    EXPECT_EQ(two->concurrent_sequences(), 2);
    const auto tokens = ropescope::testing::random_tokens(300, 256, 5);
    analysis::PerplexityRequest request;
    request.lengths = {16, 64, 300};  // 300: a single window, so one replica idles
    request.curve = 32;
    request.ablate = {"all"};
    request.noise_real = {0.5};
    const auto a = analysis::perplexity(one, {tokens, true, {}}, request);
    const auto b = analysis::perplexity(*two, {tokens, true, {}}, request);
    ASSERT_EQ(a.csv(), b.csv()) << dir;  // 17 significant digits: bitwise for the doubles
    EXPECT_EQ(a.curve_matrix(), b.curve_matrix()) << dir;
  }
}

TEST(DataParallel, ProfilesAreBitwiseTheOneBackendRun) {
  for (const char* dir : {"tests/data/models/ec", "tests/data/models/eh"}) {
    cpu::CpuBackend one(load_test_model(dir));
    auto two = two_cpu_replicas(dir);
    const auto tokens = ropescope::testing::random_tokens(5 * 48, 256, 9);
    analysis::ProfileRequest request;
    request.window = 48;  // 5 windows: batches of 2, 2 and 1
    request.exact_limit = 8;
    request.noise_imag = 0.3;
    const auto a = analysis::profile_distances(one, tokens, request);
    const auto b = analysis::profile_distances(*two, tokens, request);
    EXPECT_EQ(a.csv(), b.csv()) << dir;
    EXPECT_EQ(a.summary().dump(), b.summary().dump()) << dir;
  }
}

// Records which sequence each call came from and the first sum it carried.
struct SumsRecorder : backend::AttentionObserver {
  std::vector<std::pair<int, double>> calls;
  void on_block(const backend::AttentionBlock& block) override { calls.emplace_back(block.sequence, block.probabilities[0]); }
  void on_distance_sums(const backend::DistanceSums& sums) override { calls.emplace_back(sums.sequence, sums.prob_sum[0]); }
};

TEST(DataParallel, TheRecordingReplaysBySequenceAsSequenceZero) {
  SumsRecorder inner;
  backend::ObserverRecording ordered(inner);
  const std::vector<double> p2{2.0}, p1{1.0}, p0{0.5}, s{0.0};
  backend::DistanceSums sums;
  for (auto [sequence, p] : {std::pair{2, &p2}, std::pair{1, &p1}, std::pair{2, &p1}, std::pair{0, &p0}}) {
    sums.sequence = sequence;
    sums.prob_sum = *p;
    sums.score_sum = s;
    ordered.on_distance_sums(sums);
  }
  const float probs[] = {0.25f};
  backend::AttentionBlock block{1, 0, {}, 0, 1, 1, probs, probs, nullptr};
  ordered.on_block(block);
  EXPECT_TRUE(inner.calls.empty());  // nothing before the replay
  ordered.replay_in_sequence_order(inner);
  const std::vector<std::pair<int, double>> expected{{0, 0.5}, {0, 1.0}, {0, 0.25}, {0, 2.0}, {0, 1.0}};
  EXPECT_EQ(inner.calls, expected);  // sequence 0, then 1 (sums, then the block, as they came), then 2 in order
  ordered.replay_in_sequence_order(inner);
  EXPECT_EQ(inner.calls.size(), expected.size());  // the kept calls were forgotten
}

struct SequenceRecorder : backend::AttentionObserver {
  std::mutex mutex;
  std::set<int> sequences;
  void on_block(const backend::AttentionBlock& block) override {
    std::lock_guard lock(mutex);
    sequences.insert(block.sequence);
  }
};

TEST(DataParallel, ObserversAndErrorsSeeTheBatchsSequenceNumbers) {
  auto two = two_cpu_replicas("tests/data/models/rope");
  std::vector<std::vector<std::int32_t>> batch(5, ropescope::testing::random_tokens(12, 256, 3));
  SequenceRecorder recorder;
  backend::ForwardOptions options;
  options.observer = &recorder;
  options.first_sequence = 10;
  const auto results = two->forward(batch, options);
  ASSERT_EQ(results.size(), 5u);
  EXPECT_EQ(recorder.sequences, (std::set<int>{10, 11, 12, 13, 14}));
  for (const auto& r : results) EXPECT_EQ(r.nll, results[0].nll);  // the same tokens on either replica

  batch[3][7] = 100000;
  options.observer = nullptr;
  try {
    two->forward(batch, options);
    FAIL() << "an out-of-vocabulary id was accepted";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("position 7 of sequence 13"), std::string::npos) << e.what();
  }
}

TEST(DataParallel, ShowsEachReplicaNoticeOnce) {
  auto model = load_test_model("tests/data/models/rope");
  std::vector<std::unique_ptr<backend::Backend>> replicas;
  for (const char* extra : {"only on replica 0", "only on replica 1"}) {
    replicas.push_back(std::make_unique<cpu::CpuBackend>(model));
    replicas.back()->add_notice("on every replica");
    replicas.back()->add_notice(extra);
  }
  backend::DataParallelBackend two(std::move(replicas));
  EXPECT_EQ(two.notices(), (std::vector<std::string>{"on every replica", "only on replica 0", "only on replica 1"}));
}

TEST(DataParallel, RefusesFewerThanTwoReplicasOrReplicasOfTwoModels) {
  std::vector<std::unique_ptr<backend::Backend>> replicas;
  replicas.push_back(std::make_unique<cpu::CpuBackend>(load_test_model("tests/data/models/rope")));
  try {
    backend::DataParallelBackend lone(std::move(replicas));
    FAIL() << "one replica was accepted";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.parameter(), "devices");
  }
  replicas.clear();
  for (const char* dir : {"tests/data/models/rope", "tests/data/models/rope"})  // two loads: two models
    replicas.push_back(std::make_unique<cpu::CpuBackend>(load_test_model(dir)));
  try {
    backend::DataParallelBackend apart(std::move(replicas));
    FAIL() << "replicas of two models were accepted";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.parameter(), "devices");
  }
}

TEST(DataParallel, DeviceListsNameEveryBadDevice) {
  EXPECT_EQ(engine::parse_device_list("", 0), std::vector<int>{});
  EXPECT_EQ(engine::parse_device_list("all", 3), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(engine::parse_device_list("1,0", 2), (std::vector<int>{1, 0}));
  const auto message = [](const std::string& text, int available) {
    try {
      engine::parse_device_list(text, available);
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.parameter(), "devices");
      return e.detail();
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(message("0,2", 2), "'0,2': device 2 does not exist; 2 CUDA devices are present (0..1)");
  EXPECT_EQ(message("1", 1), "'1': device 1 does not exist; 1 CUDA device is present (0..0)");
  EXPECT_EQ(message("0,0", 2), "'0,0': device 0 is named twice");
  EXPECT_EQ(message("0,", 2), "'0,': '' is not a device number (expected all, or 0,1,...)");
  EXPECT_EQ(message("gpu1", 2), "'gpu1': 'gpu1' is not a device number (expected all, or 0,1,...)");
  EXPECT_EQ(message("-1", 2), "'-1': '-1' is not a device number (expected all, or 0,1,...)");
  EXPECT_EQ(message("all", 0), "'all': no CUDA device is present");
}

}  // namespace
