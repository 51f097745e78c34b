#!/usr/bin/env python3
"""Golden data and coefficient generator for the sine/cosine integrals (src/theory/sici.cpp).

Two outputs, both computed with mpmath at >= 50 significant digits:

  python3 tests/golden/gen_sici.py            writes tests/golden/sici_golden.csv
  python3 tests/golden/gen_sici.py --emit-cpp rewrites the block between the
                                              GENERATED markers in src/theory/sici.cpp

The CSV has one row per input: the input as a hex float (so the double is exact),
the method regions the implementation uses there for Si/Cin and for Ci, a tag saying
why the point is in the table, and Si, Ci, Cin to 22 significant digits (Ci is empty for x <= 0).
Near zeros of Ci every value is checked against a second evaluation at 100 digits.
"""
import argparse
import math
import os
import random
import re
import sys

import mpmath
from mpmath import mp, mpf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CSV = os.path.join(HERE, "sici_golden.csv")
CPP = os.path.join(ROOT, "src", "theory", "sici.cpp")

mp.dps = 50

# Switch points; sici.cpp reads the same numbers from the generated block.
SERIES_MAX = 4.0          # |x| <= 4: power series
FIT_MAX = 64.0            # 4 < x <= 64: Chebyshev fits of the auxiliary functions
TRIG_LIBM_MIN = 2.0**29   # x >= 2^29: sincosl (exact reduction) instead of the inline one
N_ZEROS = 40              # zeros of Ci with a Taylor expansion (up to ~122.5)
N_TAYLOR = 18             # Taylor coefficients per zero
ZERO_RADIUS_MAX = 0.5
FIT_EDGES = [4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.75, 8.5, 9.5, 10.5, 12.0, 13.5, 15.0,
             17.0, 19.5, 22.5, 26.0, 30.0, 35.0, 41.0, 48.0, 56.0, 64.0]
FIT_TOL = mpf(2) ** -58   # truncation of each fit, relative to min |deltaF|, |deltaG| on the piece


def cin(x):
    """Cin(x) = int_0^x (1 - cos t)/t dt, to full relative precision for every x."""
    x = mpf(x)
    if abs(x) < 1:
        return mpmath.nsum(lambda k: (-1) ** (k + 1) * x ** (2 * k) / (2 * k * mpmath.factorial(2 * k)),
                           [1, mpmath.inf])
    with mpmath.workdps(mp.dps + 20):
        return +(mpmath.euler + mpmath.log(abs(x)) - mpmath.ci(abs(x)))


def aux_fg(x):
    """Auxiliary functions f, g: Ci = f sin x - g cos x, Si = pi/2 - f cos x - g sin x."""
    with mpmath.workdps(mp.dps + 20):
        x = mpf(x)
        s = mpmath.si(x) - mpmath.pi / 2
        c = mpmath.ci(x)
        return c * mpmath.sin(x) - s * mpmath.cos(x), -c * mpmath.cos(x) - s * mpmath.sin(x)


def ci_zero(j):
    """j-th zero of Ci (0-based): z_0 = 0.6165..., z_j ~ j*pi + 1/(j*pi)."""
    guess = mpf("0.6165") if j == 0 else j * mpmath.pi + 1 / (j * mpmath.pi)
    with mpmath.workdps(80):
        return +mpmath.findroot(mpmath.ci, guess)


def ci_zero_near(X):
    k = mpmath.nint(mpf(X) / mpmath.pi)
    with mpmath.workdps(80 + int(mpmath.log10(X))):
        return +mpmath.findroot(mpmath.ci, k * mpmath.pi + 1 / (k * mpmath.pi))


def ci_taylor(z, n):
    """c_1..c_n with Ci(z + h) = sum c_k h^k (Ci(z) = 0), from Ci' = cos(x)/x."""
    with mpmath.workdps(80):
        cs = [mpmath.cos(z), -mpmath.sin(z), -mpmath.cos(z), mpmath.sin(z)]
        cosc = [cs[m % 4] / mpmath.factorial(m) for m in range(n)]           # cos(z+h)
        inv = [(-1) ** m / z ** (m + 1) for m in range(n)]                   # 1/(z+h)
        prod = [mpmath.fsum(cosc[i] * inv[m - i] for i in range(m + 1)) for m in range(n)]
        return [prod[k - 1] / k for k in range(1, n + 1)]


