"""ropescope from Python: the C++ library of the `ropescope` CLI (RoPE / RoPE++
analyses) for notebooks.

    import ropescope
    curves = ropescope.decay(head_dim=128, base=1e4, distances=range(257))
    m = ropescope.Model("path/to/model")
    report = m.perplexity(tokens, lengths=[256, 512])
    report.to_dataframe()

Arrays come back as numpy arrays over the library's own buffers (no copies);
the GIL is released while the library computes; long runs show a tqdm bar when
tqdm is installed; reports convert to pandas DataFrames when pandas is
installed, and save() writes the files the matching CLI command writes.
Errors: ValueError for a bad argument value (the message names the argument),
TypeError for an argument of the wrong type, FormatError (a RuntimeError) for a
malformed checkpoint or input file, RuntimeError for other failures.
"""

from __future__ import annotations

import csv as _csv
import io as _io
import json as _json
import numbers as _numbers
import os as _os
import tempfile as _tempfile

import numpy as _np

from . import _core
from ._core import FormatError, available_devices, describe_cuda_backend

__version__ = _core.__version__

__all__ = [
    "AttentionMaps",
    "BoundsReport",
    "DecayCurves",
    "FormatError",
    "Model",
    "PerplexityReport",
    "ProfileReport",
    "Tokenizer",
    "available_devices",
    "bounds",
    "decay",
    "describe_cuda_backend",
    "plot",
    "plot_kinds",
]

_TOKEN_DTYPES = (_np.int32, _np.int64, _np.uint16, _np.uint32)
_INT32_MAX = 2**31 - 1


# ---- argument checks: TypeError for a wrong type, ValueError for a wrong value, each naming the argument


def _type_name(value):
    return type(value).__name__


