// HF checkpoint directories: single file, shards with model.safetensors.index.json,
// and every index rule (plain shard names, each tensor in exactly one shard).
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "io/checkpoint.hpp"
#include "io/safetensors_writer.hpp"
#include "temp_dir.hpp"

using namespace ropescope;
using namespace ropescope::io;

namespace {

const std::vector<float> kFour = {1, 2, 3, 4};

void shard(const std::filesystem::path& path, const std::vector<std::string>& names) {
  std::vector<TensorData> tensors;
  for (const auto& n : names) tensors.push_back({n, Dtype::F32, {4}, std::as_bytes(std::span(kFour))});
  write_safetensors(path, tensors);
}

// Expects Checkpoint(dir) to throw FormatError with exactly `message` after "<index path>: ".
void expect_index_error(const test::TempDir& dir, const std::string& index, const std::string& message) {
  test::write_file(dir / "model.safetensors.index.json", index);
  try {
    Checkpoint ck(dir.path());
    ADD_FAILURE() << "no error for " << index;
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "model.safetensors.index.json").string() + ": " + message);
  }
}

}  // namespace

TEST(Checkpoint, SingleFile) {
  test::TempDir dir;
  shard(dir / "model.safetensors", {"a", "b"});
  const Checkpoint ck(dir.path());
  EXPECT_FALSE(ck.sharded());
  EXPECT_EQ(ck.files().size(), 1u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ck.tensor("b").to_float(), kFour);
  EXPECT_EQ(ck.file_bytes(), std::filesystem::file_size(dir / "model.safetensors"));
  try {
    (void)ck.tensor("c");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), dir.path().string() + ": no tensor \"c\"");
  }
}

TEST(Checkpoint, ShardsAreMappedOnceEach) {
  const auto dir = test::source_dir() / "tests/data/models/rope_sharded";
  const Checkpoint ck(dir);
  EXPECT_TRUE(ck.sharded());
  ASSERT_EQ(ck.files().size(), 2u);
  EXPECT_EQ(ck.tensor("model.embed_tokens.weight").file().filename(), "model-00001-of-00002.safetensors");
  EXPECT_EQ(ck.tensor("lm_head.weight").file().filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(ck.file_bytes(), std::filesystem::file_size(dir / "model-00001-of-00002.safetensors") +
                                 std::filesystem::file_size(dir / "model-00002-of-00002.safetensors"));
}

TEST(Checkpoint, IndexRules) {
  test::TempDir dir;
  shard(dir / "s1.safetensors", {"a", "b"});
  shard(dir / "s2.safetensors", {"c", "b"});
  expect_index_error(dir, R"({"metadata": {}})", "missing \"weight_map\"");
  expect_index_error(dir, R"({"weight_map": []})", "\"weight_map\" is not an object");
  expect_index_error(dir, R"({"weight_map": {}})", "\"weight_map\" is empty");
  expect_index_error(dir, R"({"weight_map": {"a": 1}})", "weight_map[\"a\"] is 1, expected a file name");
  expect_index_error(dir, R"({"weight_map": {"a": "sub/s1.safetensors"}})",
                     "weight_map[\"a\"] is \"sub/s1.safetensors\", expected a plain file name in the same directory");
  expect_index_error(dir, R"({"weight_map": {"a": "..\\s1.safetensors"}})",
                     "weight_map[\"a\"] is \"..\\\\s1.safetensors\", expected a plain file name in the same directory");
  expect_index_error(dir, R"({"weight_map": {"a": ".."}})",
                     "weight_map[\"a\"] is \"..\", expected a plain file name in the same directory");
  expect_index_error(dir, R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}})", "duplicate key \"a\"");
  // Shard s1 holds b, which the index does not list.
  expect_index_error(dir, R"({"weight_map": {"a": "s1.safetensors"}})",
                     "tensor \"b\" of shard \"s1.safetensors\" is not in weight_map");
  // b is in both shards.
  expect_index_error(dir, R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})",
                     "tensor \"b\" is in shard \"s2.safetensors\" but weight_map puts it in shard \"s1.safetensors\"");
  // Listed tensor absent from its shard.
  shard(dir / "s3.safetensors", {"d"});
  expect_index_error(dir, R"({"weight_map": {"d": "s3.safetensors", "e": "s3.safetensors"}})",
                     "weight_map puts tensor \"e\" in shard \"s3.safetensors\", which does not contain it");
  expect_index_error(dir, R"({"weight_map": )", "not valid JSON: parse error at line 1, column 16: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal");
}

TEST(Checkpoint, MissingFiles) {
  test::TempDir dir;
  EXPECT_THROW(Checkpoint{dir.path()}, Error);
  test::write_file(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "gone.safetensors"}})");
  try {
    Checkpoint ck(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gone.safetensors"), std::string::npos) << e.what();
  }
}
