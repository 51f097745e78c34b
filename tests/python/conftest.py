# Shared fixtures of the Python API tests: the CLI under test (ROPESCOPE_BINARY,
# set by ctest; default build/src/cli/ropescope), the device both run the
# models on (ROPESCOPE_TEST_DEVICE, default cpu; cuda on a GPU machine), the
# demo checkpoints and a deterministic byte-level text, so each test runs the
# same input through Python and the CLI. OpenMP threads are pinned so both run the CPU backend
# with the same thread count (its results are deterministic for a given count).
import os
import pathlib
import subprocess

os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "data" / "models"
TOKENIZERS = REPO / "tests" / "data" / "tokenizers"
DEVICE = os.environ.get("ROPESCOPE_TEST_DEVICE", "cpu")


def binary():
    return os.environ.get("ROPESCOPE_BINARY", str(REPO / "build" / "src" / "cli" / "ropescope"))


def run_cli(*args, check=True):
    """Runs the CLI; returns the CompletedProcess (stdout, stderr as text)."""
    result = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"ropescope {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result


def text_bytes(n):
    """Deterministic text-like bytes (the CLI tests' generator)."""
    s = ""
    i = 0
    while len(s) < n:
        s += f"the rotary position {i * 37 % 101}. "
        i += 1
    return s[:n].encode()


@pytest.fixture(scope="session")
def byte_text(tmp_path_factory):
    """(path of a raw byte file for --tokens --bytes, the same bytes as int32 token ids)."""
    data = text_bytes(800)
    path = tmp_path_factory.mktemp("input") / "text.bin"
    path.write_bytes(data)
    return path, np.frombuffer(data, dtype=np.uint8).astype(np.int32)


@pytest.fixture(scope="session")
def models():
    return MODELS