def _int(name, value):
    if isinstance(value, bool) or not isinstance(value, _numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {_type_name(value)}")
    value = int(value)
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{name}: {value} is out of range")
    return value


def _rank_count(value):
    value = _int("tensor_parallel", value)
    if not 0 <= value < 2**31:
        raise ValueError(f"tensor_parallel: {value} (0 or 1: no split; N >= 2 ranks)")
    return value


def _float(name, value):
    if isinstance(value, bool) or not isinstance(value, _numbers.Real):
        raise TypeError(f"{name}: expected a number, got {_type_name(value)}")
    return float(value)


def _bool(name, value):
    if not isinstance(value, (bool, _np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {_type_name(value)}")
    return bool(value)


def _str(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a str, got {_type_name(value)}")
    return value


def _path(name, value):
    if not isinstance(value, (str, _os.PathLike)):
        raise TypeError(f"{name}: expected a path (str or os.PathLike), got {_type_name(value)}")
    path = _os.fspath(value)
    if not isinstance(path, str):
        raise TypeError(f"{name}: expected a str path, got {_type_name(path)}")
    return path


def _sequence(name, value, item, single):
    """A list from one value of type `single` or an iterable of them, each checked by `item`."""
    if value is None:
        return []
    if isinstance(value, single):
        return [item(name, value)]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name}: expected a sequence, got {_type_name(value)}")
    if isinstance(value, _np.ndarray) and value.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got an array of shape {value.shape}")
    return [item(name, v) for v in value]


def _ints(name, value):
    return _sequence(name, value, _int, (_numbers.Integral,))


def _floats(name, value):
    return _sequence(name, value, _float, (_numbers.Real,))


def _strs(name, value):
    return _sequence(name, value, _str, (str,))


def _tokens(tokens, vocab_size, name="tokens"):
    """Token ids as the library takes them: a 1-D C-contiguous int32 array (no copy when it is one already)."""
    if isinstance(tokens, (list, tuple)):
        if not all(isinstance(t, _numbers.Integral) and not isinstance(t, bool) for t in tokens):
            raise TypeError(f"{name}: expected integer token ids")
        if any(not -(2**63) <= int(t) < 2**63 for t in tokens):
            raise ValueError(f"{name}: a token id is out of range")
        tokens = _np.asarray(tokens, dtype=_np.int64)
    elif not isinstance(tokens, _np.ndarray):
        raise TypeError(f"{name}: expected a 1-D numpy array or a list of token ids, got {_type_name(tokens)}")
    if tokens.dtype.type not in _TOKEN_DTYPES:
        raise TypeError(f"{name}: expected int32, int64, uint16 or uint32 token ids, got dtype {tokens.dtype}")
    if tokens.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tokens.shape}")
    if not tokens.flags.c_contiguous:
        raise ValueError(f"{name}: the array is not contiguous (a strided view); pass np.ascontiguousarray({name})")
    if tokens.size == 0:
        raise ValueError(f"{name}: no tokens")
    if tokens.dtype.type is not _np.int32:
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high > _INT32_MAX:
            raise ValueError(f"{name}: token id {low if low < 0 else high} is outside [0, {vocab_size})")
        tokens = tokens.astype(_np.int32)
    bad = _np.flatnonzero((tokens < 0) | (tokens >= vocab_size))
    if bad.size:
        position = int(bad[0])
        raise ValueError(f"{name}: token id {int(tokens[position])} at position {position} is outside the "
                         f"vocabulary [0, {vocab_size})")
    return tokens


def _invocation(call, **keywords):
    """How a run was asked for, recorded as the sidecars' "argv"."""
    return ["python", call] + [f"{k}={v!r}" for k, v in keywords.items()]


# ---- optional packages


def _pandas():
    try:
        import pandas
    except ImportError as error:
        raise ImportError("to_dataframe() needs pandas: pip install pandas (or pip install 'ropescope[pandas]')") from error
    return pandas


class _Progress:
    """The progress callback of a run: a tqdm bar when `progress` is True and
    tqdm is installed, a callable's calls (windows_done, windows_total,
    tokens_done), or nothing."""

    def __init__(self, progress, description):
        self._bar = None
        self._description = description
        self._tqdm = None
        self._callable = None
        if callable(progress):
            self._callable = progress
        elif progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            self._tqdm = tqdm
        elif progress is not False and progress is not None:
            raise TypeError(f"progress: expected True, False or a callable, got {_type_name(progress)}")

    def callback(self):
        if self._callable is None and self._tqdm is None:
            return None
        return self

    def __call__(self, done, total, tokens):
        if self._callable is not None:
            self._callable(done, total, tokens)
            return
        if self._bar is None:
            self._bar = self._tqdm(total=total, desc=self._description, unit="window")
        self._bar.update(done - self._bar.n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        return False


# ---- theory


class DecayCurves:
    """Expected real and imaginary attention scores by distance (what `ropescope decay` writes).

    labels: one per variant. distance: [distances]. re_integral, im_integral,
    re_discrete, im_discrete, relative_bound: [variants, distances] float64.
    csv: the CLI's CSV, byte for byte. variants: each variant's description
    (the sidecar's "variants").
    """

    def __init__(self, result):
        self.labels = list(result["labels"])
        self.distance = result["distance"]
        self.re_integral = result["re_integral"]
        self.im_integral = result["im_integral"]
        self.re_discrete = result["re_discrete"]
        self.im_discrete = result["im_discrete"]
        self.relative_bound = result["relative_bound"]
        self.csv = result["csv"]
        self.variants = _json.loads(result["variants"])

    def to_dataframe(self):
        """The long table: variant, distance and the five curves, one row per variant and distance."""
        return _pandas().read_csv(_io.StringIO(self.csv), float_precision="round_trip", keep_default_na=False, na_values=[""])

    to_pandas = to_dataframe

    def __repr__(self):
        return f"DecayCurves(variants={self.labels}, distances={len(self.distance)})"


def _decay_variants(variants):
    if variants is None:
        return []
    return _strs("variants", variants)


def decay(head_dim=128, base=1e4, distances=None, variants=None):
    """Theoretical decay curves of real (RoPE) and imaginary (RoPE++) attention, as `ropescope decay` computes them.

    head_dim: d (even); base: the RoPE base; distances: relative distances D
    (default 0 .. 256); variants: RoPE variants as key=value text ("base=5e5",
    "type=yarn,factor=8", "label=RoPE"), each on top of head_dim and base
    (default: plain RoPE). Returns DecayCurves.
    """
    head_dim = _int("head_dim", head_dim)
    base = _float("base", base)
    if distances is None:
        distances = _np.arange(257, dtype=_np.float64)
    else:
        try:
            distances = _np.ascontiguousarray(distances, dtype=_np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"distances: expected a sequence of numbers ({error})") from None
        if distances.ndim != 1:
            raise ValueError(f"distances: expected a 1-D sequence, got shape {distances.shape}")
    return DecayCurves(_core.decay(head_dim, base, distances, _decay_variants(variants)))


class BoundsReport:
    """Where the real and imaginary sums first turn negative, and the smallest base for a context.

    text: the table `ropescope decay --bound` prints. entries: one dict per
    variant (the sidecar's "bounds").
    """

    def __init__(self, result):
        self.text = result["text"]
        self.entries = _json.loads(result["json"])

    def to_dataframe(self):
        return _pandas().DataFrame(self.entries)

    to_pandas = to_dataframe

    def __repr__(self):
        return self.text


def bounds(head_dim=128, base=1e4, variants=None, bound_max=1_000_000, context=0):
    """The first distance at which c_re and c_im turn negative (scanned to bound_max) and, with a context,
    the smallest base keeping c_re >= 0 below it: `ropescope decay --bound [--context]`."""
    head_dim = _int("head_dim", head_dim)
    base = _float("base", base)
    return BoundsReport(_core.bounds(head_dim, base, _decay_variants(variants), _int("bound_max", bound_max),
                                     _int("context", context)))


# ---- plots


def plot_kinds():
    """The figure kinds of plot(), each with the outputs it reads."""
    return dict(_core.plot_kinds())


def plot(kind, inputs, output, title="", labels=None, conditions=None, size=None):
    """Draws the figure `ropescope plot KIND INPUTS --out OUTPUT` draws (gnuplot; .png, .svg or .pdf).

    inputs: saved analysis outputs (paths), or report objects (ProfileReport,
    PerplexityReport, AttentionMaps, DecayCurves), which are saved to a
    temporary directory first. size: (width, height) in pixels.
    """
    kind = _str("kind", kind)
    output = _path("output", output)
    if isinstance(inputs, (str, _os.PathLike)) or not hasattr(inputs, "__iter__"):
        inputs = [inputs]
    if size is None:
        width, height = 0, 0
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        width, height = _int("size", size[0]), _int("size", size[1])
    else:
        raise TypeError(f"size: expected (width, height) in pixels, got {size!r}")
    with _tempfile.TemporaryDirectory(prefix="ropescope-plot-") as scratch:
        paths = []
        for i, item in enumerate(inputs):
            if isinstance(item, (str, _os.PathLike)):
                paths.append(_path("inputs", item))
            else:
                paths.append(_saved_for_plot(item, kind, _os.path.join(scratch, f"run{i}")))
        _core.plot(kind, paths, output, _str("title", title), _strs("labels", labels), _strs("conditions", conditions),
                   (width, height))


def _saved_for_plot(report, kind, prefix):
    """Saves `report` under `prefix` and returns the file plot() reads for `kind`."""
    if isinstance(report, DecayCurves):
        path = prefix + ".csv"
        with open(path, "w", encoding="utf-8") as f:
            f.write(report.csv)
        return path
    if isinstance(report, ProfileReport):
        report.save(prefix)
        return prefix + ("_summary.json" if kind == "meandist" else ".csv")
    if isinstance(report, PerplexityReport):
        report.save(prefix)
        return prefix + ("_curve.csv" if kind == "curve" else ".csv")
    if isinstance(report, AttentionMaps):
        report.save(prefix)
        return prefix
    raise TypeError(f"inputs: expected paths or ropescope reports, got {_type_name(report)}")


# ---- models and their analyses


class Tokenizer:
    """A Hugging Face tokenizer.json (or a directory holding one), encoding exactly as HF tokenizers does."""

    def __init__(self, path):
        self._tokenizer = _core.Tokenizer(_path("path", path))

    def encode(self, text, add_special_tokens=True):
        """The ids of `text` (int32; uint32 for vocabularies beyond 2^31), as `ropescope tokenize` writes them."""
        return self._tokenizer.encode(_str("text", text), _bool("add_special_tokens", add_special_tokens))

    def decode(self, ids):
        """HF's decode(ids, skip_special_tokens=False); invalid UTF-8 shows as U+FFFD."""
        ids = _ints("ids", ids)
        if any(not 0 <= i < self.id_limit for i in ids):
            raise ValueError(f"ids: an id is outside [0, {self.id_limit})")
        return self._tokenizer.decode(ids)

    def token_bytes(self, id):
        """The bytes token `id` stands for."""
        id = _int("id", id)
        if not 0 <= id < self.id_limit:
            raise ValueError(f"id: {id} is outside [0, {self.id_limit})")
        return self._tokenizer.token_bytes(id)

    @property
    def id_limit(self):
        return self._tokenizer.id_limit

    def __repr__(self):
        return f"Tokenizer({self._tokenizer.origin!r})"


class Model:
    """A Hugging Face checkpoint (config.json + *.safetensors) opened on a backend.

    device: "auto" (CUDA when built in, present and able to run the model,
    else the CPU), "cpu" or "cuda". variant: None (from config.json and the
    weights) or "rope", "ec", "eh", forced. angles: "exact" (float128 angle
    reduction) or "hf" (HF's float32). tokenizer: tokenizer.json or its
    directory for tokenize() (default: the model directory). devices: None,
    or CUDA devices "all" / "0,1" / [0, 1] for data parallel: perplexity()
    and profile() spread their windows over them, each window run whole on
    one device, so the numbers are bitwise those of one device.
    tensor_parallel: 0 or N >= 2: the model split over N ranks (heads and
    MLP rows; N CUDA devices, `devices` or 0 .. N-1, summed by NCCL; with
    device="cpu" N CPU ranks, the split's reference), as --tensor-parallel.
    """

    def __init__(self, path, device="auto", variant=None, angles="exact", tokenizer=None, devices=None,
                 tensor_parallel=0):
        self.path = _path("path", path)
        if devices is not None and not isinstance(devices, str):
            devices = ",".join(str(d) for d in _ints("devices", devices))
        self._model = _core.Model(self.path, _str("device", device), "" if variant is None else _str("variant", variant),
                                  _str("angles", angles), None if tokenizer is None else _path("tokenizer", tokenizer),
                                  "" if devices is None else _str("devices", devices),
                                  _rank_count(tensor_parallel))
        self._info = None

    @property
    def info(self):
        """The checkpoint's description: the same document as `ropescope info --json` (without its "run")."""
        if self._info is None:
            self._info = _json.loads(self._model.info_json())
        return self._info

    @property
    def device(self):
        """The backend the model runs on: "cpu", "cuda", or a parallel group ("tensor parallel over 2 ranks: cpu, cpu")."""
        return self._model.device

    @property
    def precision(self):
        return self._model.precision

    @property
    def notices(self):
        """Why this backend was chosen (e.g. a CUDA fallback), as the CLI shows them."""
        return list(self._model.notices)

    @property
    def vocab_size(self):
        return self._model.vocab_size

    def __repr__(self):
        return f"Model({self.path!r}, device={self.device!r}, variant={self.info['variant']!r})"

    def tokenize(self, text, add_special_tokens=True):
        """`text` as token ids (np.int32) with the model's tokenizer; ids beyond the model's vocabulary are refused."""
        return self._model.tokenize(_str("text", text), _bool("add_special_tokens", add_special_tokens))

    def nll(self, tokens):
        """-log p(token[t+1] | tokens[0..t]) for t = 0 .. T-2, one forward pass: float64 [T-1]."""
        return self._model.nll(_tokens(tokens, self.vocab_size))

    def attention_maps(self, tokens, layers=None, heads=None, start=0, length=16, full_rows=False, scores=False,
                       virtual_imaginary=False, max_memory="4G", progress=False):
        """Attention maps of query rows start .. start+length-1 (`ropescope attn`).

        layers, heads: which (default all); full_rows: every key 0 ..
        start+length-1, not only the square window; scores: also the
        pre-softmax scores; virtual_imaginary: vanilla RoPE only, the discarded
        imaginary scores; max_memory: refuse maps larger than this ("4G",
        "512M" or bytes). Returns AttentionMaps.
        """
        tokens = _tokens(tokens, self.vocab_size)
        if isinstance(max_memory, str):
            max_bytes = _core.parse_memory_size(max_memory)
        else:
            max_bytes = _int("max_memory", max_memory)
            if not 1 <= max_bytes < 2**64:
                raise ValueError(f"max_memory: {max_bytes} is not a size from 1 byte to 16 EiB")
        keywords = dict(layers=_ints("layers", layers), heads=_ints("heads", heads), start=_int("start", start),
                        length=_int("length", length), full_rows=_bool("full_rows", full_rows),
                        scores=_bool("scores", scores), virtual_imaginary=_bool("virtual_imaginary", virtual_imaginary))
        if any(not -(2**31) <= v < 2**31 for v in keywords["layers"] + keywords["heads"]):
            raise ValueError("layers, heads: a value is out of range")
        with _Progress(progress, "attn") as bar:
            result = self._model.attention_maps(tokens, max_bytes=max_bytes, progress=bar.callback(), **keywords)
        return AttentionMaps(result, _invocation("ropescope.Model.attention_maps", path=self.path,
                                                 max_memory=max_memory, **keywords))

    def profile(self, tokens, window, windows=0, exact_limit=0, bins_per_decade=16, bin_edges=None, beyond=None,
                noise_real=None, noise_imag=None, seed=0, progress=True):
        """Attention probability and score by distance over non-overlapping windows (`ropescope profile`).

        window: T; windows: at most this many (0: all); exact_limit: one bin
        per distance below it (0: min(1024, T)); bins_per_decade or bin_edges:
        the bins above it; beyond: thresholds of the mass beyond X;
        noise_real / noise_imag: query-noise std on one component; seed: its
        seed. Returns ProfileReport.
        """
        tokens = _tokens(tokens, self.vocab_size)
        keywords = dict(window=_int("window", window), windows=_int("windows", windows),
                        exact_limit=_int("exact_limit", exact_limit),
                        bins_per_decade=_int("bins_per_decade", bins_per_decade),
                        bin_edges=_ints("bin_edges", bin_edges), beyond=_ints("beyond", beyond),
                        noise_real=None if noise_real is None else _float("noise_real", noise_real),
                        noise_imag=None if noise_imag is None else _float("noise_imag", noise_imag),
                        seed=_int("seed", seed))
        if not -(2**31) <= keywords["bins_per_decade"] < 2**31:
            raise ValueError(f"bins_per_decade: {keywords['bins_per_decade']} is out of range")
        with _Progress(progress, "profile") as bar:
            result = self._model.profile(tokens, progress=bar.callback(), **keywords)
        return ProfileReport(result, _invocation("ropescope.Model.profile", path=self.path, **keywords))

    def perplexity(self, tokens, lengths, stride=None, curve=0, max_windows=0, noise_real=(), noise_imag=(), seed=0,
                   ablate=(), scaling=(), byte_level=False, progress=True, stride_fraction=None):
        """Strided sliding-window perplexity at each length, under each condition (`ropescope ppl`).

        lengths: window lengths L; stride: one stride for every L (default
        L/2); stride_fraction: instead of stride, floor(F L) for each L (1:
        non-overlapping windows); curve: also the per-position loss over windows of this length;
        max_windows: at most this many curve windows; noise_real /
        noise_imag: one condition per std; ablate: "real", "imaginary" or
        "all", one condition each; scaling: RoPE overrides as key=value text,
        one condition each; byte_level: one token per byte (bits per byte).
        Returns PerplexityReport.
        """
        tokens = _tokens(tokens, self.vocab_size)
        keywords = dict(lengths=_ints("lengths", lengths), stride=None if stride is None else _int("stride", stride),
                        curve=_int("curve", curve), max_windows=_int("max_windows", max_windows),
                        noise_real=_floats("noise_real", noise_real), noise_imag=_floats("noise_imag", noise_imag),
                        seed=_int("seed", seed), ablate=_strs("ablate", ablate), scaling=_strs("scaling", scaling),
                        byte_level=_bool("byte_level", byte_level),
                        stride_fraction=None if stride_fraction is None else _float("stride_fraction", stride_fraction))
        with _Progress(progress, "ppl") as bar:
            result = self._model.perplexity(tokens, progress=bar.callback(), **keywords)
        return PerplexityReport(result, _invocation("ropescope.Model.perplexity", path=self.path, **keywords))


class ProfileReport:
    """A distance profile (`ropescope profile`).

    mean_prob, mean_score: [layers, heads, bins] float64 (mean_score NaN
    where a bin has no visible pair); bin_edges: [bins, 2] int64, the lowest
    and highest distance of each bin; summary: the PREFIX_summary.json
    document (per-head statistics in summary["heads"], real / imaginary
    aggregates per layer in summary["layers"] and for the model in
    summary["model"]); csv: the long CSV.
    """

    def __init__(self, result, invocation):
        self._result = result
        self._invocation = invocation
        self._summary = None
        self.mean_prob = result.mean_prob
        self.mean_score = result.mean_score
        self.bin_edges = result.bin_edges
        self.layers = result.layers
        self.heads = result.heads

    @property
    def summary(self):
        if self._summary is None:
            self._summary = _json.loads(self._result.summary_json())
        return self._summary

    @property
    def csv(self):
        return self._result.csv()

    def head(self, layer, head):
        """One head's statistics (kind, mean distance, entropy, mass beyond X)."""
        layer, head = _int("layer", layer), _int("head", head)
        if not 0 <= layer < self.layers:
            raise ValueError(f"layer: {layer} is outside [0, {self.layers})")
        if not 0 <= head < self.heads:
            raise ValueError(f"head: {head} is outside [0, {self.heads})")
        return self.summary["heads"][layer * self.heads + head]

    def to_dataframe(self):
        """The long table of PREFIX.csv: one row per layer, head and bin."""
        return _pandas().read_csv(_io.StringIO(self.csv), float_precision="round_trip", keep_default_na=False, na_values=["", "nan", "NaN"])

    to_pandas = to_dataframe

    def save(self, prefix):
        """Writes PREFIX_prob.npy, PREFIX_score.npy, PREFIX_bins.npy, PREFIX.csv and PREFIX_summary.json, each
        with its sidecar, as `ropescope profile --out PREFIX` does. Returns the paths written."""
        prefix = _path("prefix", prefix)
        self._result.save(prefix, self._invocation + [f"save={prefix!r}"])
        return [prefix + s for s in ("_prob.npy", "_score.npy", "_bins.npy", ".csv", "_summary.json")]

    def __repr__(self):
        return f"ProfileReport(layers={self.layers}, heads={self.heads}, bins={len(self.bin_edges)})"


class PerplexityReport:
    """Perplexity across lengths and conditions (`ropescope ppl`).

    rows: one dict per condition and length (the CSV's columns); conditions:
    their names; curve: [conditions, curve_length - 1] mean loss by target
    position, or None; table: the text the CLI prints; csv, curve_csv: the files' text.
    """

    def __init__(self, result, invocation):
        self._result = result
        self._invocation = invocation
        self.conditions = list(result.conditions)
        self.curve = result.curve
        self.csv = result.csv()
        self.table = result.table()
        self.rows = [_typed_row(r) for r in _csv.DictReader(_io.StringIO(self.csv))]

    @property
    def curve_csv(self):
        return self._result.curve_csv()

    @property
    def sidecar(self):
        """The fields every sidecar of the run records (conditions, lengths, strides, seed, ...)."""
        return _json.loads(self._result.sidecar_json())

    def to_dataframe(self):
        """The table of PREFIX.csv: one row per condition and length."""
        return _pandas().read_csv(_io.StringIO(self.csv), float_precision="round_trip", keep_default_na=False, na_values=[""])

    to_pandas = to_dataframe

    def curve_dataframe(self):
        """The curve of PREFIX_curve.csv (needs curve=T)."""
        if self.curve is None:
            raise ValueError("curve: this run computed no per-position curve (pass curve=T)")
        return _pandas().read_csv(_io.StringIO(self.curve_csv), float_precision="round_trip", keep_default_na=False, na_values=[""])

    def save(self, prefix):
        """Writes PREFIX.csv (and with a curve PREFIX_curve.csv, PREFIX_curve.npy), each with its sidecar, as
        `ropescope ppl --out PREFIX` does. Returns the paths written."""
        prefix = _path("prefix", prefix)
        self._result.save(prefix, self._invocation + [f"save={prefix!r}"])
        suffixes = (".csv",) if self.curve is None else (".csv", "_curve.csv", "_curve.npy")
        return [prefix + s for s in suffixes]

    def __repr__(self):
        return self.table


def _typed_row(row):
    typed = {}
    for key, value in row.items():
        if key == "condition":
            typed[key] = value
        elif key == "beyond_training":
            typed[key] = value == "true"
        elif value == "":
            typed[key] = None
        elif key in ("L", "stride", "windows", "tokens_scored"):
            typed[key] = int(value)
        else:
            typed[key] = float(value)
    return typed


class AttentionMaps:
    """Attention maps of one window (`ropescope attn`).

    probabilities: [maps, rows, columns] float32 (a view of the library's
    buffer: no copy); scores, virtual_imaginary: the same when asked for,
    else None; manifest: manifest.json's document; maps: each map's layer,
    head, kind, query head and KV head.
    """

    def __init__(self, result, invocation):
        self._result = result
        self._invocation = invocation
        self.probabilities = result.probabilities
        self.scores = result.scores
        self.virtual_imaginary = result.virtual_imaginary
        self.manifest = _json.loads(result.manifest_json())

    @property
    def maps(self):
        return self.manifest["maps"]

    @property
    def shape(self):
        return self.probabilities.shape

    def save(self, directory):
        """Writes attn_probs.npy (attn_scores.npy, virtual_imaginary.npy), a sidecar each and manifest.json into
        `directory` (created if missing), as `ropescope attn --out DIRECTORY` does. Returns the paths written."""
        directory = _path("directory", directory)
        _os.makedirs(directory, exist_ok=True)
        self._result.save(directory, self._invocation + [f"save={directory!r}"])
        names = ["attn_probs.npy"]
        if self.scores is not None:
            names.append("attn_scores.npy")
        if self.virtual_imaginary is not None:
            names.append("virtual_imaginary.npy")
        return [_os.path.join(directory, n) for n in names + ["manifest.json"]]

    def __repr__(self):
        return f"AttentionMaps(shape={self.shape})"


