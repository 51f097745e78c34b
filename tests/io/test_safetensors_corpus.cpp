// The malformed-file corpus (tests/data/safetensors/bad, written by
// tests/tools/make_bad_safetensors.py): one file per rule, each with its exact
// error. Also: the valid edge cases load, the corpus matches its generator, and
// the byte-buffer parser agrees with the file reader.
#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "temp_dir.hpp"

using namespace ropescope;
using namespace ropescope::io;

namespace {

struct Case {
  const char* file;
  const char* message;  // what() without the leading "<path>: "
};

const Case kCorpus[] = {
    {"01_too_short", "file is 5 bytes, too short for the 8-byte header length"},
    {"02_header_too_large", "header length 100000001 exceeds the limit of 100000000 bytes"},
    {"03_header_length_huge", "header length 18446744073709551615 exceeds the limit of 100000000 bytes"},
    {"04_header_past_end", "header length 64 runs past the end of the file (10 bytes)"},
    {"05_not_utf8", "header is not valid UTF-8"},
    {"06_overlong_utf8", "header is not valid UTF-8"},
    {"07_utf8_surrogate", "header is not valid UTF-8"},
    {"08_not_json", "header: not valid JSON: parse error at line 1, column 6: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"},
    {"09_trailing_garbage", "header: not valid JSON: parse error at line 1, column 67: syntax error while parsing value - invalid literal; last read: '16]}} x'; expected end of input"},
    {"10_not_an_object", "header is a JSON array, expected an object"},
    {"11_entry_not_object", "tensor \"a\": entry is a JSON array, expected an object"},
    {"12_missing_dtype", "tensor \"a\": missing \"dtype\""},
    {"13_dtype_not_string", "tensor \"a\": \"dtype\" is 4, expected a string"},
    {"14_unsupported_dtype", "unsupported dtype \"Q7\" in tensor \"a\""},
    {"15_missing_shape", "tensor \"a\": missing \"shape\""},
    {"16_shape_not_array", "tensor \"a\": \"shape\" is 4, expected an array"},
    {"17_negative_dim", "tensor \"a\": shape[1] is -2, expected a non-negative integer"},
    {"18_fractional_dim", "tensor \"a\": shape[0] is 2.5, expected a non-negative integer"},
    {"19_missing_offsets", "tensor \"a\": missing \"data_offsets\""},
    {"20_offsets_not_pair", "tensor \"a\": \"data_offsets\" is [0,8,16], expected [begin, end]"},
    {"21_negative_offset", "tensor \"a\": data_offsets[0] is -16, expected a non-negative integer"},
    {"22_end_before_begin", "tensor \"b\": data_offsets [16, 0] end before they begin"},
    {"23_gap_at_start", "tensor \"a\": data begins at byte 8, expected 0 (a gap before it)"},
    {"24_gap_between", "tensor \"b\": data begins at byte 8, expected 4 (a gap before it)"},
    {"25_overlap", "tensor \"b\": data begins at byte 8, expected 12 (it overlaps the tensor before it)"},
    {"26_size_mismatch", "tensor \"a\": data_offsets [0, 16] hold 16 bytes, expected 12 (F32 x [3])"},
    {"27_element_count_overflow", "tensor \"a\": the element count of shape [4294967296, 4294967296] overflows 64 bits"},
    {"28_byte_size_overflow", "tensor \"a\": the byte size of F32 x [4611686018427387904] overflows 64 bits"},
    {"29_truncated_data", "file is truncated: tensors end at data byte 16 but the data section has 12 bytes"},
    {"30_stray_trailing_bytes", "4 stray bytes after the last tensor (tensors end at data byte 16, the data section has 20)"},
    {"31_metadata_not_object", "\"__metadata__\" is \"x\", expected an object"},
    {"32_metadata_value_not_string", "\"__metadata__\" value \"k\" is 1, expected a string"},
    {"33_duplicate_tensor", "header: duplicate key \"a\""},
    {"34_duplicate_field", "header: duplicate key \"dtype\""},
    {"35_empty_name", "a tensor has an empty name"},
    {"36_nul_in_name", "tensor \"a\\u0000b\": the name contains a NUL character"},
    {"37_empty_header", "header: not valid JSON: parse error at line 1, column 1: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"},
    {"38_offset_not_integer", "tensor \"a\": data_offsets[0] is \"0\", expected a non-negative integer"},
    {"39_dim_too_large_for_u64", "tensor \"a\": shape[0] is 1.8446744073709552e+19, expected a non-negative integer"},
    {"40_number_out_of_range", "header: not valid JSON: number overflow parsing '1e999'"},
    {"41_byte_order_mark", "header: not valid JSON: starts with a byte-order mark"},
    {"42_negative_zero", "tensor \"a\": data_offsets[0] is -0, expected a non-negative integer"},
};

std::filesystem::path corpus_dir() { return test::source_dir() / "tests/data/safetensors"; }

}  // namespace

