# ropescope.Model against the CLI on the demo checkpoints, same inputs: info vs
# `info --json`, tokenize vs `ropescope tokenize`, perplexity and nll vs
# `ropescope ppl`, profile vs `ropescope profile`, attention maps vs
# `ropescope attn` (bitwise: the same code on the same thread count), and each
# report's save() writing the CLI's files with the same contents.
import csv
import json
import shutil

import numpy as np
import pytest

import ropescope
from conftest import DEVICE, TOKENIZERS, run_cli


@pytest.mark.parametrize("name", ["rope", "ec", "eh", "rope_sharded"])
def test_info_is_the_cli_json(models, name):
    cli = json.loads(run_cli("info", models / name, "--json").stdout)
    del cli["run"]
    model = ropescope.Model(str(models / name), device=DEVICE)
    assert model.info == cli
    assert model.device == DEVICE


def test_tokenizer_matches_the_cli(tmp_path):
    tokenizer_json = TOKENIZERS / "llama3_like" / "tokenizer.json"
    text = "Rotary position embeddings, real and imaginary: 123 + 456 = 579.\n  Ünïcödé 日本語 text."
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    for special, flags in ((True, []), (False, ["--no-special"])):
        run_cli("tokenize", tokenizer_json, "--text", tmp_path / "t.txt", "--out", tmp_path / "ids.npy", "--quiet", *flags)
        expected = np.load(tmp_path / "ids.npy")
        ids = ropescope.Tokenizer(tokenizer_json).encode(text, add_special_tokens=special)
        assert ids.dtype == expected.dtype
        assert np.array_equal(ids, expected)


def test_model_tokenizer_must_fit_the_vocabulary(models):
    model = ropescope.Model(models / "rope", device=DEVICE, tokenizer=TOKENIZERS / "llama3_like")
    with pytest.raises(ValueError, match="^text: token .* beyond the model's 256 embedding rows"):
        model.tokenize("a long enough text with words")


PPL_FLAGS = ["--lengths", "32,64,300", "--curve", "64", "--noise-imag", "0,0.3", "--ablate", "real",
             "--scaling", "type=linear,factor=1", "--scaling", "type=yarn,factor=4,label=yarn4"]


def test_perplexity_matches_the_cli(models, byte_text, tmp_path):
    path, tokens = byte_text
    run_cli("ppl", models / "ec", "--device", DEVICE, "--tokens", path, "--bytes", *PPL_FLAGS, "--quiet",
            "--out", tmp_path / "cli")
    model = ropescope.Model(models / "ec", device=DEVICE)
    report = model.perplexity(tokens, lengths=[32, 64, 300], curve=64, noise_imag=[0, 0.3], ablate="real",
                              scaling=["type=linear,factor=1", "type=yarn,factor=4,label=yarn4"], byte_level=True,
                              progress=False)
    assert report.csv == (tmp_path / "cli.csv").read_text()
    assert report.curve_csv == (tmp_path / "cli_curve.csv").read_text()
    assert np.array_equal(report.curve, np.load(tmp_path / "cli_curve.npy"))
    assert report.conditions[0] == "clean" and len(report.rows) == 3 * len(report.conditions)
    assert report.rows[0]["L"] == 32 and report.rows[0]["bits_per_byte"] > 0
    frame = report.to_dataframe()
    assert list(frame["ppl"]) == [r["ppl"] for r in report.rows]
    written = report.save(tmp_path / "py")
    assert written == [str(tmp_path / "py") + s for s in (".csv", "_curve.csv", "_curve.npy")]
    for suffix in (".csv", "_curve.csv", "_curve.npy"):
        assert (tmp_path / f"py{suffix}").read_bytes() == (tmp_path / f"cli{suffix}").read_bytes()
    cli_sidecar = json.loads((tmp_path / "cli.csv.json").read_text())
    py_sidecar = json.loads((tmp_path / "py.csv.json").read_text())
    for key in ("conditions", "lengths", "strides", "columns", "backend", "model"):
        if key in cli_sidecar:
            assert py_sidecar[key] == cli_sidecar[key], key


def test_stride_fraction_matches_the_cli(models, byte_text, tmp_path):
    path, tokens = byte_text
    run_cli("ppl", models / "rope", "--device", DEVICE, "--tokens", path, "--bytes", "--lengths", "32,100",
            "--stride-fraction", "1", "--quiet", "--out", tmp_path / "cli")
    report = ropescope.Model(models / "rope", device=DEVICE).perplexity(tokens, lengths=[32, 100], stride_fraction=1,
                                                                        byte_level=True, progress=False)
    assert report.csv == (tmp_path / "cli.csv").read_text()
    assert [r["stride"] for r in report.rows] == [32, 100]


