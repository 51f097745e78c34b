// A small PNG reader for figure tests: the size from the IHDR chunk, and the
// pixels (8-bit RGB or RGBA, not interlaced, as gnuplot's pngcairo writes
// them) decoded with zlib and unfiltered, to check a figure is not blank.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ropescope::testing {

struct PngImage {
  std::uint32_t width = 0, height = 0;
  int channels = 0;
  std::vector<std::uint8_t> pixels;  // row-major, `channels` bytes per pixel
};

inline std::uint32_t png_u32(const std::string& bytes, std::size_t at) {
  return (std::uint32_t(std::uint8_t(bytes[at])) << 24) | (std::uint32_t(std::uint8_t(bytes[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(bytes[at + 2])) << 8) | std::uint32_t(std::uint8_t(bytes[at + 3]));
}

inline PngImage decode_png(const std::string& bytes) {
  if (bytes.size() < 33 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) throw std::runtime_error("not a PNG");
  PngImage image;
  std::string idat;
  int bit_depth = 0, colour_type = 0, interlace = 0;
  for (std::size_t at = 8; at + 8 <= bytes.size();) {
    const std::uint32_t length = png_u32(bytes, at);
    const std::string type = bytes.substr(at + 4, 4);
    if (type == "IHDR") {
      image.width = png_u32(bytes, at + 8);
      image.height = png_u32(bytes, at + 12);
      bit_depth = std::uint8_t(bytes[at + 16]);
      colour_type = std::uint8_t(bytes[at + 17]);
      interlace = std::uint8_t(bytes[at + 20]);
    } else if (type == "IDAT") {
      idat += bytes.substr(at + 8, length);
    }
    at += 12 + length;
  }
  if (bit_depth != 8 || (colour_type != 2 && colour_type != 6) || interlace != 0)
    throw std::runtime_error("PNG is not 8-bit RGB/RGBA without interlace");
  image.channels = colour_type == 6 ? 4 : 3;
  const std::size_t stride = std::size_t(image.width) * image.channels;
  std::vector<std::uint8_t> raw((stride + 1) * image.height);
  uLongf raw_size = raw.size();
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK || raw_size != raw.size())
    throw std::runtime_error("PNG image data does not inflate to its size");
  image.pixels.resize(stride * image.height);
  const int bpp = image.channels;
  for (std::size_t y = 0; y < image.height; ++y) {
    const std::uint8_t filter = raw[y * (stride + 1)];
    const std::uint8_t* in = &raw[y * (stride + 1) + 1];
    std::uint8_t* out = &image.pixels[y * stride];
    const std::uint8_t* up = y ? &image.pixels[(y - 1) * stride] : nullptr;
    for (std::size_t x = 0; x < stride; ++x) {
      const int a = x >= std::size_t(bpp) ? out[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= std::size_t(bpp)) ? up[x - bpp] : 0;
      int predictor = 0;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) / 2; break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predictor = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: throw std::runtime_error("PNG row with an unknown filter");
      }
      out[x] = std::uint8_t(in[x] + predictor);
    }
  }
  return image;
}

// The fraction of pixels that differ from the most common colour (the background).
inline double drawn_fraction(const PngImage& image) {
  std::map<std::uint32_t, std::size_t> counts;
  const std::size_t n = std::size_t(image.width) * image.height;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t colour = 0;
    for (int k = 0; k < image.channels; ++k) colour = (colour << 8) | image.pixels[i * image.channels + k];
    ++counts[colour];
  }
  std::size_t background = 0;
  for (auto [colour, count] : counts) background = std::max(background, count);
  return n ? 1.0 - double(background) / double(n) : 0.0;
}

}  // namespace ropescope::testing

namespace ropescope::testing {

// How many pixels have exactly the colour 0xRRGGBB (fully opaque where there is alpha).
inline std::size_t pixels_of_colour(const PngImage& image, std::uint32_t rgb) {
  std::size_t count = 0;
  const std::size_t n = std::size_t(image.width) * image.height;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = &image.pixels[i * image.channels];
    if (((std::uint32_t(p[0]) << 16) | (std::uint32_t(p[1]) << 8) | p[2]) == rgb && (image.channels == 3 || p[3] == 255)) ++count;
  }
  return count;
}

}  // namespace ropescope::testing
