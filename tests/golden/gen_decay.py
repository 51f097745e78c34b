#!/usr/bin/env python3
"""Golden values for the decay curves and RoPE frequency variants, computed
independently of the C++ code with mpmath at 50 digits (pip install mpmath).

Writes tests/golden/decay_golden.csv and tests/golden/rope_frequencies_golden.csv.
The frequency formulas below are written from ROPEPP.md section 3 and the HF
transformers definitions (rope_init functions), not translated from the C++.

    python3 tests/golden/gen_decay.py
"""
import csv
import os

import mpmath as mp

mp.mp.dps = 50
HERE = os.path.dirname(os.path.abspath(__file__))


def get_mscale(s, m=1):
    return mp.mpf(1) if s <= 1 else mp.mpf("0.1") * m * mp.log(s) + 1


def frequencies(case, continuous_x=None):
    """theta for pair n (list) or theta(x) at a continuous x in [0, 1]."""
    d, base, partial = case["d"], mp.mpf(case["base"]), mp.mpf(case.get("partial", 1))
    r = int(d * float(partial))
    kind = case.get("type", "none")
    s = mp.mpf(case.get("factor", 1))
    L = case.get("original", 4096)
    if kind == "dynamic":
        T = max(case.get("seq", 0), L)
        # HF computes the new base in Python floats
        base = mp.mpf(float(case["base"]) * ((float(s) * T / L) - (float(s) - 1)) ** (r / (r - 2)))
    xs = [mp.mpf(2 * n) / r for n in range(r // 2)] if continuous_x is None else [continuous_x]
    out = []
    for x in xs:
        theta = base ** (-x)
        if kind in ("none", "dynamic"):
            t = theta
        elif kind == "linear":
            t = theta / s
        elif kind == "yarn":
            # HF _compute_yarn_parameters: ramp over the pair index between correction dims
            def corr(rot):
                return (r * mp.log(L / (rot * 2 * mp.pi))) / (2 * mp.log(base))
            low, high = mp.floor(corr(case.get("beta_fast", 32))), mp.ceil(corr(case.get("beta_slow", 1)))
            low, high = max(low, 0), min(high, r - 1)
            if low == high:
                high += mp.mpf("0.001")
            i = x * r / 2
            ramp = min(max((i - low) / (high - low), 0), 1)
            extrapolation_factor = 1 - ramp
            t = theta / s * (1 - extrapolation_factor) + theta * extrapolation_factor
        elif kind in ("yarn_ropepp", "llama3"):
            # rotations over the original length; ramp from alpha to beta rotations
            if kind == "llama3":
                alpha, beta = case.get("low", 1), case.get("high", 4)
                wavelen = 2 * mp.pi / theta
                if wavelen < L / beta:
                    t = theta
                elif wavelen > L / alpha:
                    t = theta / s
                else:
                    smooth = (L / wavelen - alpha) / (beta - alpha)
                    t = (1 - smooth) * theta / s + smooth * theta
            else:
                rot = L * theta / (2 * mp.pi)
                g = min(max((rot - 1) / (32 - 1), 0), 1)
                t = (1 - g) * theta / s + g * theta
        else:
            raise ValueError(kind)
        out.append(t)
    return out, r


def kinks(case):
    """x in (0, 1) where the scaling formula switches branch."""
    d, base, kind = case["d"], mp.mpf(case["base"]), case.get("type", "none")
    r = int(d * float(case.get("partial", 1)))
    L = case.get("original", 4096)
    if kind == "yarn":
        corr = lambda rot: (r * mp.log(L / (rot * 2 * mp.pi))) / (2 * mp.log(base))
        low, high = mp.floor(corr(case.get("beta_fast", 32))), mp.ceil(corr(case.get("beta_slow", 1)))
        xs = [2 * max(low, 0) / r, 2 * min(high, r - 1) / r]
    elif kind in ("yarn_ropepp", "llama3"):
        alpha, beta = (case.get("low", 1), case.get("high", 4)) if kind == "llama3" else (1, 32)
        xs = [-mp.log(2 * mp.pi * rot / L) / mp.log(base) for rot in (alpha, beta)]
    else:
        xs = []
    return [x for x in xs if 0 < x < 1]


def discrete(case, D):
    thetas, r = frequencies(case)
    d = case["d"]
    re = sum(mp.cos(t * D) for t in thetas) + (d - r) // 2
    # pass-through dims of a partial rotary head are unrotated for the
    # imaginary query too (HF partial rotary): they add to both sums
    im = sum(mp.sin(t * D) for t in thetas) + (d - r) // 2
    return 2 * re / d, 2 * im / d


def integral(case, D):
    d = case["d"]
    _, r = frequencies(case)
    frac = mp.mpf(r) / d
    if case.get("type", "none") in ("none", "linear") :
        s = mp.mpf(case.get("factor", 1)) if case.get("type") == "linear" else 1
        base = mp.mpf(case["base"])
        if D == 0:
            re, im = mp.mpf(1), mp.mpf(0)
        else:
            a, b = D / s, D / (s * base)
            re = (mp.ci(a) - mp.ci(b)) / mp.log(base)
            im = (mp.si(a) - mp.si(b)) / mp.log(base)
    else:
        f = lambda x: frequencies(case, x)[0][0]
        # split [0, 1] finely so the oscillatory integrand is resolved, and at
        # the kinks of the piecewise profile so each piece is smooth
        pts = sorted(set([mp.mpf(k) / 400 for k in range(401)] + kinks(case)))
        re = mp.quad(lambda x: mp.cos(D * f(x)), pts)
        im = mp.quad(lambda x: mp.sin(D * f(x)), pts)
    return frac * re + (1 - frac), frac * im + (1 - frac)


def bound(case, D):
    thetas, r = frequencies(case)
    d = case["d"]
    thetas = thetas + [mp.mpf(0)] * (d // 2 - len(thetas))
    S, total = mp.mpc(0), mp.mpf(0)
    for t in thetas:
        S += mp.expj(t * D)
        total += abs(S)
    return total / (d // 2)


CASES = {
    "rope_d128_b1e4": dict(d=128, base=1e4),
    "rope_d64_b5e5": dict(d=64, base=5e5),
    "rope_d16_b100": dict(d=16, base=100),
    "linear_s4": dict(d=128, base=1e4, type="linear", factor=4),
    "partial_half": dict(d=128, base=1e4, partial=0.5),
    "yarn_ropepp_s8": dict(d=128, base=1e4, type="yarn_ropepp", factor=8, original=4096),
    "llama3_s8": dict(d=128, base=5e5, type="llama3", factor=8, original=8192, low=1, high=4),
    "yarn_hf_s8": dict(d=128, base=1e4, type="yarn", factor=8, original=4096),
    "dynamic_s2": dict(d=128, base=1e4, type="dynamic", factor=2, original=4096, seq=16384),
}
INTEGRAL_DISTANCES = [0, 0.5, 1, 2, 3.25, 10, 64, 100, 256, 1000]
CLOSED_FORM_EXTRA = [1e4, 123456.5, 1e7]
DISCRETE_EXTRA = [4095, 32768, 1e5, 1e6, 1234567, 1e7]


def main():
    rows = []
    for name, case in CASES.items():
        closed = case.get("type", "none") in ("none", "linear")
        dists = INTEGRAL_DISTANCES + (CLOSED_FORM_EXTRA if closed else [])
        for D in dists + DISCRETE_EXTRA:
            D = mp.mpf(D)
            re_d, im_d = discrete(case, D)
            if D in [mp.mpf(x) for x in dists]:
                re_i, im_i = integral(case, D)
                re_i, im_i = mp.nstr(re_i, 25), mp.nstr(im_i, 25)
            else:
                re_i = im_i = ""
            b = mp.nstr(bound(case, D), 25) if D <= 1e5 else ""
            rows.append([name, repr(float(D)), re_i, im_i, mp.nstr(re_d, 25), mp.nstr(im_d, 25), b])
    with open(os.path.join(HERE, "decay_golden.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "distance", "re_integral", "im_integral", "re_discrete", "im_discrete", "relative_bound"])
        w.writerows(rows)
    with open(os.path.join(HERE, "rope_frequencies_golden.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "pair", "theta"])
        for name, case in CASES.items():
            thetas, _ = frequencies(case)
            for n, t in enumerate(thetas):
                w.writerow([name, n, mp.nstr(t, 30)])
    print("wrote", len(rows), "decay rows")


if __name__ == "__main__":
    main()