def test_nll_is_the_one_window_perplexity(models, byte_text, tmp_path):
    path, tokens = byte_text
    window = tokens[:64].copy()
    (tmp_path / "w.bin").write_bytes(window.astype(np.uint8).tobytes())
    run_cli("ppl", models / "eh", "--device", DEVICE, "--tokens", tmp_path / "w.bin", "--bytes", "--lengths", "64", "--quiet",
            "--out", tmp_path / "cli")
    row = next(csv.DictReader(open(tmp_path / "cli.csv")))
    model = ropescope.Model(models / "eh", device=DEVICE)
    nll = model.nll(window)
    assert nll.dtype == np.float64 and nll.shape == (63,)
    assert np.exp(nll.mean()) == pytest.approx(float(row["ppl"]), rel=1e-12)
    assert np.array_equal(model.nll(list(window)), nll)
    assert np.array_equal(model.nll(window.astype(np.uint16)), nll)


def test_profile_matches_the_cli(models, byte_text, tmp_path):
    path, tokens = byte_text
    run_cli("profile", models / "ec", "--device", DEVICE, "--tokens", path, "--bytes", "--window", "128", "--windows", "3",
            "--exact-limit", "32", "--bins-per-decade", "8", "--beyond", "16,64", "--noise-real", "0.1", "--seed", "7",
            "--quiet", "--out", tmp_path / "cli")
    model = ropescope.Model(models / "ec", device=DEVICE)
    report = model.profile(tokens, window=128, windows=3, exact_limit=32, bins_per_decade=8, beyond=[16, 64],
                           noise_real=0.1, seed=7, progress=False)
    assert np.array_equal(report.bin_edges, np.load(tmp_path / "cli_bins.npy"))
    if DEVICE == "cpu":
        # The CPU backend is deterministic for a thread count: the same bits.
        assert np.array_equal(report.mean_prob, np.load(tmp_path / "cli_prob.npy"))
        assert np.array_equal(report.mean_score, np.load(tmp_path / "cli_score.npy"), equal_nan=True)
        assert report.summary == json.loads((tmp_path / "cli_summary.json").read_text())
        assert report.csv == (tmp_path / "cli.csv").read_text()
    else:
        # The CUDA distance sums add fp64 per-tile partials with atomics, in an order that changes from run to
        # run: two runs agree to about 1e-15 relative, not bit for bit (seen: entropy 3.4784397722777425 against
        # 3.478439772277742). Tolerance: 1e-12 relative.
        assert np.allclose(report.mean_prob, np.load(tmp_path / "cli_prob.npy"), rtol=1e-12, atol=0)
        assert np.allclose(report.mean_score, np.load(tmp_path / "cli_score.npy"), rtol=1e-12, atol=0, equal_nan=True)
        cli = json.loads((tmp_path / "cli_summary.json").read_text())
        for ours, theirs in zip(report.summary["heads"], cli["heads"]):
            assert ours["kind"] == theirs["kind"]
            for key in ("mean_distance", "entropy"):
                assert np.isclose(ours[key], theirs[key], rtol=1e-12, atol=0), (key, ours, theirs)
    assert report.mean_prob.shape == (report.layers, report.heads, len(report.bin_edges))
    assert report.head(1, 1)["kind"] == "imaginary"
    assert len(report.to_dataframe()) == report.layers * report.heads * len(report.bin_edges)
    report.save(tmp_path / "py")
    # save() writes the CLI's files: the same bytes on the CPU; on CUDA (a second run, see above) the files
    # hold exactly the report's own numbers.
    if DEVICE == "cpu":
        for suffix in ("_prob.npy", "_score.npy", "_bins.npy", ".csv", "_summary.json"):
            assert (tmp_path / f"py{suffix}").read_bytes() == (tmp_path / f"cli{suffix}").read_bytes(), suffix
    else:
        assert np.array_equal(np.load(tmp_path / "py_prob.npy"), report.mean_prob)
        assert np.array_equal(np.load(tmp_path / "py_score.npy"), report.mean_score, equal_nan=True)
        assert (tmp_path / "py_bins.npy").read_bytes() == (tmp_path / "cli_bins.npy").read_bytes()
        assert (tmp_path / "py.csv").read_text() == report.csv
        assert json.loads((tmp_path / "py_summary.json").read_text()) == report.summary


