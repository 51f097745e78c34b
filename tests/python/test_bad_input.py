# Bad input never crashes the interpreter: a few hundred seeded random calls
# with wrong types, shapes, dtypes, strides and values, each of which must
# raise TypeError, ValueError or RuntimeError (FormatError included). The
# calls run in a child interpreter, so a crash fails this test instead of
# taking pytest down; the child prints one line per unexpected outcome.
import subprocess
import sys
import textwrap

from conftest import MODELS

CHILD = textwrap.dedent(r"""
    import random, sys
    import numpy as np
    import ropescope

    rng = random.Random(int(sys.argv[2]))
    model = ropescope.Model(sys.argv[1] + "/ec", device="cpu")
    good = np.frombuffer(b"the rotary position embedding " * 20, dtype=np.uint8).astype(np.int32)

    def bad_tokens():
        return rng.choice([
            None, 3, 2.5, "text", b"bytes", {"a": 1}, [], [1.5, 2.0], [1, "x"], [True, False], [2**70],
            np.array([], dtype=np.int32), good.reshape(20, -1), good.astype(np.float32), good.astype(np.float64),
            good.astype(np.int8), good.astype(np.complex64), good[::2], good.astype(bool), np.array(good, dtype=object),
            good + 256, good - 300, np.array([2**40], dtype=np.int64), np.array([-1], dtype=np.int32),
            np.array([[1]], dtype=np.int32), good.astype(np.uint32) + np.uint32(2**31),
        ])

    def junk():
        return rng.choice([None, -1, 0, 2**63, -(2**63) - 1, 1e300, float("nan"), float("inf"), "x", [], [-5],
                           [1, 2**40], {"k": 1}, (3,), True, object(), b"\xff", "type=nonsense", np.int64(-7)])

    maybe_good = lambda: good if rng.random() < 0.5 else bad_tokens()
    calls = [
        lambda: model.nll(bad_tokens()),
        lambda: model.perplexity(maybe_good(), lengths=junk(), progress=False),
        lambda: model.perplexity(good, lengths=[32], stride=junk(), curve=junk(), progress=False),
        lambda: model.perplexity(good, lengths=[32], noise_real=junk(), noise_imag=junk(), progress=False),
        lambda: model.perplexity(good, lengths=[32], ablate=junk(), scaling=junk(), seed=junk(), progress=False),
        lambda: model.perplexity(good, lengths=[32], byte_level=junk(), progress=junk()),
        lambda: model.profile(maybe_good(), window=junk(), progress=False),
        lambda: model.profile(good, window=64, windows=junk(), exact_limit=junk(), bins_per_decade=junk(), progress=False),
        lambda: model.profile(good, window=64, bin_edges=junk(), beyond=junk(), progress=False),
        lambda: model.profile(good, window=64, noise_real=junk(), noise_imag=junk(), seed=junk(), progress=False),
        lambda: model.attention_maps(maybe_good(), layers=junk(), heads=junk()),
        lambda: model.attention_maps(good, start=junk(), length=junk(), max_memory=junk()),
        lambda: model.attention_maps(good, full_rows=junk(), scores=junk(), virtual_imaginary=junk()),
        lambda: model.tokenize(junk()),
        lambda: ropescope.Model(junk(), device=junk()),
        lambda: ropescope.Model(sys.argv[1] + "/ec", variant=junk(), angles=junk()),
        lambda: ropescope.Model(sys.argv[1], device="cpu"),
        lambda: ropescope.decay(head_dim=junk(), base=junk()),
        lambda: ropescope.decay(distances=junk(), variants=junk()),
        lambda: ropescope.bounds(bound_max=junk(), context=junk(), variants=junk()),
        lambda: ropescope.Tokenizer(junk()),
        lambda: ropescope.plot(junk(), junk(), junk()),
    ]
    failures = 0
    outcomes = {"returned": 0, "TypeError": 0, "ValueError": 0, "RuntimeError": 0}
    for i in range(int(sys.argv[3])):
        index = rng.randrange(len(calls))
        try:
            calls[index]()
            outcomes["returned"] += 1
        except (TypeError, ValueError, RuntimeError) as error:
            outcomes[next(t.__name__ for t in (TypeError, ValueError, RuntimeError) if isinstance(error, t))] += 1
        except Exception as error:
            failures += 1
            print(f"call {i} (#{index}): {type(error).__name__}: {error}")
    print(outcomes)
    print(f"done {failures}")
""")


def test_random_bad_calls_raise_python_errors():
    child = subprocess.run([sys.executable, "-c", CHILD, str(MODELS), "1234", "400"], capture_output=True, text=True,
                           timeout=600)
    assert child.returncode == 0, f"the interpreter died ({child.returncode}):\n{child.stdout}\n{child.stderr}"
    assert child.stdout.strip().endswith("done 0"), child.stdout
    outcomes = eval(child.stdout.strip().splitlines()[-2])
    # Most calls are bad enough to be refused; the rest (junk that happens to be valid) ran.
    assert outcomes["TypeError"] + outcomes["ValueError"] + outcomes["RuntimeError"] > 300, outcomes
    print(outcomes)
