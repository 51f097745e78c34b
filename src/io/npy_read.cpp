// .npy reading: numpy's header dict parsed by hand (the subset np.save
// writes), sizes checked against the input before allocating (see npy.hpp).
// Separate from the writer so the fuzzer links the reader alone.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <functional>
#include <string_view>
#include <utility>

#include "core/error.hpp"
#include "io/mapped_file.hpp"
#include "io/npy.hpp"

namespace ropescope::io {

std::string npy_shape_string(const std::vector<std::uint64_t>& shape) {
  if (shape.size() == 1) return fmt::format("({},)", shape[0]);
  return fmt::format("({})", fmt::join(shape, ", "));
}

namespace {

// The header dict numpy writes, e.g. "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"
// followed by spaces and '\n'. Python literal syntax, restricted to what np.save produces.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::function<FormatError(const std::string&)>& fail)
      : text_(text), fail_(fail) {}

  void parse(std::string& descr, bool& fortran_order, std::vector<std::uint64_t>& shape) {
    bool has_descr = false, has_order = false, has_shape = false;
    skip_space();
    expect('{');
    for (;;) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr" && !has_descr) {
        descr = string_literal();
        has_descr = true;
      } else if (key == "fortran_order" && !has_order) {
        fortran_order = boolean();
        has_order = true;
      } else if (key == "shape" && !has_shape) {
        shape = tuple();
        has_shape = true;
      } else {
        throw fail_(fmt::format("unexpected or repeated key '{}' in the header", key));
      }
      skip_space();
      if (peek() != ',') break;
      ++pos_;
    }
    skip_space();
    expect('}');
    skip_space();
    if (pos_ != text_.size()) throw fail_(fmt::format("unexpected text after the header dict at byte {}", pos_));
    if (!has_descr) throw fail_("no 'descr' in the header");
    if (!has_order) throw fail_("no 'fortran_order' in the header");
    if (!has_shape) throw fail_("no 'shape' in the header");
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    if (peek() != c)
      throw fail_(fmt::format("malformed header: expected '{}' at byte {}", c, pos_));
    ++pos_;
  }
  std::string string_literal() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') throw fail_(fmt::format("malformed header: expected a string at byte {}", pos_));
    const std::size_t close = text_.find(quote, pos_ + 1);
    if (close == std::string_view::npos) throw fail_("malformed header: unterminated string");
    std::string value(text_.substr(pos_ + 1, close - pos_ - 1));
    pos_ = close + 1;
    return value;
  }
  bool boolean() {
    for (const auto& [word, value] : {std::pair<std::string_view, bool>{"True", true}, {"False", false}})
      if (text_.substr(pos_).starts_with(word)) {
        pos_ += word.size();
        return value;
      }
    throw fail_(fmt::format("malformed header: expected True or False at byte {}", pos_));
  }
  // "()", "(6,)", "(2, 3)" or "(2, 3,)": non-negative integers that fit 64 bits.
  std::vector<std::uint64_t> tuple() {
    std::vector<std::uint64_t> values;
    bool trailing_comma = false;
    expect('(');
    skip_space();
    while (peek() != ')') {
      if (peek() < '0' || peek() > '9') throw fail_(fmt::format("malformed header: expected a dimension at byte {}", pos_));
      std::uint64_t value = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (__builtin_mul_overflow(value, 10u, &value) || __builtin_add_overflow(value, unsigned(peek() - '0'), &value))
          throw fail_("a shape dimension overflows 64 bits");
        ++pos_;
      }
      values.push_back(value);
      skip_space();
      trailing_comma = peek() == ',';
      if (trailing_comma) {
        ++pos_;
        skip_space();
      } else if (peek() != ')') {
        throw fail_(fmt::format("malformed header: expected ',' or ')' at byte {}", pos_));
      }
    }
    if (values.size() == 1 && !trailing_comma) throw fail_("malformed header: a one-dimensional shape is written (N,)");
    ++pos_;
    return values;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  const std::function<FormatError(const std::string&)>& fail_;
};

// Bytes per value of the accepted integer dtypes; 0 for any other.
std::size_t integer_size(const std::string& dtype) {
  if (dtype == "<i4" || dtype == "<u4") return 4;
  if (dtype == "<i8") return 8;
  if (dtype == "<u2") return 2;
  if (dtype == "|u1") return 1;
  return 0;
}

}  // namespace

NpyIntegers parse_npy_integers(std::span<const std::byte> file, const std::string& source) {
  const std::function<FormatError(const std::string&)> fail = [&](const std::string& why) {
    return FormatError(fmt::format("{}: not a usable .npy integer array: {}", source, why));
  };
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(file[i]); };
  if (file.size() < 8 || std::memcmp(file.data(), "\x93NUMPY", 6) != 0) throw fail("missing the \\x93NUMPY magic");
  const unsigned version = byte(6);
  std::size_t header_begin = 0;
  std::uint64_t header_length = 0;
  if (version == 1) {
    if (file.size() < 10) throw fail("truncated header");
    header_begin = 10;
    header_length = byte(8) | (byte(9) << 8);
  } else if (version == 2 || version == 3) {
    if (file.size() < 12) throw fail("truncated header");
    header_begin = 12;
    header_length = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (std::uint64_t(byte(11)) << 24);
  } else {
    throw fail(fmt::format("unknown format version {}", version));
  }
  if (header_length > file.size() - header_begin) throw fail("truncated header");
  const std::string_view header(reinterpret_cast<const char*>(file.data()) + header_begin, header_length);

  NpyIntegers result;
  bool fortran_order = false;
  HeaderParser(header, fail).parse(result.dtype, fortran_order, result.shape);
  if (fortran_order) throw fail("Fortran order; expected C order");
  const std::string dims = npy_shape_string(result.shape);
  std::uint64_t count = 1;
  for (auto d : result.shape)
    if (__builtin_mul_overflow(count, d, &count)) throw fail(fmt::format("shape {} overflows", dims));
  const std::size_t size = integer_size(result.dtype);
  if (size == 0)
    throw fail(fmt::format("dtype '{}'; expected an integer array: int32, int64, uint16, uint32 (or uint8)", result.dtype));
  // Compare the data size with the input before allocating: a corrupt shape
  // must not turn into a huge allocation.
  const std::uint64_t available = file.size() - header_begin - header_length;
  std::uint64_t needed = 0;
  if (__builtin_mul_overflow(count, size, &needed) || needed > available)
    throw fail(fmt::format("data shorter than shape {} needs ({} bytes of {})", dims, available, result.dtype));
  if (needed < available)
    throw fail(fmt::format("data longer than shape {} needs ({} bytes of {})", dims, available, result.dtype));
  const std::byte* data = file.data() + header_begin + header_length;
  result.values.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t u = 0;
    for (std::size_t b = 0; b < size; ++b) u |= std::uint64_t(data[i * size + b]) << (8 * b);
    if (result.dtype == "<i4") result.values[i] = static_cast<std::int32_t>(u);
    else result.values[i] = static_cast<std::int64_t>(u);
  }
  return result;
}

NpyIntegers read_npy_integers(const std::filesystem::path& path) {
  const MappedFile file(path, ".npy file");
  return parse_npy_integers(file.bytes(), path.string());
}

}  // namespace ropescope::io
