// The hand-written Llama 3 / Qwen2 matcher against the Oniguruma regex it
// replaces: every code point in a set of contexts, and seeded random strings.
// Code points whose letter / number / white-space class differs between
// utf8proc (Unicode 15, the matcher's) and Oniguruma (Unicode 14) are left
// out and counted: they are the Unicode 15 additions.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/regex.hpp"
#include "tokenizer/split_llama3.hpp"
#include "tokenizer/utf8.hpp"

using namespace ropescope::tokenizer;

namespace {

using Matches = std::vector<std::pair<std::size_t, std::size_t>>;

std::string utf8(char32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

class Oracle {
 public:
  Oracle() : letter_("\\p{L}", "test"), number_("\\p{N}", "test"), space_("\\s", "test") {}
  // The class Oniguruma gives one code point: 'L', 'N', 's' or 'o'.
  char onig_class(char32_t cp) const {
    std::string s = utf8(cp);
    Matches m;
    letter_.find_all(s, m);
    if (!m.empty()) return 'L';
    number_.find_all(s, m);
    if (!m.empty()) return 'N';
    space_.find_all(s, m);
    return m.empty() ? 'o' : 's';
  }

 private:
  Regex letter_, number_, space_;
};

// The class the hand-written matcher sees, read off its own output: a letter
// joins "a", a digit forms a run with "1" (Llama 3), white space joins " " runs.
char hand_class(char32_t cp) {
  Matches m;
  llama3_matches(std::string("a").append(utf8(cp)), 3, m);
  if (m.size() == 1) return 'L';
  m.clear();
  llama3_matches(std::string("1").append(utf8(cp)), 3, m);
  if (m.size() == 1) return 'N';
  m.clear();
  llama3_matches(std::string("\t").append(utf8(cp)).append("\t"), 3, m);
  if (m.size() == 1) return 's';
  return 'o';
}

void expect_same(const Regex& regex, int digits, const std::string& text) {
  Matches want, got;
  regex.find_all(text, want);
  llama3_matches(text, digits, got);
  ASSERT_EQ(got, want) << "text: " << text;
}

}  // namespace

TEST(SplitLlama3, EveryCodePointInContext) {
  const Oracle oracle;
  const Regex llama3(llama3_pattern, "test"), qwen2(qwen2_pattern, "test");
  long compared = 0, unicode15 = 0;
  for (char32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    if (oracle.onig_class(cp) != hand_class(cp)) {
      ++unicode15;
      continue;
    }
    const std::string c = utf8(cp);
    for (const std::string& text : {c, "a" + c + "b", " " + c + c + "1", "'" + c + " x", c + "  \n" + c, "1234" + c,
                                    " " + c + "\r\n", c + "'s"}) {
      expect_same(llama3, 3, text);
      expect_same(qwen2, 1, text);
    }
    ++compared;
  }
  EXPECT_GT(compared, 280000);
  // Unicode 15 added 4,489 code points; a few more change class between the two tables.
  EXPECT_LT(unicode15, 6000) << "code points whose class differs between utf8proc and Oniguruma";
  std::cout << "[ NOTE ] " << compared << " code points compared, " << unicode15
            << " left out (class differs between Unicode 15 and 14)\n";
}

TEST(SplitLlama3, RandomStrings) {
  const Regex llama3(llama3_pattern, "test"), qwen2(qwen2_pattern, "test");
  const std::vector<std::string> pool = {
      "a", "Z", "é", "ß", "ſ", "S", "T", "r", "E", "v", "L", "l", "d", "M", "'", "'", "’", " ", " ", "  ", "\t", "\n",
      "\r", "\r\n", "\u00a0", "\u3000", "\u2009", "\u180e", "\u200b", "\u0085", "\x0b", "1", "7", "٣", "Ⅻ", "½", "$",
      "!", ".", "😀", "👍🏽", "\u0301", "中", "文", "한", "ا", "क", "\u093f", "_", "-", "\ufeff"};
  std::mt19937 rng(20261129);
  for (int n = 0; n < 20000; ++n) {
    std::string text;
    int length = 1 + static_cast<int>(rng() % 16);
    for (int k = 0; k < length; ++k) text += pool[rng() % pool.size()];
    expect_same(llama3, 3, text);
    expect_same(qwen2, 1, text);
  }
}
