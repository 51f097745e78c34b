// Data parallel over devices, checked on the CPU: two CPU backends behind
// DataParallelBackend must give the one-backend numbers bit for bit (each
// sequence runs whole on one replica; ppl consumes windows in order), keep the
// batch's sequence numbers in observer calls and errors, and refuse what they
// cannot run. The device list parser is checked here too (CUDA-free).
#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "analysis/perplexity_report.hpp"
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

TEST(DataParallel, RefusesFewerThanTwoReplicas) {
  std::vector<std::unique_ptr<backend::Backend>> replicas;
  replicas.push_back(std::make_unique<cpu::CpuBackend>(load_test_model("tests/data/models/rope")));
  try {
    backend::DataParallelBackend lone(std::move(replicas));
    FAIL() << "one replica was accepted";
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