def test_attention_maps_match_the_cli(models, byte_text, tmp_path):
    path, tokens = byte_text
    run_cli("attn", models / "rope", "--device", DEVICE, "--tokens", path, "--bytes", "--layers", "1,0", "--heads", "3,0",
            "--start", "40", "--length", "24", "--full-rows", "--scores", "--virtual-imaginary", "--quiet",
            "--out", tmp_path / "cli")
    model = ropescope.Model(models / "rope", device=DEVICE)
    maps = model.attention_maps(tokens, layers=[1, 0], heads=[3, 0], start=40, length=24, full_rows=True, scores=True,
                                virtual_imaginary=True)
    assert maps.shape == (4, 24, 64)
    assert np.array_equal(maps.probabilities, np.load(tmp_path / "cli" / "attn_probs.npy"))
    assert np.array_equal(maps.scores, np.load(tmp_path / "cli" / "attn_scores.npy"))
    assert np.array_equal(maps.virtual_imaginary, np.load(tmp_path / "cli" / "virtual_imaginary.npy"))
    assert maps.manifest == json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert [(m["layer"], m["head"]) for m in maps.maps] == [(1, 3), (1, 0), (0, 3), (0, 0)]
    maps.save(tmp_path / "py")
    for name in ("attn_probs.npy", "attn_scores.npy", "virtual_imaginary.npy", "manifest.json"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


def test_errors_match_the_cli(models, byte_text, tmp_path):
    path, tokens = byte_text
    model = ropescope.Model(models / "ec", device=DEVICE)
    cases = [
        (lambda: model.profile(tokens, window=64, bins_per_decade=0, progress=False),
         ["profile", "--window", "64", "--bins-per-decade", "0", "--out", tmp_path / "p"]),
        (lambda: model.perplexity(tokens, lengths=[1], progress=False), ["ppl", "--lengths", "1", "--out", tmp_path / "q"]),
        (lambda: model.attention_maps(tokens, layers=[5]), ["attn", "--layers", "5", "--out", tmp_path / "a"]),
        (lambda: model.attention_maps(tokens, max_memory="4Q"), ["attn", "--max-memory", "4Q", "--out", tmp_path / "b"]),
    ]
    for call, args in cases:
        with pytest.raises(ValueError) as error:
            call()
        cli = run_cli(args[0], models / "ec", "--device", DEVICE, "--tokens", path, "--bytes", *args[1:], "--quiet",
                      check=False)
        assert cli.returncode == 2, cli.stderr
        parameter, detail = str(error.value).split(": ", 1)
        assert detail in cli.stderr, (str(error.value), cli.stderr)


def test_devices_are_checked_as_by_the_cli(models):
    with pytest.raises(ValueError, match="^devices: names CUDA devices; device cpu takes none"):
        ropescope.Model(models / "rope", device="cpu", devices=[0])
    # Without a GPU no device exists; with one, device 0 is named twice: either way the error names devices.
    with pytest.raises(ValueError, match="^devices: '0,0': "):
        ropescope.Model(models / "rope", devices=[0, 0])
    with pytest.raises(ValueError, match="^devices: 'x': 'x' is not a device number|^devices: 'x': no CUDA device"):
        ropescope.Model(models / "rope", devices="x")
    with pytest.raises(TypeError, match="^devices: expected an integer"):
        ropescope.Model(models / "rope", devices=["x"])


def test_tensor_parallel_on_cpu_ranks_matches_one_backend(models, byte_text):
    _, tokens = byte_text
    one = ropescope.Model(models / "ec", device="cpu")
    two = ropescope.Model(models / "ec", device="cpu", tensor_parallel=2)
    assert two.device.startswith("tensor parallel over 2 ranks")
    a = one.perplexity(tokens, lengths=[64], ablate=["imaginary"], progress=False)
    b = two.perplexity(tokens, lengths=[64], ablate=["imaginary"], progress=False)
    for x, y in zip(a.rows, b.rows):
        assert abs(x["mean_nll"] - y["mean_nll"]) < 1e-4, (x, y)
    with pytest.raises(ValueError, match="^tensor_parallel: -1"):
        ropescope.Model(models / "ec", device="cpu", tensor_parallel=-1)
    with pytest.raises(ValueError, match="query heads .* do not divide by 3"):
        ropescope.Model(models / "ec", device="cpu", tensor_parallel=3)


def test_not_a_model(tmp_path):
    with pytest.raises(ValueError, match="^path: "):
        ropescope.Model(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="config.json"):
        ropescope.Model(tmp_path)
    with pytest.raises(TypeError, match="^path: "):
        ropescope.Model(42)


def test_plot_matches_the_cli(models, byte_text, tmp_path):
    if shutil.which("gnuplot") is None:
        pytest.skip("gnuplot is not installed")
    path, tokens = byte_text
    report = ropescope.Model(models / "ec", device=DEVICE).perplexity(tokens, lengths=[32, 64], progress=False)
    report.save(tmp_path / "run")
    run_cli("plot", "ppl", tmp_path / "run.csv", "--out", tmp_path / "cli.svg")
    ropescope.plot("ppl", tmp_path / "run.csv", tmp_path / "py.svg")
    assert (tmp_path / "py.svg").read_bytes() == (tmp_path / "cli.svg").read_bytes()
    ropescope.plot("ppl", report, tmp_path / "from_report.svg")
    assert (tmp_path / "from_report.svg").stat().st_size > 0
    assert "ppl" in ropescope.plot_kinds()
