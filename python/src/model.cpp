// ropescope._core.Model: a checkpoint opened on a backend (engine::open_backend)
// and the analyses run on it, each a library call made with the GIL released:
// nll (one forward), tokenize (the model's tokenizer.json), attention maps,
// distance profile, perplexity. Also the standalone Tokenizer.
#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#include "core/error.hpp"
#include "core/memory.hpp"
#include "engine/engine.hpp"
#include "model/model_info.hpp"
#include "reports.hpp"
#include "tokenizer/text_input.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ropescope::python {

namespace {

std::span<const std::int32_t> span_of(const TokenArray& tokens) { return {tokens.data(), tokens.shape(0)}; }

nlohmann::json token_description(const TokenArray& tokens, bool byte_level) {
  return {{"source", "Python array"}, {"count", tokens.shape(0)}, {"byte_level", byte_level}};
}

// HF tokenizers' ids as numpy: int32, or uint32 when the vocabulary reaches 2^31 (as `ropescope tokenize` writes them).
nb::object ids_array(const tokenizer::Tokenizer& tokenizer, std::vector<std::uint32_t>&& ids) {
  const std::size_t n = ids.size();
  if (tokenizer.id_limit() > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()))
    return nb::cast(owned_array(std::move(ids), {n}));
  return nb::cast(owned_array(std::vector<std::int32_t>(ids.begin(), ids.end()), {n}));
}

nb::str utf8_replacing(const std::string& text) {
  return nb::steal<nb::str>(PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace"));
}

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& path) : tokenizer_(tokenizer::Tokenizer::load(path)) {}
  nb::object encode(const std::string& text, bool add_special_tokens) const {
    std::vector<std::uint32_t> ids;
    {
      nb::gil_scoped_release release;
      ids = tokenizer_.encode(text, add_special_tokens);
    }
    return ids_array(tokenizer_, std::move(ids));
  }
  nb::str decode(const std::vector<std::uint32_t>& ids) const { return utf8_replacing(tokenizer_.decode(ids)); }
  nb::bytes token_bytes(std::uint32_t id) const {
    const std::string text = tokenizer_.token_text(id);
    return nb::bytes(text.data(), text.size());
  }
  std::uint32_t id_limit() const { return tokenizer_.id_limit(); }
  std::string origin() const { return tokenizer_.origin(); }
  const tokenizer::Tokenizer& get() const { return tokenizer_; }

 private:
  tokenizer::Tokenizer tokenizer_;
};

class Model {
 public:
  Model(const std::string& path, const std::string& device, const std::string& variant, const std::string& angles,
        std::optional<std::string> tokenizer_path, const std::string& devices, int tensor_parallel)
      : angles_(model::parse_angle_precision(angles)), tokenizer_path_(tokenizer_path.value_or(path)) {
    if (!std::filesystem::is_directory(path))
      throw ArgumentError("path", fmt::format("'{}' is not a directory (a Hugging Face model directory: config.json + "
                                              "*.safetensors)", path));
    nb::gil_scoped_release release;
    handle_.backend = engine::open_backend(
        path, {.device = device,
               .variant = variant,
               .devices = devices,
               .tensor_parallel = tensor_parallel,
               .world = {}});  // one process: a group over processes is the CLI's (--world)
    handle_.directory = path;
  }

  std::string info_json() const { return model::model_info(backend().model()).dump(); }
  std::string device() const { return backend().name(); }
  std::string precision() const { return backend().precision(); }
  std::vector<std::string> notices() const { return backend().notices(); }
  int vocab_size() const { return backend().model().config.vocab_size; }

  nb::object tokenize(const std::string& text, bool add_special_tokens) {
    if (!tokenizer_) tokenizer_ = std::make_unique<Tokenizer>(tokenizer_path_);
    const auto& t = tokenizer_->get();
    std::vector<std::uint32_t> ids;
    {
      nb::gil_scoped_release release;
      ids = t.encode(text, add_special_tokens);
    }
    auto model_ids = tokenizer::model_token_ids(t, ids, vocab_size(), "text");
    const std::size_t n = model_ids.size();
    return nb::cast(owned_array(std::move(model_ids), {n}));
  }

  nb::ndarray<nb::numpy, double> nll(TokenArray tokens) {
    backend::ForwardOptions options;
    options.angles = angles_;
    const long T = static_cast<long>(tokens.shape(0));
    std::vector<std::vector<std::int32_t>> sequences{{tokens.data(), tokens.data() + T}};
    std::vector<backend::ForwardResult> results;
    {
      nb::gil_scoped_release release;
      const std::lock_guard<std::mutex> one_run(run_mutex_);
      backend().check_memory(T, options);
      results = backend().forward(sequences, options);
    }
    const std::size_t n = results[0].nll.size();
    return owned_array(std::move(results[0].nll), {n});
  }

  MapsResult attention_maps(TokenArray tokens, const std::vector<int>& layers, const std::vector<int>& heads, long start,
                            long length, bool full_rows, bool scores, bool virtual_imaginary, std::uint64_t max_bytes,
                            nb::handle progress) {
    if (start < 0) throw ArgumentError("start", fmt::format("must be >= 0, got {}", start));
    if (length < 1) throw ArgumentError("length", fmt::format("must be >= 1, got {}", length));
    const analysis::MapRequest request{layers, heads, start, length, full_rows, scores, virtual_imaginary};
    const auto callback = progress_callback(progress);
    MapsResult result{handle_, {}, token_description(tokens, false)};
    nb::gil_scoped_release release;
    const std::lock_guard<std::mutex> one_run(run_mutex_);
    result.maps = analysis::record_attention_maps(backend(), span_of(tokens), request, max_bytes, angles_, callback);
    return result;
  }