def zero_table():
    rows = []
    for j in range(N_ZEROS):
        z = ci_zero(j)
        c = ci_taylor(z, N_TAYLOR + 1)
        # Truncation after N_TAYLOR terms, relative to the leading term c1 h, below 2^-66.
        r = (mpf(2) ** -66 * abs(c[0]) / abs(c[N_TAYLOR])) ** (mpf(1) / N_TAYLOR)
        r = min(r, mpf(ZERO_RADIUS_MAX))
        r = float(mpmath.floor(r * 64) / 64)
        rows.append((z, r, c[:N_TAYLOR]))
    return rows


def cheb_fit(func, a, b, tol):
    """Chebyshev coefficients of func on [a, b], truncated where |c_k| < tol."""
    n = 40
    with mpmath.workdps(60):
        nodes = [mpmath.cos(mpmath.pi * (k + mpf(1) / 2) / n) for k in range(n)]
        vals = [func((b - a) / 2 * t + (b + a) / 2) for t in nodes]
        coef = []
        for j in range(n):
            s = mpmath.fsum(vals[k] * mpmath.cos(mpmath.pi * j * (k + mpf(1) / 2) / n) for k in range(n))
            coef.append(2 * s / n)
        coef[0] /= 2
    last = max(j for j in range(n) if abs(coef[j]) >= tol)
    return coef[:last + 1], max(abs(c) for c in coef[last + 1:last + 4])


def fit_table():
    pieces = []
    for a, b in zip(FIT_EDGES[:-1], FIT_EDGES[1:]):
        def dF(x):
            f, _ = aux_fg(x)
            return x * f - 1

        def dG(x):
            _, g = aux_fg(x)
            return x * x * g - 1
        tolF = FIT_TOL * abs(dF(mpf(b)))
        tolG = FIT_TOL * abs(dG(mpf(b)))
        cF, eF = cheb_fit(dF, mpf(a), mpf(b), tolF)
        cG, eG = cheb_fit(dG, mpf(a), mpf(b), tolG)
        pieces.append((a, b, cF, cG))
        print(f"fit [{a}, {b}]: {len(cF)} / {len(cG)} terms", file=sys.stderr)
    return pieces


def ld(v):
    """A long double literal with 24 significant digits (exact to the 64-bit significand)."""
    return mpmath.nstr(mpf(v), 24, min_fixed=0, max_fixed=0, strip_zeros=False) + "L"


def dbl(v):
    return float(v).hex()