TEST(SafetensorsCorpus, EveryMalformedFileFailsWithItsExactError) {
  std::set<std::string> checked;
  for (const auto& c : kCorpus) {
    const auto path = corpus_dir() / "bad" / (std::string(c.file) + ".safetensors");
    SCOPED_TRACE(c.file);
    try {
      SafetensorsFile file(path);
      ADD_FAILURE() << "loaded without error";
    } catch (const FormatError& e) {
      EXPECT_EQ(std::string(e.what()), path.string() + ": " + c.message);
    }
    checked.insert(path.filename().string());
  }
  // Every file of the corpus has its expectation here (none forgotten).
  std::set<std::string> on_disk;
  for (const auto& entry : std::filesystem::directory_iterator(corpus_dir() / "bad"))
    on_disk.insert(entry.path().filename().string());
  EXPECT_EQ(on_disk, checked);
  EXPECT_GE(checked.size(), 25u);
}

TEST(SafetensorsCorpus, ValidEdgeCasesLoad) {
  EXPECT_TRUE(SafetensorsFile(corpus_dir() / "good/empty.safetensors").names().empty());
  const SafetensorsFile ws(corpus_dir() / "good/whitespace_null_metadata.safetensors");
  EXPECT_EQ(ws.tensor("a").to_float(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_TRUE(ws.metadata().empty());
  const SafetensorsFile zero(corpus_dir() / "good/zero_sized_and_scalar.safetensors");
  EXPECT_EQ(zero.names(), (std::vector<std::string>{"z", "s", "z2"}));  // data order
}

TEST(SafetensorsCorpus, BufferParserMatchesFileReader) {
  const std::string bytes = test::read_file(corpus_dir() / "good/misaligned.safetensors");
  const auto header = parse_safetensors_header(std::as_bytes(std::span(bytes)), "buffer");
  ASSERT_EQ(header.tensors.size(), 2u);
  EXPECT_EQ(header.tensors[0].name, "b");
  EXPECT_EQ(header.tensors[1].begin, 2u);
  EXPECT_EQ(header.data_offset + header.tensors[1].end, bytes.size());
  // A file truncated anywhere is rejected, never read out of bounds.
  for (std::size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(parse_safetensors_header(std::as_bytes(std::span(bytes.data(), n)), "buffer"), FormatError) << n;
}

TEST(SafetensorsCorpus, CommittedCorpusMatchesItsGenerator) {
  if (std::system("python3 -c '' >/dev/null 2>&1") != 0) GTEST_SKIP() << "python3 not found";
  test::TempDir dir;
  const std::string command = "python3 " + (test::source_dir() / "tests/tools/make_bad_safetensors.py").string() + " " +
                              dir.path().string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  for (const char* sub : {"bad", "good"})
    for (const auto& entry : std::filesystem::directory_iterator(dir / sub))
      EXPECT_EQ(test::read_file(entry.path()), test::read_file(corpus_dir() / sub / entry.path().filename()))
          << entry.path().filename() << " differs from the generator's output: rerun tests/tools/make_bad_safetensors.py";
}
