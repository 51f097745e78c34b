# How calls run: a 64 MB attention map comes back without a copy, the GIL is
# released during a forward pass, progress reaches a Python callback, an
# exception raised there stops the run, and calling through Python costs no
# measurable time over the library's own forward.
import threading
import time

import numpy as np
import pytest

import ropescope
from conftest import DEVICE, text_bytes


@pytest.fixture(scope="module")
def model(models):
    return ropescope.Model(models / "rope", device=DEVICE)


def long_tokens(n):
    return np.frombuffer(text_bytes(n), dtype=np.uint8).astype(np.int32)


def test_a_64_mb_map_is_not_copied(model):
    # 2 layers x 4 heads of 1448 x 1448 float32: 67 MB.
    maps = model.attention_maps(long_tokens(1448), length=1448)
    probabilities = maps.probabilities
    assert probabilities.nbytes >= 64e6
    assert not probabilities.flags.owndata
    address = probabilities.__array_interface__["data"][0]
    again = maps._result.probabilities
    assert again.__array_interface__["data"][0] == address
    probabilities[0, 0, 0] = 0.5
    assert again[0, 0, 0] == 0.5
    del maps, again
    assert probabilities.sum() > 0  # the view keeps the buffer alive


def test_arrays_own_the_library_buffers(model):
    nll = model.nll(long_tokens(100))
    assert not nll.flags.owndata and nll.base is not None
    assert nll.flags.writeable


def test_the_gil_is_released_during_a_forward(model):
    tokens = long_tokens(1500)
    counter = [0]
    running = threading.Event()
    stop = threading.Event()

    def count():
        running.set()
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=count)
    thread.start()
    running.wait()
    start = time.perf_counter()
    before = counter[0]
    # Forwards for at least 0.2 s (one is milliseconds on a GPU), almost all of it inside the library.
    while time.perf_counter() - start < 0.2:
        model.perplexity(tokens, lengths=[1024], progress=False)
    during = counter[0] - before
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    # A thread that never gets the GIL would count (almost) nothing while the forward runs.
    assert during > 10_000, (during, elapsed)


def test_progress_reaches_a_callback_and_can_stop_the_run(model):
    calls = []
    model.perplexity(long_tokens(600), lengths=[64], stride=64, progress=lambda *p: calls.append(p))
    assert [c[0] for c in calls] == list(range(1, len(calls) + 1))
    assert all(c[1] == len(calls) for c in calls) and len(calls) > 5

    class Stop(Exception):
        pass

    def stop(done, total, tokens):
        if done == 2:
            raise Stop()

    with pytest.raises(Stop):
        model.perplexity(long_tokens(600), lengths=[64], stride=64, progress=stop)


def test_progress_with_tqdm(model):
    pytest.importorskip("tqdm")
    model.profile(long_tokens(600), window=128, progress=True)


def test_calling_through_python_costs_nothing_measurable(model):
    # What the public call adds to the raw _core call: the argument checks of
    # the token array (the other checks are per keyword, not per token). Timed
    # apart, best of many, so that a busy machine does not decide the outcome;
    # the extension's own cost (one copy of the ids, the GIL release) is part of the raw call.
    tokens = long_tokens(512)
    checks = min(_seconds(lambda: ropescope._tokens(tokens, model.vocab_size)) for _ in range(50))
    forward = min(_seconds(lambda: model._model.nll(tokens)) for _ in range(5))
    assert checks < 0.01 * forward, (checks, forward)


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_ctrl_c_stops_a_run(model):
    # SIGINT arrives while the library computes (the GIL released); the next
    # window's progress check raises KeyboardInterrupt and the run stops early.
    import os
    import signal

    windows = []
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.perplexity(long_tokens(4000), lengths=[64, 128, 256, 512], stride=8,
                         progress=lambda done, total, tokens: windows.append((done, total)))
    timer.join()
    # Stopped before the last window (a signal seen only after the run would let every window report).
    assert not windows or windows[-1][0] < windows[-1][1]


def test_threads_sharing_a_model_get_the_sequential_results(model):
    tokens = [long_tokens(300 + 50 * i) for i in range(6)]
    expected = [model.nll(t) for t in tokens]
    results = [None] * len(tokens)

    def run(i):
        results[i] = model.nll(tokens[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(r, e) for r, e in zip(results, expected))