def emit_cpp():
    z = zero_table()
    pieces = fit_table()
    out = []
    out.append(f"constexpr double kSeriesMax = {SERIES_MAX!r};")
    out.append(f"constexpr double kFitMax = {FIT_MAX!r};")
    out.append(f"constexpr double kTrigLibmMin = {TRIG_LIBM_MIN!r};")
    out.append(f"constexpr int kZeros = {N_ZEROS};")
    out.append(f"constexpr int kZeroTerms = {N_TAYLOR};")
    with mpmath.workdps(80):
        # pi/2 in three pieces of 32 bits (the first two exact in any product k*P with k < 2^32).
        p = mpmath.pi / 2
        p1 = mpmath.floor(p * 2 ** 31) / 2 ** 31
        p2 = mpmath.floor((p - p1) * 2 ** 63) / 2 ** 63
        p3 = p - p1 - p2
        out.append(f"constexpr long double kPio2_1 = {ld(p1)};")
        out.append(f"constexpr long double kPio2_2 = {ld(p2)};")
        out.append(f"constexpr long double kPio2_3 = {ld(p3)};")
        out.append(f"constexpr long double kTwoOverPi = {ld(2 / mpmath.pi)};")
        out.append(f"constexpr long double kPio2 = {ld(mpmath.pi / 2)};")
        out.append(f"constexpr long double kEuler = {ld(mpmath.euler)};")
        out.append(f"constexpr long double kSiSeries[] = {{")
        for k in range(24):
            out.append(f"    {ld(mpf(-1) ** k / ((2 * k + 1) * mpmath.factorial(2 * k + 1)))},")
        out.append("};")
        out.append(f"constexpr long double kCinSeries[] = {{")
        for k in range(1, 25):
            out.append(f"    {ld(mpf(-1) ** (k + 1) / ((2 * k) * mpmath.factorial(2 * k)))},")
        out.append("};")
        out.append("constexpr long double kSinTaylor[] = {")   # sin r = r * sum s_k r^(2k)
        for k in range(11):
            out.append(f"    {ld(mpf(-1) ** k / mpmath.factorial(2 * k + 1))},")
        out.append("};")
        out.append("constexpr long double kCosTaylor[] = {")   # cos r = sum c_k r^(2k)
        for k in range(11):
            out.append(f"    {ld(mpf(-1) ** k / mpmath.factorial(2 * k))},")
        out.append("};")
    out.append("struct CiZero {")
    out.append("  double hi;        // the zero rounded to double")
    out.append("  long double lo;   // zero - hi")
    out.append("  double radius;    // Taylor expansion used for |x - zero| < radius")
    out.append("  long double c[kZeroTerms];  // Ci(zero + h) = sum_k c[k] h^(k+1)")
    out.append("};")
    out.append("constexpr CiZero kCiZeros[kZeros] = {")
    for zz, r, c in z:
        hi = float(zz)
        out.append(f"    {{{dbl(hi)}, {ld(zz - mpf(hi))}, {r!r},")
        out.append("     {" + ", ".join(ld(v) for v in c) + "}},")
    out.append("};")
    out.append("struct FitPiece {")
    out.append("  double a, b;        // x in [a, b]")
    out.append("  int nf, ng;         // number of Chebyshev terms")
    out.append("  double f[24], g[24];  // x f(x) - 1 and x^2 g(x) - 1 in T_k(t), t = (2x - a - b)/(b - a)")
    out.append("};")
    out.append(f"constexpr int kFitPieces = {len(pieces)};")
    out.append("constexpr FitPiece kFit[kFitPieces] = {")
    for a, b, cF, cG in pieces:
        assert len(cF) <= 24 and len(cG) <= 24
        out.append(f"    {{{a!r}, {b!r}, {len(cF)}, {len(cG)},")
        out.append("     {" + ", ".join(dbl(v) for v in cF) + "},")
        out.append("     {" + ", ".join(dbl(v) for v in cG) + "}},")
    out.append("};")
    block = "\n".join(out) + "\n"
    src = open(CPP).read()
    new, n = re.subn(r"(// BEGIN GENERATED[^\n]*\n).*?(// END GENERATED)",
                     lambda m: m.group(1) + block + m.group(2), src, flags=re.S)
    if n != 1:
        sys.exit("sici.cpp: GENERATED markers not found")
    open(CPP, "w").write(new)
    return z