  ProfileResult profile(TokenArray tokens, long window, long windows, long exact_limit, int bins_per_decade,
                        const std::vector<long>& bin_edges, const std::vector<long>& beyond,
                        std::optional<double> noise_real, std::optional<double> noise_imag, long long seed,
                        nb::handle progress) {
    analysis::ProfileRequest request{window, windows, exact_limit, bins_per_decade, bin_edges, beyond,
                                     noise_real, noise_imag, seed, angles_};
    analysis::check_profile_request(request);
    const auto callback = progress_callback(progress);
    ProfileResult result{handle_, {}, {}, {}, {}, token_description(tokens, false)};
    nb::gil_scoped_release release;
    const std::lock_guard<std::mutex> one_run(run_mutex_);
    result.report = analysis::profile_distances(backend(), span_of(tokens), request, callback);
    result.mean_prob = result.report.mean_prob();
    result.mean_score = result.report.mean_score();
    result.bin_edges = result.report.bin_edges();
    return result;
  }

  PerplexityResult perplexity(TokenArray tokens, const std::vector<long>& lengths, std::optional<long> stride, long curve,
                              long max_windows, const std::vector<double>& noise_real,
                              const std::vector<double>& noise_imag, long long seed,
                              const std::vector<std::string>& ablate, const std::vector<std::string>& scaling,
                              bool byte_level, std::optional<double> stride_fraction, nb::handle progress) {
    analysis::PerplexityRequest request{lengths, stride, curve, max_windows, noise_imag, noise_real,
                                        seed, ablate, scaling, angles_, stride_fraction};
    analysis::check_perplexity_request(request);
    const auto callback = progress_callback(progress);
    PerplexityResult result{handle_, {}, {}, token_description(tokens, byte_level)};
    nb::gil_scoped_release release;
    const std::lock_guard<std::mutex> one_run(run_mutex_);
    result.report = analysis::perplexity(backend(), {span_of(tokens), byte_level, {}}, request, callback);
    if (result.report.curve_length > 0) result.curve = result.report.curve_matrix();
    return result;
  }

 private:
  backend::Backend& backend() const { return *handle_.backend; }

  ModelHandle handle_;
  // One run at a time on the backend (it is not reentrant): taken after the
  // GIL is released, so a second Python thread waits without holding the GIL.
  std::mutex run_mutex_;
  model::AnglePrecision angles_;
  std::string tokenizer_path_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

void bind_model(nb::module_& m) {
  m.def("parse_memory_size", [](const std::string& text) { return parse_memory_size(text, "max_memory"); },
        nb::arg("text"));

  nb::class_<Tokenizer>(m, "Tokenizer")
      .def(nb::init<const std::string&>(), nb::arg("path"))
      .def("encode", &Tokenizer::encode, nb::arg("text"), nb::arg("add_special_tokens") = true)
      .def("decode", &Tokenizer::decode, nb::arg("ids"))
      .def("token_bytes", &Tokenizer::token_bytes, nb::arg("id"))
      .def_prop_ro("id_limit", &Tokenizer::id_limit)
      .def_prop_ro("origin", &Tokenizer::origin);

  nb::class_<Model>(m, "Model")
      .def(nb::init<const std::string&, const std::string&, const std::string&, const std::string&,
                    std::optional<std::string>, const std::string&, int>(),
           nb::arg("path"), nb::arg("device"), nb::arg("variant"), nb::arg("angles"), nb::arg("tokenizer").none(),
           nb::arg("devices"), nb::arg("tensor_parallel"))
      .def("info_json", &Model::info_json)
      .def_prop_ro("device", &Model::device)
      .def_prop_ro("precision", &Model::precision)
      .def_prop_ro("notices", &Model::notices)
      .def_prop_ro("vocab_size", &Model::vocab_size)
      .def("tokenize", &Model::tokenize, nb::arg("text"), nb::arg("add_special_tokens"))
      .def("nll", &Model::nll, nb::arg("tokens").noconvert())
      .def("attention_maps", &Model::attention_maps, nb::arg("tokens").noconvert(), nb::arg("layers"), nb::arg("heads"),
           nb::arg("start"), nb::arg("length"), nb::arg("full_rows"), nb::arg("scores"), nb::arg("virtual_imaginary"),
           nb::arg("max_bytes"), nb::arg("progress").none())
      .def("profile", &Model::profile, nb::arg("tokens").noconvert(), nb::arg("window"), nb::arg("windows"),
           nb::arg("exact_limit"), nb::arg("bins_per_decade"), nb::arg("bin_edges"), nb::arg("beyond"),
           nb::arg("noise_real").none(), nb::arg("noise_imag").none(), nb::arg("seed"), nb::arg("progress").none())
      .def("perplexity", &Model::perplexity, nb::arg("tokens").noconvert(), nb::arg("lengths"), nb::arg("stride").none(),
           nb::arg("curve"), nb::arg("max_windows"), nb::arg("noise_real"), nb::arg("noise_imag"), nb::arg("seed"),
           nb::arg("ablate"), nb::arg("scaling"), nb::arg("byte_level"), nb::arg("stride_fraction").none(),
           nb::arg("progress").none());
}

}  // namespace ropescope::python
