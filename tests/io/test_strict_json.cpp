// io::parse_json_strict's nesting limit: kMaxJsonDepth levels of arrays and
// objects parse, one more is a FormatError naming the source (deeper
// documents would overflow the stack in nlohmann's recursive copy and dump).
#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"
#include "io/strict_json.hpp"

using namespace ropescope;

TEST(StrictJson, NestingUpToTheLimitParses) {
  const std::size_t n = io::kMaxJsonDepth;
  EXPECT_TRUE(io::parse_json_strict(std::string(n, '[') + std::string(n, ']'), "a.json").is_array());
  std::string objects;
  for (std::size_t i = 0; i < n; ++i) objects += "{\"k\":";
  objects += "1" + std::string(n, '}');
  EXPECT_TRUE(io::parse_json_strict(objects, "a.json").is_object());
}

TEST(StrictJson, DeeperNestingIsRefused) {
  for (std::size_t depth : {io::kMaxJsonDepth + 1, std::size_t{1000000}}) {
    try {
      io::parse_json_strict("{\"a\": " + std::string(depth - 1, '[') + std::string(depth - 1, ']') + "}", "a.json");
      ADD_FAILURE() << "no error at depth " << depth;
    } catch (const FormatError& e) {
      EXPECT_EQ(std::string(e.what()), "a.json: arrays and objects nested deeper than 64 levels");
    }
  }
}