def region(x, zeros, ci):
    """Method region at x: for Si and Cin (ci=False) or for Ci (ci=True)."""
    ax = abs(x)
    if ci:
        for zz, r, _ in zeros:
            if abs(x - float(zz)) < r:
                return "zero-taylor"
    if ax <= SERIES_MAX:
        return "series"
    if ax <= FIT_MAX:
        return "fit"
    if ax < TRIG_LIBM_MIN:
        return "asymptotic"
    return "asymptotic-huge"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emit-cpp", action="store_true", help="rewrite the generated block in sici.cpp")
    args = ap.parse_args()
    if args.emit_cpp:
        emit_cpp()
        return
    zeros = zero_table()
    rng = random.Random(20240611)
    pts = {}   # double -> tag

    def add(x, tag):
        x = float(x)
        if x != 0 and abs(x) < 1e300 * 10 and x not in pts:
            pts[x] = tag

    def around(x0, tag, rels=(1e-15, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2), ulps=4):
        """x0 rounded to double, its neighbours up to `ulps` away, and relative offsets."""
        lo = hi = float(x0)
        add(lo, tag)
        for _ in range(ulps):
            lo = math.nextafter(lo, -math.inf)
            hi = math.nextafter(hi, math.inf)
            add(lo, tag)
            add(hi, tag)
        for r in rels:
            add(float(x0 * (1 + r)), tag)
            add(float(x0 * (1 - r)), tag)

    # log-spaced over [1e-300, 1e300], both signs
    n = 1500
    for i in range(n + 1):
        x = 10.0 ** (-300 + 600.0 * i / n)
        add(x, "logspace")
        if i % 3 == 0:
            add(-x, "negative")
    # dense in each method region
    for _ in range(1500):
        add(rng.uniform(0, SERIES_MAX), "dense")
    for _ in range(2000):
        add(rng.uniform(SERIES_MAX, 130.0), "dense")
    for _ in range(500):
        add(10 ** rng.uniform(2, 9), "dense")
    for _ in range(300):
        add(-rng.uniform(0, 60), "negative")
    # switch points: series/fit, fit pieces, fit/asymptotic, trig reduction, zero radii
    for e in FIT_EDGES + [TRIG_LIBM_MIN]:
        around(mpf(e), "switch")
    for zz, r, _ in zeros:
        around(zz - r, "switch", rels=(1e-10, 1e-6), ulps=2)
        around(zz + r, "switch", rels=(1e-10, 1e-6), ulps=2)
    # zeros of Ci: the first 40 (tabulated) and some far out
    for zz, _, _ in zeros:
        around(zz, "ci-zero")
    for X in [130, 200, 500, 1e3, 1e4, 1e5, 1e6, 1e8, 1e10, 1e12, 1e15]:
        around(ci_zero_near(X), "ci-zero-far")
    # zeros of Si - pi/2 (Si is not small there, but the auxiliary terms cancel)
    for j in range(1, 11):
        with mpmath.workdps(80):
            zs = mpmath.findroot(lambda t: mpmath.si(t) - mpmath.pi / 2, j * mpmath.pi)
        around(zs, "si-pi2-zero", rels=(1e-12, 1e-6), ulps=2)
    # huge x
    for _ in range(300):
        add(10 ** rng.uniform(9, 300), "huge")
    for k in range(30, 1024, 7):
        add(2.0 ** k, "huge")
        add(-(2.0 ** k), "negative")

    near_zero_tags = {"ci-zero", "ci-zero-far", "switch"}
    rows = []
    for x, tag in sorted(pts.items()):
        xm = mpf(x)
        si = mpmath.si(xm)
        cn = cin(xm)
        if x > 0:
            # mpmath at 50 digits keeps only ~27 digits of Ci at the nearest doubles to a
            # zero, so Ci is evaluated at 90 digits and, near zeros, checked at 130.
            with mpmath.workdps(90):
                ci = mpmath.ci(xm)
            if tag in near_zero_tags:
                with mpmath.workdps(130):
                    ci2 = mpmath.ci(xm)
                assert abs(ci - ci2) <= abs(ci2) * mpf(10) ** -30, (x, ci, ci2)
            cis = mpmath.nstr(ci, 22, min_fixed=0, max_fixed=0)
        else:
            cis = ""
        rows.append(f"{x.hex()},{region(x, zeros, False)},{region(x, zeros, x > 0)},{tag},{mpmath.nstr(si, 22, min_fixed=0, max_fixed=0)},"
                    f"{cis},{mpmath.nstr(cn, 22, min_fixed=0, max_fixed=0)}")
    with open(CSV, "w") as fh:
        fh.write("# Golden values for Si, Ci, Cin: mpmath %s at %d digits, written by tests/golden/gen_sici.py\n"
                 % (mpmath.__version__, mp.dps))
        fh.write("x_hex,region_si_cin,region_ci,tag,Si,Ci,Cin\n")
        fh.write("\n".join(rows) + "\n")
    print(f"{len(rows)} rows -> {CSV}", file=sys.stderr)


if __name__ == "__main__":
    main()
