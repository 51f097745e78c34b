# ropescope.decay / ropescope.bounds against `ropescope decay`: the same CSV
# byte for byte, the same bound report, the same errors (ValueError naming the
# keyword where the CLI names the flag).
import numpy as np
import pytest

import ropescope
from conftest import run_cli


def test_default_decay_is_the_cli_csv():
    curves = ropescope.decay()
    assert curves.csv == run_cli("decay", "--quiet").stdout
    assert curves.labels == ["RoPE"]
    assert curves.re_discrete.shape == (1, 257)
    assert curves.re_discrete[0, 0] == pytest.approx(1.0)


def test_variants_and_distances_match_the_cli(tmp_path):
    out = tmp_path / "decay.csv"
    run_cli("decay", "-d", "64", "-b", "5e4", "--range", "0:3000:7", "--variant", "label=plain", "--variant", "base=5e5",
            "--variant", "type=yarn,factor=8,original=2048", "--variant", "type=llama3,factor=8", "--out", out, "--quiet")
    curves = ropescope.decay(head_dim=64, base=5e4, distances=np.arange(0, 3001, 7, dtype=float),
                             variants=["label=plain", "base=5e5", "type=yarn,factor=8,original=2048", "type=llama3,factor=8"])
    assert curves.csv == out.read_text()
    import json
    sidecar = json.loads((tmp_path / "decay.csv.json").read_text())
    assert curves.variants == sidecar["variants"]
    assert curves.labels == [v["label"] for v in sidecar["variants"]]
    frame = curves.to_dataframe()
    assert list(frame.columns) == ["variant", "distance", "re_integral", "im_integral", "re_discrete", "im_discrete",
                                   "relative_bound"]
    assert np.array_equal(frame["re_discrete"].to_numpy(), curves.re_discrete.reshape(-1))


def test_bounds_match_the_cli(tmp_path):
    cli = run_cli("decay", "--bound", "--bound-max", "5000", "--context", "4096", "--variant", "label=RoPE",
                  "--variant", "base=5e5", "--json", tmp_path / "b.json", "--quiet")
    report = ropescope.bounds(bound_max=5000, context=4096, variants=["label=RoPE", "base=5e5"])
    assert report.text == cli.stdout
    import json
    assert report.entries == json.loads((tmp_path / "b.json").read_text())["bounds"]


@pytest.mark.parametrize("keywords,flags,message", [
    (dict(head_dim=127), ["--head-dim", "127"], "must be even"),
    (dict(base=1.0), ["--base", "1"], "must be > 1"),
    (dict(variants=["type=yarn,factor=0.5"]), ["--variant", "type=yarn,factor=0.5"], "factor must be >= 1"),
])
def test_bad_values_are_value_errors_with_the_cli_message(keywords, flags, message):
    with pytest.raises(ValueError, match=message) as error:
        ropescope.decay(**keywords)
    cli = run_cli("decay", *flags, check=False)
    assert cli.returncode == 2
    detail = str(error.value).split(": ", 1)[1]
    assert detail in cli.stderr


def test_bound_errors_name_the_keyword():
    with pytest.raises(ValueError, match="^bound_max: must be >= 1"):
        ropescope.bounds(bound_max=0)
    with pytest.raises(ValueError, match="^context: must be 2"):
        ropescope.bounds(context=1)
    with pytest.raises(TypeError, match="head_dim"):
        ropescope.decay(head_dim="128")
    with pytest.raises(ValueError, match="distance"):
        ropescope.decay(distances=[-1.0])
